"""``JobManager``: submit lip-sync jobs, keep the create limit saturated, track every task.

One manager owns an anyio task group with three kinds of background work: the submitter
(FIFO creates through the client's create limiter, ``_submit``), the shared poller (``list``
pages and ``detail`` reads for every task in flight, ``_poller``) and uploads of local files
(``_uploads``). An optional :class:`~chanjing_async.callbacks.CallbackReceiver` wakes the
poller when Chanjing reports a task's end. Leaving the ``async with`` block stops all of it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import random
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import anyio

from .._checks import check_setting, check_type, number_problem
from ..callbacks._receiver import CallbackReceiver
from ..client._resources import require_id
from ..errors import (
    ChanjingError,
    CreateOutcomeUnknown,
    InvalidInputError,
    JobError,
    JournalError,
)
from ..models import LipSyncRequest, LipSyncTask
from ..stores._journal import Journal
from ._callback_claims import CallbackClaims
from ._handle import JobHandle, JobStage
from ._job_journal import ManagerJournal, doubt, fingerprint, job_of, replaceable, spec
from ._jobspec import LipSyncJob
from ._poller import Poller, PollPolicy, PollStats
from ._submit import SubmitStats, Submitter
from ._uploads import Uploads

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable
    from pathlib import Path
    from types import TracebackType

    from anyio.abc import TaskGroup

    from ..callbacks._receiver import Verdict
    from ..client._client import AsyncChanjingClient
    from ..stores._journal import JournalRow

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

    def as_dict(self) -> dict[str, Any]:
        """The counters as plain data, nested stats included: ready for ``json.dumps``.

        Example: ``{"submit": {"sent": 12, ...}, "poll": {"list_calls": 3, ...},
        "uploads": 2, "callbacks": {"accepted": 12}}``.
        """
        return dataclasses.asdict(self)


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
        retry_failed: with a journal, submit again the jobs it records as failed (a new
            task each), except a create whose outcome stayed unknown: its task may exist.

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
    window from the journal, so a restart is not answered 40001. A job never sent (no
    connection, credentials refused: nothing can have been created), past its deadline, whose
    create's outcome stayed unknown without candidates, or left unfinished by a closing
    manager stays unfinished in the journal: its key, submitted again (in this run too),
    resumes the row with a new handle (``_job_journal`` has the rules). A
    journal write that fails (a full disk) raises ``JournalError`` from the call that needed
    it (``submit``: nothing was submitted; the same call can be made again) or fails the one
    job whose create it was to precede (nothing was sent); it never stops the manager.

    Raises:
        ConfigurationError: a setting of the wrong type or out of range, named with its value.
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
        check_setting("job_timeout", job_timeout, above=True, unit="seconds")
        check_setting("reconcile_settle", reconcile_settle, unit="seconds")
        # create_time is whole server seconds: less than 1 s could miss our own task.
        check_setting("reconcile_margin", reconcile_margin, minimum=1, unit="seconds")
        check_setting("upload_concurrency", upload_concurrency, integer=True, minimum=1)
        check_setting("max_create_attempts", max_create_attempts, integer=True, minimum=1)
        check_type("poll", poll, PollPolicy)
        check_type("callbacks", callbacks, CallbackReceiver)
        check_type("journal", journal, Journal, str, os.PathLike)
        check_type("retry_failed", retry_failed, bool, optional=False)
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
        self._reported: dict[str, str] = {}  # possible duplicates: task id -> job key
        self._claims = CallbackClaims()  # bounds the reads of callbacks naming other tasks
        self._timeouts: dict[str, float] = {}
        self._prepared: dict[str, LipSyncRequest] = {}
        self._uploading: dict[str, anyio.CancelScope] = {}
        self._fingerprints: dict[str, str] = {}
        self._records = (
            None
            if journal is None
            else ManagerJournal(
                journal if isinstance(journal, Journal) else Journal(journal),
                retry_failed=retry_failed,
            )
        )

    def __repr__(self) -> str:
        return f"<JobManager {self._state} jobs={len(self._handles)}>"

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> JobManager:
        if self._state != "unopened":
            raise RuntimeError(f"JobManager cannot be reopened (it is {self._state})")
        limiter = self._client.limiters.create  # raises if the client is not open
        records = self._records
        if records is not None:
            await records.open(self._client)
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
            serial=records is not None,
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
            journal=self.journal,
        )
        try:
            if self._callbacks is not None:
                await self._callbacks.open(self._on_callback, group)
        except BaseException as exc:
            group.cancel_scope.cancel()
            await group.__aexit__(None, None, None)
            if records is not None:
                await _close_journal(records.journal, exc)
            raise
        group.start_soon(submitter.run)
        group.start_soon(poller.run)
        if records is not None:
            group.start_soon(records.journal.autoflush)
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

        Raises:
            JournalError: the journal's last writes could not be committed (only when the
                block itself raised nothing; otherwise it is logged): the journal holds what
                a crash at that moment would have left, which the next run picks up.
        """
        self._state = "closed"
        if self._records is not None:
            self._records.closing = True
        for handle in list(self._handles.values()):
            handle._end_cancelled("the JobManager closed before the job finished")
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
                if self._records is not None:
                    await _close_journal(self._records.journal, exc)

    @property
    def journal(self) -> Journal | None:
        """The journal of this manager, if it has one."""
        return None if self._records is None else self._records.journal

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
            JournalError: the journal could not write the job down (a full disk); nothing
                was queued or sent, and the same submit can be made again.
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
            JournalError: as for :meth:`submit`; none of the jobs was queued.
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
        if self._records is not None:
            # Rows this run left unfinished are read back: a repeated key resumes its row.
            await self._records.recall(names)
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
        return await self._launch(running, plans, timeout)

    async def resume(self, *, timeout: float | None = None) -> list[JobHandle]:
        """Pick up every unfinished job of the journal that is not live in this manager.

        Those are the rows of earlier runs not taken up yet by ``submit``, and the rows this
        run left unfinished (a job never sent, past its deadline, or whose create's outcome
        stayed unknown without candidates: see ``_job_journal``): each gets a new handle, as
        a later run would give it.

        Returns:
            Their handles, in submission order; [] without a journal.

        Raises:
            JournalError: the journal could not be written; no job was taken up.
        """
        running = self._require_open()
        _check_timeout(timeout)
        if self._records is None:
            return []
        await self._records.recall()
        plans = [
            _Plan(row.key, job_of(row.spec), row.fingerprint, row)
            for row in self._records.unfinished()
        ]
        return await self._launch(running, plans, timeout)

    async def _launch(
        self, running: _Running, plans: list[_Plan], timeout: float | None
    ) -> list[JobHandle]:
        """Start checked jobs: written down (and committed) first, then set going.

        Raises:
            JournalError: the journal could not commit them: their writes are withdrawn and
                the jobs forgotten, so the same call can be made again.
        """
        records = self._records
        if records is None:
            started = [self._start(running, plan, timeout) for plan in plans]
        else:
            with records.journal.recording() as mine:
                started = [self._start(running, plan, timeout) for plan in plans]
            try:
                # Shielded, so that a cancelled caller cannot leave jobs half submitted.
                with anyio.CancelScope(shield=True):
                    await records.journal.flush(mine)
            except BaseException:
                for plan, (handle, _) in zip(plans, started, strict=True):
                    self._undo(plan, handle)
                raise
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
        problem = number_problem(window, integer=True, minimum=1)
        if problem is not None:
            raise InvalidInputError("window", window, problem)
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
                handle._on_done(completions.add)
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
            handle._on_done(completions.add)
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

    def get(self, key: str) -> JobHandle | None:
        """The handle of job ``key``, or None if this manager has none.

        A manager knows its live jobs, the last 4,096 that ended, and, with a journal, every
        job whose row says it ended once a submit or ``resume`` took that row up. A journal
        row not taken up yet (an earlier run's, or one this run left unfinished: see
        :meth:`resume`) has no live handle: ``submit(job, key=key)`` or ``resume()`` gives
        it one; ``attach(task_id)`` tracks a task without its row.
        """
        handle = self._handles.get(key) or self._recent.get(key)
        if handle is None and self._records is not None:
            handle = self._records.finished.get(key, (None, ""))[0]
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
        if _unencodable(key):
            raise InvalidInputError("key", key, "must be text UTF-8 can encode (no lone surrogate)")
        if self._callbacks is not None:
            self._callbacks.check_key(key)
        digest = fingerprint(spec(job))
        if key in seen:
            raise InvalidInputError("key", key, "is given to two jobs of this call")
        records = self._records
        current = self._handles.get(key)
        if current is not None:
            known: tuple[JobHandle, str] | None = (current, self._fingerprints[key])
        else:
            known = None if records is None else records.finished.get(key)
        if known is not None:
            if known[1] == digest:
                return _Plan(key, job, digest, None, known[0])
            raise InvalidInputError("key", key, "is already used by another job of this manager")
        row = None if records is None else records.rows.get(key)
        if row is not None and row.fingerprint != digest and not replaceable(row):
            raise InvalidInputError(
                "key", key, "was journaled for a different job: use another key or journal"
            )
        return _Plan(key, job, digest, row)

    def _start(
        self, running: _Running, plan: _Plan, timeout: float | None
    ) -> tuple[JobHandle, Callable[[], None] | None]:
        """Make the handle of a checked job (resumed from its row if it has one).

        Returns the handle and what sets it going, to call once the journal holds the job.
        """
        if plan.handle is not None:
            return plan.handle, None
        key, job = plan.key, plan.job
        uploads = job.uploads() if isinstance(job, LipSyncJob) else []
        stage = JobStage.UPLOADING if uploads else JobStage.QUEUED
        handle = JobHandle(key, job, stage=stage, cancel=self._cancel)
        row = None
        if self._records is not None:
            row = self._records.begin(handle, job, plan.row, plan.fingerprint)
            if handle.done:  # its row says it ended
                return handle, None
        self._handles[key] = handle
        self._fingerprints[key] = plan.fingerprint
        if timeout is not None:
            self._timeouts[key] = timeout
        if row is not None and row.task_id is not None:
            task_id = row.task_id
            handle.task_id = task_id
            handle._advance(JobStage(row.stage))
            return handle, functools.partial(self._track, running, handle, task_id, delay=0.0)
        if row is not None and row.sent_at is not None and row.request is not None:
            # A create of it was sent and its outcome never learnt: explain it before anything
            # else; the request sent is in the row, so no file is needed.
            self._prepared[key] = LipSyncRequest.model_validate(row.request)
            handle._advance(JobStage.QUEUED)
            return handle, functools.partial(self._unexplained, running, handle, row.sent_at)
        if isinstance(job, LipSyncJob) and uploads:
            scope = anyio.CancelScope()
            self._uploading[key] = scope

            def upload_first() -> None:
                running.group.start_soon(self._prepare, running, handle, job, uploads, scope)

            return handle, upload_first
        self._prepared[key] = job.template if isinstance(job, LipSyncJob) else job
        handle._advance(JobStage.QUEUED)
        return handle, functools.partial(running.submitter.push, handle)

    def _undo(self, plan: _Plan, handle: JobHandle) -> None:
        """Forget a job whose writes the journal withdrew: as if it had never been submitted."""
        if handle is plan.handle:
            return  # known before this call
        key = handle.key
        self._handles.pop(key, None)
        self._fingerprints.pop(key, None)
        self._timeouts.pop(key, None)
        self._prepared.pop(key, None)
        self._uploading.pop(key, None)
        assert self._records is not None  # only a journal withdraws
        self._records.undo(handle, plan.row)

    def _unexplained(self, running: _Running, handle: JobHandle, sent_at: float) -> None:
        """Reconcile the create of a job taken up from its row, sent at ``sent_at`` (wall time)
        with an outcome never learnt.

        It was sent by an earlier run, or by this one: the job then ended CreateOutcomeUnknown
        without candidates and its key was submitted again, and its attempt, still open in the
        ledger, is reconciled again (a second attempt for the same create would be a rival).
        """
        ledger = self._client.lip_sync.ledger
        attempts = [a for a in ledger.open_attempts if a.key == handle.key and a.state == "unknown"]
        if attempts:
            attempt = attempts[0]
        else:
            # Written down right before it left: it left then, within the request timeout.
            sent = sent_at - time.time() + time.monotonic()
            attempt = ledger.resumed(handle.key, sent, sent + doubt(self._client))
        unknown = CreateOutcomeUnknown(
            "journaled as sent, its outcome never learnt (the process stopped, or the task "
            "list could not tell)",
            endpoint="/open/v1/video_lip_sync/create",
            sent_at=sent_at,
            gave_up_at=time.time(),
            request={},
        )
        running.submitter.unexplained(handle, attempt, unknown)

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
            handle._advance(JobStage.QUEUED)
            running.submitter.push(handle)

    def _request_of(self, handle: JobHandle) -> LipSyncRequest:
        request = self._prepared[handle.key]
        if self._callbacks is not None and request.callback is None:
            request = request.model_copy(update={"callback": self._callbacks.url_for(handle.key)})
        return request

    def _owns(self, task_id: str) -> bool:
        # The client's ledger knows the tasks of this run (any manager's, or a direct
        # create's); the journal knows those of earlier runs.
        return self._records is not None and self._records.owns(task_id)

    async def _before_send(self, handle: JobHandle) -> None:
        """With a journal: commit that the create is going out, before it does.

        A JournalError stops the create (nothing is sent) and fails this job only; its row
        stays unfinished, so its key can be submitted again.
        """
        if self._records is not None:
            request = self._prepared[handle.key].model_dump(mode="json")
            await self._records.going_out(handle.key, request)

    def _requeued(self, handle: JobHandle) -> None:
        """Its create was refused, or created nothing: no create of it is pending."""
        if self._records is not None:
            self._records.requeued(handle.key)

    def _created(self, handle: JobHandle, task_id: str) -> None:
        if self._records is not None:
            self._records.created(handle.key, task_id)
        self._prepared.pop(handle.key, None)
        handle.task_id = task_id
        if handle.done:
            # Cancelled while its create was in flight: the task exists (and is billed), so
            # its id goes on the handle and on the error wait() raises; it is not tracked.
            if isinstance(handle.error, JobError):
                handle.error.task_id = task_id
            return
        handle._advance(JobStage.SUBMITTED)
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
        handle._finish(JobStage.FAILED, error)
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
        handle._end_cancelled("cancelled by the caller")
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
            if not self._claims.admit(key, task.id):
                return "duplicate"
            running.group.start_soon(reconciler.prove, key, task.id)
            return "accepted"
        if task.id != handle.task_id:
            self._another_task(handle, task.id)
            return "mismatch"
        return "accepted" if running.poller.confirm(task.id, task.status) else "duplicate"

    def _another_task(self, handle: JobHandle, task_id: str) -> None:
        """A callback of ``handle``'s job names a task it does not hold: if ``detail`` knows
        it and nobody owns it, this job's create made another task too (a duplicate, never
        adopted). The callback's word alone records nothing."""
        if self._foreign(handle, task_id) and self._claims.admit(handle.key, task_id):
            running = self._running
            if running is not None:
                running.group.start_soon(self._confirm_another_task, handle, task_id)

    def _foreign(self, handle: JobHandle, task_id: str) -> bool:
        ledger = self._client.lip_sync.ledger
        return task_id != handle.task_id and not self._owns(task_id) and not ledger.owns(task_id)

    async def _confirm_another_task(self, handle: JobHandle, task_id: str) -> None:
        try:
            await self._client.lip_sync.get(task_id)
        except ChanjingError as exc:
            logger.info("job %s: callback task %s not confirmed (%s)", handle.key, task_id, exc)
            return
        if self._foreign(handle, task_id):  # still nobody's after the read
            self._client.lip_sync.ledger.disown(task_id)
            self._duplicate(handle.key, task_id, proven=True)

    def _duplicate(self, key: str, task_id: str, *, proven: bool = False) -> None:
        """Task ``task_id`` may have been made by job ``key``'s create as well as its own.

        Reported once per task, on one job: by time on the job most likely to have made it,
        moved to the job its callback names (``proven``) if that is another.
        """
        earlier = self._reported.get(task_id)
        if earlier == key or (earlier is not None and not proven):
            return  # reported already
        handle = self._handles.get(key) or self._recent.get(key)
        if handle is None:
            return  # long forgotten
        if earlier is not None:
            self._set_duplicates(earlier, task_id, add=False)
        elif self._running is not None:
            self._running.submitter.stats.late += 1
        self._reported[task_id] = key
        logger.warning("job %s: may have been created twice: task %s", key, task_id)
        self._set_duplicates(key, task_id, add=True)

    def _set_duplicates(self, key: str, task_id: str, *, add: bool) -> None:
        handle = self._handles.get(key) or self._recent.get(key)
        if handle is None:
            return
        others = tuple(task for task in handle.duplicates if task != task_id)
        handle.duplicates = (*others, task_id) if add else others
        if self._records is not None:
            self._records.duplicates(key, handle.duplicates)


