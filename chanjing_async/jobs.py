"""``JobManager``: submit lip-sync jobs, keep the create limit saturated, track every task.

One manager owns an anyio task group with three kinds of background work: the submitter
(FIFO creates through the client's create limiter, ``_submit``), the shared poller (``list``
pages and ``detail`` reads for every task in flight, ``_poller``) and uploads of local files
(``_uploads``). An optional :class:`~chanjing_async.callbacks.CallbackReceiver` wakes the
poller when Chanjing reports a task's end. Leaving the ``async with`` block stops all of it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import random
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import anyio

from ._handle import JobHandle, JobStage
from ._jobspec import LipSyncJob
from ._poller import Poller, PollPolicy, PollStats
from ._resources import require_id
from ._submit import SubmitStats, Submitter
from ._uploads import Uploads
from .errors import (
    ConfigurationError,
    CreateOutcomeUnknown,
    InvalidInputError,
    JobCancelledError,
    JobError,
    JobTimeoutError,
    job_failure,
)
from .journal import Journal
from .limits import SlidingWindowLimiter
from .models import LipSyncRequest, LipSyncTask

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable
    from types import TracebackType

    from anyio.abc import TaskGroup

    from ._attempts import CreateLedger
    from .callbacks import CallbackReceiver, Verdict
    from .client import AsyncChanjingClient
    from .journal import JournalRow

__all__ = ["Job", "JobManager", "JobManagerStats"]

logger = logging.getLogger("chanjing_async")

Job: TypeAlias = LipSyncRequest | LipSyncJob | Mapping[str, Any]
"""What ``submit`` takes: a request with file ids, a job with local files, or request fields."""

# Keys of recently finished jobs, so a late repeat of their callback is a duplicate, not unknown.
_RECENT_KEYS = 4096


@dataclass
class JobManagerStats:
    """Counters of a manager: creates, polling, uploads and callbacks.

    Attributes:
        submit: creates sent, refused, requeued and reconciled.
        poll: list pages and detail reads.
        uploads: files uploaded (content shared by several jobs counts once).
        callbacks: callback requests by outcome (see ``CallbackReceiver.outcomes``).
    """

    submit: SubmitStats
    poll: PollStats
    uploads: int = 0
    callbacks: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Running:
    """The background work of an open manager."""

    group: TaskGroup
    submitter: Submitter
    poller: Poller
    uploads: Uploads


class _Completions:
    """Handles in the order they finish; an async iterator for as_completed and map."""

    def __init__(self) -> None:
        self._done: deque[JobHandle] = deque()
        self._wake = anyio.Event()

    def add(self, handle: JobHandle) -> None:
        self._done.append(handle)
        self._wake.set()

    async def next(self) -> JobHandle:
        while not self._done:
            await self._wake.wait()
            self._wake = anyio.Event()
        return self._done.popleft()


class JobManager:
    """Submits lip-sync jobs and tracks their tasks to the end, with a handful of API calls.

    Example (an async service awaiting one job)::

        async with AsyncChanjingClient() as client, JobManager(client) as jobs:
            handle = await jobs.submit(LipSyncRequest.tts(video_id, text="你好",
                                                          audio_man_id="C-..."))
            task = await handle.wait()          # JobFailedError, JobTimeoutError ...
            print(task.video_url)

    Example (a batch)::

        handles = await jobs.submit_many(requests)
        async for handle in jobs.as_completed(handles):
            print(handle.key, handle.stage, handle.error)

    ``submit`` returns at once: the job waits in a FIFO queue for a create slot (10 per minute,
    never a 40001) while the caller goes on. A create refused with 40001 puts the job back at
    the head; an ambiguous create is reconciled through the task list before anything is sent
    again (rules in ``chanjing_async._submit``). One shared poller reads every task in flight
    through ``list`` pages, falling back to ``detail`` (``PollPolicy``).

    Args:
        client: an open client; its limiters pace every call.
        poll: polling intervals and batching.
        callbacks: a callback receiver; each create then carries a signed per-job URL.
        job_timeout: seconds a created task may take before its job ends with
            JobTimeoutError (the task itself is not cancelled; ``attach`` finds it again).
        upload_concurrency: local files uploaded at once.
        reconcile_settle: seconds before the task list is read again while an ambiguous
            create awaits its processing horizon (the interval then doubles, up to a quarter
            of the horizon).
        reconcile_margin: seconds of slack on the server-clock bounds when matching
            ``create_time`` (whole seconds, so at least 1).
        max_create_attempts: creates refused (40001, no connection) before a job fails.
        journal: a :class:`~chanjing_async.journal.Journal` or the path of its SQLite file.
            Each job is then written down before its create is sent, and a manager opened
            later on the same journal picks up every job where it was left (see below).
        retry_failed: with a journal, submit again the jobs it records as failed (a failed
            task is created anew, a new task), except those whose create outcome stayed
            unknown: their task may exist, so they stay failed.

    **With a journal.** ``submit(job, key=...)`` with a key the journal already holds does not
    submit anything new: the job resumes from its row (the same job, checked by a fingerprint
    of its fields, or InvalidInputError). A finished job comes back done (its result URLs are
    not kept: read the task again for fresh ones); a created task is tracked again, never
    re-created; a job whose create was on the wire when the process died is reconciled
    through the task list before anything is sent again (adopted, resent, or failed with
    CreateOutcomeUnknown); a job not sent yet is queued again, its files taken from the
    uploads the journal remembers. ``resume()`` does the same for every unfinished row.
    Creates then go out one at a time, so a crash leaves at most one create unexplained and
    the task list can tell which task it made; the limiter learns the creates of the last
    window from the journal, so a restart is not answered 40001. A job that reached its
    deadline or was left unfinished when the manager closed stays unfinished in the journal.

    Raises:
        ConfigurationError: a setting out of range.
    """

    def __init__(
        self,
        client: AsyncChanjingClient,
        *,
        poll: PollPolicy | None = None,
        callbacks: CallbackReceiver | None = None,
        job_timeout: float = 7200.0,
        upload_concurrency: int = 4,
        reconcile_settle: float = 5.0,
        reconcile_margin: float = 2.0,
        max_create_attempts: int = 10,
        journal: Journal | str | os.PathLike[str] | None = None,
        retry_failed: bool = False,
    ) -> None:
        _check_seconds("job_timeout", job_timeout, allow_zero=False)
        _check_seconds("reconcile_settle", reconcile_settle, allow_zero=True)
        _check_seconds("reconcile_margin", reconcile_margin, allow_zero=True)
        if reconcile_margin < 1:
            # create_time is whole server seconds: less than 1 s could miss our own task.
            raise ConfigurationError(f"reconcile_margin={reconcile_margin!r}: must be >= 1")
        for name, count in (
            ("upload_concurrency", upload_concurrency),
            ("max_create_attempts", max_create_attempts),
        ):
            if type(count) is not int or count < 1:
                raise ConfigurationError(f"{name}={count!r}: must be an integer >= 1")
        self._client = client
        self._policy = poll or PollPolicy()
        self._callbacks = callbacks
        self._job_timeout = float(job_timeout)
        self._upload_concurrency = upload_concurrency
        self._reconcile = (float(reconcile_settle), float(reconcile_margin))
        self._max_create_attempts = max_create_attempts
        self._state: Literal["unopened", "open", "closed"] = "unopened"
        self._running: _Running | None = None
        self._handles: dict[str, JobHandle] = {}
        self._recent: OrderedDict[str, JobHandle] = OrderedDict()
        self._timeouts: dict[str, float] = {}
        self._prepared: dict[str, LipSyncRequest] = {}
        self._uploading: dict[str, anyio.CancelScope] = {}
        self._fingerprints: dict[str, str] = {}
        if journal is None or isinstance(journal, Journal):
            self._journal = journal
        else:
            self._journal = Journal(journal)
        self._retry_failed = retry_failed
        self._rows: dict[str, JournalRow] = {}  # journaled in an earlier run, not resumed yet
        self._journaled: dict[str, JobStage] = {}
        # Journaled jobs that ended (in this run or an earlier one): a repeated submit of the
        # same key gets the done handle back, never a second task.
        self._finished: dict[str, tuple[JobHandle, str]] = {}
        # Every task id the journal knows: owned for good, not just for the ownership horizon.
        self._journal_tasks: set[str] = set()

    def __repr__(self) -> str:
        return f"<JobManager {self._state} jobs={len(self._handles)}>"

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> JobManager:
        if self._state != "unopened":
            raise RuntimeError(f"JobManager cannot be reopened (it is {self._state})")
        limiter = self._client.limiters.create  # raises if the client is not open
        if self._journal is not None:
            await self._journal.open()
            try:
                await self._journal.claim(self._client.app_id, self._client.base_url)
                rows = await self._journal.rows()
            except BaseException:
                await self._journal.close()
                raise
            self._rows = {row.key: row for row in rows}
            self._journal_tasks = {row.task_id for row in rows if row.task_id is not None}
            _seed(limiter, rows, _doubt(self._client))
            _expect(self._client.lip_sync.ledger, rows)
        settle, margin = self._reconcile
        group = anyio.create_task_group()
        await group.__aenter__()
        submitter = Submitter(
            self._client.lip_sync,
            limiter,
            request_of=self._request_of,
            owned=self._owns,
            on_created=self._created,
            on_failed=self._failed,
            on_duplicate=self._duplicate,
            before_send=self._before_send,
            on_requeued=self._requeued,
            group=group,
            serial=self._journal is not None,
            proof=self._callbacks is not None,
            settle=settle,
            margin=margin,
            max_attempts=self._max_create_attempts,
            backoff=lambda attempt: self._client.retry.delay(attempt, random.random()),
        )
        poller = Poller(self._client.lip_sync, self._policy, on_untracked=self._forget)
        uploads = Uploads(
            self._client.files,
            group,
            concurrency=self._upload_concurrency,
            poll_interval=self._policy.file_interval,
            journal=self._journal,
        )
        try:
            if self._callbacks is not None:
                await self._callbacks.open(self._on_callback, group)
        except BaseException:
            group.cancel_scope.cancel()
            await group.__aexit__(None, None, None)
            if self._journal is not None:
                await self._journal.close()
            raise
        group.start_soon(submitter.run)
        group.start_soon(poller.run)
        if self._journal is not None:
            group.start_soon(self._journal.autoflush)
        self._running = _Running(group, submitter, poller, uploads)
        self._state = "open"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the background work; every unfinished job ends as cancelled.

        Creates already in flight finish first (at most one request timeout), so a task they
        create is recorded on its handle (``task_id``) instead of being lost.
        """
        self._state = "closed"
        for handle in list(self._handles.values()):
            handle.cancelled("the JobManager closed before the job finished")
        running, self._running = self._running, None
        assert running is not None
        try:
            running.group.cancel_scope.cancel()
            # The body's own exception is not handed to the task group, which would wrap it
            # in an ExceptionGroup: it propagates as raised. Errors of the background work
            # (bugs) still surface from here.
            await running.group.__aexit__(None, None, None)
        finally:
            try:
                if self._callbacks is not None:
                    await self._callbacks.close()
            finally:
                if self._journal is not None:
                    await self._journal.close()

    @property
    def journal(self) -> Journal | None:
        """The journal of this manager, if it has one."""
        return self._journal

    def _require_open(self) -> _Running:
        if self._running is None:
            state = "closed" if self._state == "closed" else "not open yet"
            raise RuntimeError(f"JobManager is {state}: use 'async with JobManager(...)'")
        return self._running

    # -- submitting --------------------------------------------------------------------------

    async def submit(
        self, job: Job, *, key: str | None = None, timeout: float | None = None
    ) -> JobHandle:
        """Queue a job and return its handle at once (before the task is created).

        With a journal, the job is written down before this returns.

        Args:
            job: a LipSyncRequest (file ids), a LipSyncJob (local files, uploaded first) or
                a mapping of create fields.
            key: the job's key (default: a new random one). With a journal, a key it already
                holds resumes that job instead of submitting another.
            timeout: this job's deadline once created, instead of the manager's job_timeout.

        Raises:
            InvalidInputError: the job or key is invalid; nothing was queued or sent.
            RuntimeError: the manager is not open.
        """
        keys = None if key is None else [key]
        return (await self._submit_all([job], keys, timeout, indexed=False))[0]

    async def submit_many(
        self,
        jobs: Iterable[Job],
        *,
        keys: Iterable[str] | None = None,
        timeout: float | None = None,
    ) -> list[JobHandle]:
        """Queue many jobs; every job is validated before any is queued.

        Args:
            jobs: the jobs, as for :meth:`submit`.
            keys: one key per job (see :meth:`submit`); default: new random keys.
            timeout: as for :meth:`submit`.

        Raises:
            InvalidInputError: a job or key is invalid (its index is in the field name);
                nothing was queued.
        """
        return await self._submit_all(list(jobs), keys, timeout, indexed=True)

    async def _submit_all(
        self,
        jobs: list[Job],
        keys: Iterable[str] | None,
        timeout: float | None,
        *,
        indexed: bool,
    ) -> list[JobHandle]:
        running = self._require_open()
        names = [uuid.uuid4().hex for _ in jobs] if keys is None else list(keys)
        if len(names) != len(jobs):
            raise InvalidInputError("keys", len(names), f"must give one key per job ({len(jobs)})")
        _check_timeout(timeout)
        plans: list[_Plan] = []
        seen: set[str] = set()
        for index, (job, key) in enumerate(zip(jobs, names, strict=True)):
            try:
                plans.append(self._plan(_checked(job), key, seen))
            except InvalidInputError as exc:
                if not indexed:
                    raise
                prefix = "jobs" if exc.field != "key" else "keys"
                field = f"{prefix}[{index}]" + ("" if exc.field == "key" else f".{exc.field}")
                raise InvalidInputError(field, exc.value, exc.allowed) from None
            seen.add(key)
        started = [self._start(running, plan, timeout) for plan in plans]
        if self._journal is not None:
            try:
                # Written down before anything is sent; shielded, so that a cancelled caller
                # cannot leave jobs half submitted.
                with anyio.CancelScope(shield=True):
                    await self._journal.flush()
            except BaseException:
                for handle, _ in started:
                    self._forget(handle)
                raise
        for _, go in started:
            if go is not None:
                go()
        return [handle for handle, _ in started]

    async def resume(self, *, timeout: float | None = None) -> list[JobHandle]:
        """Pick up every unfinished job of the journal not resumed yet (by ``submit``).

        Returns:
            Their handles, in submission order; [] without a journal.
        """
        running = self._require_open()
        _check_timeout(timeout)
        rows = [row for row in self._rows.values() if not JobStage(row.stage).is_final]
        started = [
            self._start(running, _Plan(row.key, _job_of(row.spec), row.fingerprint, row), timeout)
            for row in rows
        ]
        for _, go in started:
            if go is not None:
                go()
        return [handle for handle, _ in started]

    async def map(
        self,
        jobs: Iterable[Job] | AsyncIterable[Job],
        *,
        window: int = 100,
        timeout: float | None = None,
    ) -> AsyncIterator[JobHandle]:
        """Submit jobs lazily, at most ``window`` unfinished at a time; yield each as it ends.

        For batches too large to queue at once (a generator over a big manifest): the next
        job is only read when one ends. Yielded handles are done; call ``result()`` on them.

        Raises:
            InvalidInputError: when the iterator yields an invalid job; jobs already
                submitted go on.
        """
        if type(window) is not int or window < 1:
            raise InvalidInputError("window", window, "must be an integer >= 1")
        source = _aiter(jobs)
        completions = _Completions()
        unfinished = 0
        exhausted = False
        while True:
            while not exhausted and unfinished < window:
                try:
                    job = await source.__anext__()
                except StopAsyncIteration:
                    exhausted = True
                    break
                handle = await self.submit(job, timeout=timeout)
                handle.add_done_listener(completions.add)
                unfinished += 1
            if unfinished == 0:
                return
            yield await completions.next()
            unfinished -= 1

    async def as_completed(self, handles: Iterable[JobHandle]) -> AsyncIterator[JobHandle]:
        """Yield the given handles as they finish (done ones first); each is done."""
        completions = _Completions()
        count = 0
        for handle in handles:
            handle.add_done_listener(completions.add)
            count += 1
        for _ in range(count):
            yield await completions.next()

    async def attach(self, task_id: str, *, timeout: float | None = None) -> JobHandle:
        """Track a task created elsewhere (another process, an earlier run).

        Its first read happens at once. An id the server does not know ends the job with
        InvalidRequestError. Attaching a task this manager already tracks returns its handle.

        Raises:
            InvalidInputError: ``task_id`` is not a non-empty string.
        """
        running = self._require_open()
        require_id("task_id", task_id)
        _check_timeout(timeout)
        tracked = running.poller.handle_of(task_id)
        if tracked is not None:
            return tracked
        handle = JobHandle(
            uuid.uuid4().hex, None, stage=JobStage.SUBMITTED, cancel=self._cancel, task_id=task_id
        )
        self._handles[handle.key] = handle
        if timeout is not None:
            self._timeouts[handle.key] = timeout
        self._client.lip_sync.ledger.own(task_id)
        self._track(running, handle, task_id, delay=0.0)
        return handle

    @property
    def stats(self) -> JobManagerStats:
        """Live counters (see :class:`JobManagerStats`)."""
        running = self._require_open()
        return JobManagerStats(
            submit=running.submitter.stats,
            poll=running.poller.stats,
            uploads=running.uploads.uploaded,
            callbacks=dict(self._callbacks.outcomes) if self._callbacks is not None else {},
        )

    @property
    def unfinished(self) -> int:
        """Jobs of this manager that have not ended."""
        return len(self._handles)

    @property
    def unsettled_creates(self) -> int:
        """Ambiguous creates not explained yet, or sent again and still watched (for one more
        processing horizon) for a task that appears too late: a duplicate, reported when seen.
        Keep the manager open until this is 0 to hear of every such duplicate."""
        return self._require_open().submitter.reconciler.unsettled

    # -- internals ---------------------------------------------------------------------------

    def _plan(self, job: LipSyncRequest | LipSyncJob, key: str, seen: set[str]) -> _Plan:
        """Check a job and its key; nothing changes yet."""
        require_id("key", key)
        spec = _spec(job)
        fingerprint = _fingerprint(spec)
        if key in seen:
            raise InvalidInputError("key", key, "is given to two jobs of this call")
        current = self._handles.get(key)
        known = (current, self._fingerprints.get(key)) if current else self._finished.get(key)
        if known is not None:
            if known[1] == fingerprint:
                return _Plan(key, job, fingerprint, None, known[0])
            raise InvalidInputError("key", key, "is already used by another job of this manager")
        row = self._rows.get(key)
        if row is not None and row.fingerprint != fingerprint:
            raise InvalidInputError(
                "key", key, "was journaled for a different job: use another key or journal"
            )
        return _Plan(key, job, fingerprint, row)

    def _start(
        self, running: _Running, plan: _Plan, timeout: float | None
    ) -> tuple[JobHandle, Callable[[], None] | None]:
        """Make the handle of a checked job (resumed from its row if it has one).

        Returns the handle and what sets it going, to call once the journal holds the job.
        """
        if plan.handle is not None:
            return plan.handle, None
        key, job, row = plan.key, plan.job, plan.row
        uploads = job.uploads() if isinstance(job, LipSyncJob) else []
        stage = JobStage.UPLOADING if uploads else JobStage.QUEUED
        handle = JobHandle(key, job, stage=stage, cancel=self._cancel)
        if row is not None:
            handle.duplicates = row.duplicates
            del self._rows[key]
            if self._retry_failed and _retryable(row):
                self._journal_reset(key, stage)
                row = None
            elif JobStage(row.stage).is_final:
                _finish_from(handle, row)
                self._finished[key] = (handle, plan.fingerprint)
                return handle, None
        if plan.row is None and self._journal is not None:
            self._journal.add(key, _spec(job), plan.fingerprint, stage.value)
        if self._journal is not None:
            self._journaled[key] = handle.stage
            handle.watch(self._journal_change)
        self._handles[key] = handle
        self._fingerprints[key] = plan.fingerprint
        if timeout is not None:
            self._timeouts[key] = timeout
        if row is not None and row.task_id is not None:
            task_id = row.task_id
            handle.task_id = task_id
            handle.advance(JobStage(row.stage))
            return handle, functools.partial(self._track, running, handle, task_id, delay=0.0)
        if row is not None and row.sent_at is not None and row.request is not None:
            # The process stopped while this create was on the wire: explain it before
            # anything else; the request sent is in the row, so no file is needed.
            self._prepared[key] = LipSyncRequest.model_validate(row.request)
            handle.advance(JobStage.QUEUED)
            unknown = CreateOutcomeUnknown(
                "the process stopped while the create was in flight",
                endpoint="/open/v1/video_lip_sync/create",
                sent_at=row.sent_at,
                gave_up_at=time.time(),
                request={},
            )
            # Written down right before it left: it left then, within the request timeout.
            sent = row.sent_at - time.time() + time.monotonic()
            attempt = self._client.lip_sync.ledger.resumed(key, sent, sent + _doubt(self._client))
            return handle, functools.partial(
                running.submitter.unexplained, handle, attempt, unknown
            )
        if isinstance(job, LipSyncJob) and uploads:
            scope = anyio.CancelScope()
            self._uploading[key] = scope

            def upload_first() -> None:
                running.group.start_soon(self._prepare, running, handle, job, uploads, scope)

            return handle, upload_first
        self._prepared[key] = job.template if isinstance(job, LipSyncJob) else job
        handle.advance(JobStage.QUEUED)
        return handle, functools.partial(running.submitter.push, handle)

    async def _prepare(
        self,
        running: _Running,
        handle: JobHandle,
        job: LipSyncJob,
        uploads: list[tuple[Path, str]],
        scope: anyio.CancelScope,
    ) -> None:
        with scope:
            try:
                ids = {
                    path: await running.uploads.file_id(path, service) for path, service in uploads
                }
            except Exception as exc:  # any failure of its files fails this job only
                self._failed(handle, exc)
                return
            finally:
                self._uploading.pop(handle.key, None)
            self._prepared[handle.key] = job.to_request(ids)
            handle.advance(JobStage.QUEUED)
            running.submitter.push(handle)

    def _request_of(self, handle: JobHandle) -> LipSyncRequest:
        request = self._prepared[handle.key]
        if self._callbacks is not None and request.callback is None:
            request = request.model_copy(update={"callback": self._callbacks.url_for(handle.key)})
        return request

    def _owns(self, task_id: str) -> bool:
        # The client's ledger knows the tasks of this run (any manager's, or a direct
        # create's); the journal knows those of earlier runs.
        return task_id in self._journal_tasks

    async def _before_send(self, handle: JobHandle) -> None:
        """With a journal: write down that the create is going out, before it does."""
        if self._journal is not None:
            request = self._prepared[handle.key].model_dump(mode="json")
            self._journal.update(handle.key, sent_at=time.time(), request=request)
            await self._journal.flush()

    def _journal_reset(self, key: str, stage: JobStage) -> None:
        """A failed row submitted again (retry_failed): it starts over."""
        assert self._journal is not None
        self._journal.update(
            key, stage=stage.value, task_id=None, sent_at=None, task=None, error=None
        )

    def _requeued(self, handle: JobHandle) -> None:
        """Its create was refused, or created nothing: no create of it is pending."""
        if self._journal is not None:
            self._journal.update(handle.key, sent_at=None)

    def _journal_change(self, handle: JobHandle) -> None:
        """Write a job's new stage (or its end) to the journal."""
        assert self._journal is not None
        if not handle.done:
            if self._journaled.get(handle.key) is not handle.stage:
                self._journaled[handle.key] = handle.stage
                self._journal.update(handle.key, stage=handle.stage.value)
            return
        self._journaled.pop(handle.key, None)
        error = handle.error
        if (
            isinstance(error, JobTimeoutError)
            or (isinstance(error, JobCancelledError) and self._state != "open")
            or (isinstance(error, CreateOutcomeUnknown) and not error.candidates)
        ):
            # Still running; left unfinished by a closing manager; or a create whose outcome
            # the task list could not tell (its sent_at stays): a later run picks it up.
            return
        self._finished[handle.key] = (handle, self._fingerprints[handle.key])
        self._journal.update(
            handle.key,
            stage=handle.stage.value,
            task=_task_record(handle.last),
            error=None if error is None else f"{type(error).__name__}: {error}",
        )

    def _created(self, handle: JobHandle, task_id: str) -> None:
        if self._journal is not None:
            self._journal_tasks.add(task_id)
            self._journal.update(handle.key, task_id=task_id, answered_at=time.time())
        self._prepared.pop(handle.key, None)
        handle.task_id = task_id
        if handle.done:
            # Cancelled while its create was in flight: the task exists (and is billed), so
            # its id goes on the handle and on the error wait() raises; it is not tracked.
            if isinstance(handle.error, JobError):
                handle.error.task_id = task_id
            return
        handle.advance(JobStage.SUBMITTED)
        if self._running is not None:
            self._track(self._running, handle, task_id, delay=self._policy.first)

    def _track(self, running: _Running, handle: JobHandle, task_id: str, *, delay: float) -> None:
        timeout = self._timeouts.get(handle.key, self._job_timeout)
        # Only a job we created with our own URL gets callbacks; an attached task never does.
        callback = (
            self._callbacks is not None
            and handle.request is not None
            and _request_callback(handle.request) is None
        )
        running.poller.track(handle, task_id, timeout=timeout, callback=callback, delay=delay)

    def _failed(self, handle: JobHandle, error: Exception) -> None:
        self._prepared.pop(handle.key, None)
        handle.finish(JobStage.FAILED, error)
        self._forget(handle)

    def _cancel(self, handle: JobHandle) -> None:
        running = self._running
        if running is not None:
            running.submitter.remove(handle)
            if handle.task_id is not None:
                running.poller.untrack(handle.task_id)
        scope = self._uploading.pop(handle.key, None)
        if scope is not None:
            scope.cancel()
        self._prepared.pop(handle.key, None)
        handle.cancelled("cancelled by the caller")
        self._forget(handle)

    def _forget(self, handle: JobHandle) -> None:
        """Drop a finished job from the registries."""
        if self._handles.pop(handle.key, None) is not None:
            self._timeouts.pop(handle.key, None)
            self._fingerprints.pop(handle.key, None)
            self._recent[handle.key] = handle
            if len(self._recent) > _RECENT_KEYS:
                self._recent.popitem(last=False)

    def _on_callback(self, key: str, task: LipSyncTask) -> Verdict:
        handle = self._handles.get(key)
        running = self._running
        if handle is None or running is None:
            ended = self._recent.get(key)
            if ended is None:
                return "unknown"
            self._another_task(ended, task.id)
            return "duplicate"
        if handle.task_id is None:
            reconciler = running.submitter.reconciler
            if reconciler.waits_for(key) is None:
                return "mismatch"
            # The create of this job is unexplained: the callback names its task (checked
            # through detail before the job adopts it).
            running.group.start_soon(reconciler.prove, key, task.id)
            return "accepted"
        if task.id != handle.task_id:
            self._another_task(handle, task.id)
            return "mismatch"
        return "accepted" if running.poller.confirm(task.id, task.status) else "duplicate"

    def _another_task(self, handle: JobHandle, task_id: str) -> None:
        """A callback of ``handle``'s job names a task it does not hold."""
        ledger = self._client.lip_sync.ledger
        if task_id != handle.task_id and not self._owns(task_id) and not ledger.owns(task_id):
            # This job's create made another task too: a duplicate, never adopted.
            ledger.disown(task_id)
            self._duplicate(handle.key, task_id)

    def _duplicate(self, key: str, task_id: str) -> None:
        """Task ``task_id`` may have been made by job ``key``'s create as well as its own."""
        handle = self._handles.get(key) or self._recent.get(key)
        if handle is None or task_id in handle.duplicates:
            return  # reported already (by time and by its callback), or long forgotten
        logger.warning("job %s: may have been created twice: task %s", key, task_id)
        handle.duplicates += (task_id,)
        if self._running is not None:
            self._running.submitter.stats.late += 1
        if self._journal is not None:
            self._journal.update(key, duplicates=json.dumps(sorted(handle.duplicates)))


