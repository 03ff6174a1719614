"""``JobManager``: submit lip-sync jobs, keep the create limit saturated, track every task.

One manager owns an anyio task group with three kinds of background work: the submitter
(FIFO creates through the client's create limiter, ``_submit``), the shared poller (``list``
pages and ``detail`` reads for every task in flight, ``_poller``) and uploads of local files
(``_uploads``). An optional :class:`~chanjing_async.callbacks.CallbackReceiver` wakes the
poller when Chanjing reports a task's end. Leaving the ``async with`` block stops all of it
(``_lifecycle``). The jobs themselves are kept in a :class:`~._book.JobBook`: one record per
live job, and a store (``_store``) where a journal writes them down.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import AsyncIterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar

import anyio

from .._checks import check_setting, check_type, number_problem
from ..callbacks._receiver import CallbackReceiver
from ..client._resources import require_id
from ..errors import InvalidInputError
from ..models import LipSyncRequest
from ..stores._journal import Journal
from ._book import JobBook, Running
from ._jobspec import LipSyncJob
from ._launch import Launcher, check_timeout
from ._lifecycle import Settings, close_running, open_running
from ._poller import PollPolicy
from ._stats import JobManagerStats
from ._store import open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
    from types import TracebackType

    from ..client._client import AsyncChanjingClient
    from ._handle import JobHandle
    from ._store import JobStore

__all__ = ["Job", "JobManager", "JobManagerStats", "store_of"]

Job: TypeAlias = LipSyncRequest | LipSyncJob | Mapping[str, Any]
"""What ``submit`` takes: a request with file ids, a job with local files, or request fields."""

T = TypeVar("T")


class _Completions:
    """Handles in the order they finish; ``next`` waits for the next one."""

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
    again (rules in ``chanjing_async.jobs._submit``). One shared poller reads every task in flight
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
    resumes the row with a new handle (``_journal_store`` has the rules). A
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
        self._callbacks = callbacks
        self._settings = Settings(
            upload_concurrency,
            float(reconcile_settle),
            float(reconcile_margin),
            max_create_attempts,
        )
        self._state: Literal["unopened", "open", "closed"] = "unopened"
        self._book = JobBook(
            client,
            open_store(journal, retry_failed=retry_failed),
            callbacks=callbacks,
            policy=poll or PollPolicy(),
            job_timeout=float(job_timeout),
        )
        self._launcher = Launcher(self._book)
        self._claims = self._book.side.claims  # bounds the reads of callbacks' claims

    def __repr__(self) -> str:
        return f"<JobManager {self._state} jobs={len(self._book.registry)}>"

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> JobManager:
        if self._state != "unopened":
            raise RuntimeError(f"JobManager cannot be reopened (it is {self._state})")
        await open_running(self._book, self._settings)
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
        await close_running(self._book, exc)

    @property
    def journal(self) -> Journal | None:
        """The journal of this manager, if it has one."""
        return self._book.store.journal

    def _require_open(self) -> Running:
        running = self._book.running
        if running is None:
            state = "closed" if self._state == "closed" else "not open yet"
            raise RuntimeError(f"JobManager is {state}: use 'async with JobManager(...)'")
        return running

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
        running = self._require_open()
        return (await self._launcher.submit(running, [job], keys, timeout, indexed=False))[0]

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
        running = self._require_open()
        return await self._launcher.submit(running, list(jobs), keys, timeout, indexed=True)

    async def resume(self, *, timeout: float | None = None) -> list[JobHandle]:
        """Pick up every unfinished job of the journal that is not live in this manager.

        Those are the rows of earlier runs not taken up yet by ``submit``, and the rows this
        run left unfinished (a job never sent, past its deadline, or whose create's outcome
        stayed unknown without candidates: see ``_journal_rules``): each gets a new handle, as
        a later run would give it.

        Returns:
            Their handles, in submission order; [] without a journal.

        Raises:
            JournalError: the journal could not be written; no job was taken up.
        """
        return await self._launcher.resume(self._require_open(), timeout)

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
        async for handle in _submit_lazily(self.submit, jobs, window, timeout):
            yield handle

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
        check_timeout(timeout)
        return self._book.attach(running, task_id, timeout)

    def get(self, key: str) -> JobHandle | None:
        """The handle of job ``key``, or None if this manager has none.

        A manager knows its live jobs, the last 4,096 that ended, and, with a journal, every
        job whose row says it ended once a submit or ``resume`` took that row up. A journal
        row not taken up yet (an earlier run's, or one this run left unfinished: see
        :meth:`resume`) has no live handle: ``submit(job, key=key)`` or ``resume()`` gives
        it one; ``attach(task_id)`` tracks a task without its row.
        """
        handle = self._book.registry.handle(key)
        if handle is None:
            handle = (self._book.store.finished(key) or (None, ""))[0]
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
        return len(self._book.registry)

    @property
    def unsettled_creates(self) -> int:
        """Ambiguous creates not explained yet, or sent again and still watched (for one more
        processing horizon) for a task that appears too late: a duplicate, reported when seen.
        Keep the manager open until this is 0 to hear of every such duplicate."""
        return self._require_open().submitter.reconciler.unsettled


async def _aiter(items: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    """The items of a sync or async iterable, as an async iterator."""
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


def store_of(manager: JobManager) -> JobStore:
    """Where ``manager`` keeps its jobs (for the batch runner: its rows and deliveries)."""
    return manager._book.store


async def _submit_lazily(
    submit: Callable[..., Awaitable[JobHandle]],
    jobs: Iterable[Job] | AsyncIterable[Job],
    window: int,
    timeout: float | None,
) -> AsyncIterator[JobHandle]:
    """``JobManager.map``: submit through ``submit``, at most ``window`` jobs unfinished."""
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
            handle = await submit(job, timeout=timeout)
            handle._on_done(completions.add)
            unfinished += 1
        if unfinished == 0:
            return
        yield await completions.next()
        unfinished -= 1