@dataclass(frozen=True)
class _Plan:
    """A checked job: its key, fingerprint, and its journal row or live handle if any."""

    key: str
    job: LipSyncRequest | LipSyncJob
    fingerprint: str
    row: JournalRow | None
    handle: JobHandle | None = None


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


def _unencodable(text: str) -> bool:
    """True for text UTF-8 cannot encode (a lone surrogate): no journal, URL or HMAC takes it."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def _check_timeout(value: float | None) -> None:
    """A per-job ``timeout`` argument: None, or a finite number of seconds > 0."""
    problem = None if value is None else number_problem(value, above=True, unit="seconds")
    if problem is not None:
        raise InvalidInputError("timeout", value, problem)


async def _close_journal(journal: Journal, raised: BaseException | None) -> None:
    """Close a manager's journal; a failure to commit its last writes is raised, unless the
    manager's block raised already (that exception is the one to see: this one is logged)."""
    try:
        await journal.close()
    except JournalError as exc:
        if raised is None:
            raise
        logger.warning("%s (while closing after an error)", exc)


async def _aiter(jobs: Iterable[Job] | AsyncIterable[Job]) -> AsyncIterator[Job]:
    if isinstance(jobs, AsyncIterable):
        async for job in jobs:
            yield job
    else:
        for job in jobs:
            yield job