@dataclass(frozen=True)
class _Plan:
    """A checked job: its key, fingerprint, and its journal row or live handle if any."""

    key: str
    job: LipSyncRequest | LipSyncJob
    fingerprint: str
    row: JournalRow | None
    handle: JobHandle | None = None


def _spec(job: LipSyncRequest | LipSyncJob) -> dict[str, Any]:
    """The job as journaled (JSON-ready); local paths made absolute."""
    if isinstance(job, LipSyncRequest):
        return {"request": job.model_dump(mode="json")}
    return {
        "template": job.template.model_dump(mode="json"),
        "video_path": None if job.video_path is None else os.path.abspath(job.video_path),
        "audio_path": None if job.audio_path is None else os.path.abspath(job.audio_path),
    }


def _fingerprint(spec: dict[str, Any]) -> str:
    canonical = json.dumps(spec, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _job_of(spec: dict[str, Any]) -> LipSyncRequest | LipSyncJob:
    """The job a journal row was made from (the inverse of ``_spec``)."""
    if "request" in spec:
        return LipSyncRequest.model_validate(spec["request"])
    video, audio = spec["video_path"], spec["audio_path"]
    return LipSyncJob(
        LipSyncRequest.model_validate(spec["template"]),
        None if video is None else Path(video),
        None if audio is None else Path(audio),
    )


def _task_record(task: LipSyncTask | None) -> dict[str, Any] | None:
    """A task object for the journal: result URLs expire, so they are not kept."""
    if task is None:
        return None
    return task.model_dump(mode="json", exclude={"video_url", "preview_url"})


def _finish_from(handle: JobHandle, row: JournalRow) -> None:
    """End a handle the way its journal row says the job ended."""
    task = None if row.task is None else LipSyncTask.model_validate(row.task)
    handle.task_id = row.task_id
    handle.last = task
    stage = JobStage(row.stage)
    if stage is JobStage.SUCCEEDED and task is not None:
        handle.progress = task.progress
        handle.finish(stage)
    elif stage is JobStage.FAILED and task is not None and task.failed:
        handle.finish(stage, job_failure(task, job_key=row.key))
    else:
        reason = row.error or "ended in an earlier run"
        if stage is JobStage.CANCELLED:
            handle.finish(stage, JobCancelledError(reason, job_key=row.key, task_id=row.task_id))
        else:
            handle.finish(stage, JobError(reason, job_key=row.key, task_id=row.task_id))


def _retryable(row: JournalRow) -> bool:
    """A failed row that may be created again: its create did not end unexplained."""
    return row.stage == JobStage.FAILED.value and not (row.error or "").startswith(
        CreateOutcomeUnknown.__name__
    )


def _doubt(client: AsyncChanjingClient) -> float:
    """Seconds after its journaled send that a create of an earlier run may still be handled:
    the horizon, plus a second for the moments between the write and the send."""
    return client.timeouts.create_horizon + 1.0


def _seed(limiter: object, rows: list[JournalRow], doubt: float) -> None:
    """Tell the create limiter about the creates of earlier runs still inside its window.

    A create whose outcome a run never learnt (on the wire when it stopped, or unknown) counts
    until ``doubt`` after the journal wrote it down (right before it left).
    """
    if not isinstance(limiter, SlidingWindowLimiter):
        return
    wall, mono = time.time(), time.monotonic()
    horizon = wall - limiter.window - limiter.margin
    times = [row.answered_at for row in rows if row.answered_at is not None]
    times += [
        row.sent_at + doubt
        for row in rows
        if row.sent_at is not None and row.task_id is None and not JobStage(row.stage).is_final
    ]
    limiter.seed(at - wall + mono for at in times if at > horizon)


def _expect(ledger: CreateLedger, rows: list[JournalRow]) -> None:
    """The tasks of earlier runs date the server's clock once read (when their send and answer
    times are known; the local wall clock is taken not to have stepped between runs, as the
    limiter's seeding takes it)."""
    shift = time.monotonic() - time.time()
    for row in rows:
        if row.task_id is not None and row.sent_at is not None and row.answered_at is not None:
            ledger.expect(row.task_id, row.sent_at + shift, row.answered_at + shift)


def _request_callback(request: LipSyncRequest | LipSyncJob) -> str | None:
    return request.callback if isinstance(request, LipSyncRequest) else request.template.callback


def _checked(job: object) -> LipSyncRequest | LipSyncJob:
    if isinstance(job, (LipSyncRequest, LipSyncJob)):
        return job
    if isinstance(job, Mapping):
        return LipSyncRequest(**job)
    raise InvalidInputError(
        "job", type(job).__name__, "must be a LipSyncRequest, a LipSyncJob or a mapping"
    )


def _check_seconds(name: str, value: object, *, allow_zero: bool) -> None:
    """Raise ConfigurationError unless ``value`` is a finite number of seconds (> 0 or >= 0)."""
    problem = _seconds_problem(value, allow_zero=allow_zero)
    if problem:
        raise ConfigurationError(f"{name}={value!r}: {problem}")


def _check_timeout(value: float | None) -> None:
    """A per-job ``timeout`` argument: None, or a finite number of seconds > 0."""
    problem = None if value is None else _seconds_problem(value, allow_zero=False)
    if problem:
        raise InvalidInputError("timeout", value, problem)


def _seconds_problem(value: object, *, allow_zero: bool) -> str | None:
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= 0 if allow_zero else value > 0)
    ):
        return None
    return f"must be a finite number of seconds {'>= 0' if allow_zero else '> 0'}"


async def _aiter(jobs: Iterable[Job] | AsyncIterable[Job]) -> AsyncIterator[Job]:
    if isinstance(jobs, AsyncIterable):
        async for job in jobs:
            yield job
    else:
        for job in jobs:
            yield job
