"""Starting the jobs of a JobManager: checked, written down, then set going.

A job passes three steps. :meth:`Launcher.plan` checks it and its key without changing
anything: a key live in this manager or ended with the same fields gives back its handle, a
key its store holds for the same job resumes that record. :meth:`Launcher.launch` then makes
every handle and its record, has the store commit them all, and only then sets them going:
uploads first for local files, the create queue for the others, the poller for a record that
already has its task, the reconciler for a record whose create was sent and never answered.
If the store cannot commit them, they are forgotten as if never submitted.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from .._checks import number_problem
from ..client._resources import require_id
from ..errors import CreateOutcomeUnknown, InvalidInputError
from ..models import LipSyncRequest
from ._handle import JobHandle, JobStage
from ._jobspec import LipSyncJob
from ._journal_rules import doubt, fingerprint, job_of, replaceable, spec
from ._records import JobRecord

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from ..stores._journal import JournalRow
    from ._book import JobBook, Running

__all__ = ["Launcher", "Plan", "check_timeout", "checked"]


@dataclass(frozen=True)
class Plan:
    """A checked job: its key, fingerprint, and its stored record or live handle if any."""

    key: str
    job: LipSyncRequest | LipSyncJob
    fingerprint: str
    row: JournalRow | None
    handle: JobHandle | None = None


class Launcher:
    """Checks and starts the jobs of a book (see the module doc)."""

    def __init__(self, book: JobBook) -> None:
        self._book = book

    async def submit(
        self,
        running: Running,
        jobs: list[object],
        keys: Iterable[str] | None,
        timeout: float | None,
        *,
        indexed: bool,
    ) -> list[JobHandle]:
        """``JobManager.submit`` and ``submit_many``: check every job, then start them all.

        Raises:
            InvalidInputError: a job or key is invalid (``indexed``: its index is in the
                field name); nothing was started.
            JournalError: the store could not commit them (see :meth:`launch`).
        """
        names = [uuid.uuid4().hex for _ in jobs] if keys is None else list(keys)
        if len(names) != len(jobs):
            raise InvalidInputError("keys", len(names), f"must give one key per job ({len(jobs)})")
        check_timeout(timeout)
        # Records this run left unfinished are read back: a repeated key resumes its record.
        await self._book.store.recall(names)
        plans: list[Plan] = []
        seen: set[str] = set()
        for index, (job, key) in enumerate(zip(jobs, names, strict=True)):
            try:
                plans.append(self.plan(checked(job), key, seen))
            except InvalidInputError as exc:
                if not indexed:
                    raise
                prefix = "jobs" if exc.field != "key" else "keys"
                field = f"{prefix}[{index}]" + ("" if exc.field == "key" else f".{exc.field}")
                raise InvalidInputError(field, exc.value, exc.allowed) from None
            seen.add(key)
        return await self.launch(running, plans, timeout)

    async def resume(self, running: Running, timeout: float | None) -> list[JobHandle]:
        """``JobManager.resume``: start every unfinished record not taken up yet."""
        check_timeout(timeout)
        store = self._book.store
        await store.recall()
        plans = [
            Plan(row.key, job_of(row.spec), row.fingerprint, row) for row in store.unfinished()
        ]
        return await self.launch(running, plans, timeout)

    def plan(self, job: LipSyncRequest | LipSyncJob, key: str, seen: set[str]) -> Plan:
        """Check a job and its key; nothing changes yet."""
        book = self._book
        require_id("key", key)
        if _unencodable(key):
            raise InvalidInputError("key", key, "must be text UTF-8 can encode (no lone surrogate)")
        if book.callbacks is not None:
            book.callbacks.check_key(key)
        digest = fingerprint(spec(job))
        if key in seen:
            raise InvalidInputError("key", key, "is given to two jobs of this call")
        live = book.registry.record(key)
        known = book.store.finished(key) if live is None else (live.handle, live.fingerprint)
        if known is not None:
            if known[1] == digest:
                return Plan(key, job, digest, None, known[0])
            raise InvalidInputError("key", key, "is already used by another job of this manager")
        row = book.store.row(key)
        if row is not None and row.fingerprint != digest and not replaceable(row):
            raise InvalidInputError(
                "key", key, "was journaled for a different job: use another key or journal"
            )
        return Plan(key, job, digest, row)

    async def launch(
        self, running: Running, plans: list[Plan], timeout: float | None
    ) -> list[JobHandle]:
        """Start checked jobs: written down (and committed) first, then set going.

        Raises:
            JournalError: the store could not commit them: their writes are withdrawn and
                the jobs forgotten, so the same call can be made again.
            InvalidInputError: a record taken up holds a request that no longer validates;
                no job of the call is set going.
        """
        started: list[tuple[JobHandle, Callable[[], None] | None]] = []

        def begin() -> None:
            # All or none: a job that cannot be built (a record whose request no longer
            # validates) raises before any is listed, so its error reaches the caller as is.
            started.extend([self._start(running, plan, timeout) for plan in plans])

        try:
            await self._book.store.write_down(begin)
        except BaseException:
            if started:  # built, and the commit failed
                for plan, (handle, _) in zip(plans, started, strict=True):
                    self._undo(plan, handle)
            raise
        for handle, go in started:
            # A job cancelled during the commit (the manager closed) is not set going.
            if go is not None and not handle.done:
                go()
        return [handle for handle, _ in started]

    def _start(
        self, running: Running, plan: Plan, timeout: float | None
    ) -> tuple[JobHandle, Callable[[], None] | None]:
        """Make the handle of a checked job (resumed from its record if it has one).

        Returns the handle and what sets it going, to call once the store holds the job.
        """
        if plan.handle is not None:
            return plan.handle, None
        book, key, job = self._book, plan.key, plan.job
        uploads = job.uploads() if isinstance(job, LipSyncJob) else []
        stage = JobStage.UPLOADING if uploads else JobStage.QUEUED
        handle = JobHandle(key, job, stage=stage, cancel=book.cancel)
        row = book.store.begin(handle, job, plan.row, plan.fingerprint)
        if handle.done:  # its record says it ended
            return handle, None
        record = JobRecord(handle, plan.fingerprint, timeout)
        book.registry.add(record)
        if row is not None and row.task_id is not None:
            handle.task_id = row.task_id
            handle._advance(JobStage(row.stage))
            return handle, functools.partial(book.track, handle, row.task_id, delay=0.0)
        if row is not None and row.sent_at is not None and row.request is not None:
            # A create of it was sent and its outcome never learnt: explain it before anything
            # else; the request sent is in the record, so no file is needed.
            record.request = LipSyncRequest.model_validate(row.request)
            handle._advance(JobStage.QUEUED)
            return handle, functools.partial(self._unexplained, running, handle, row.sent_at)
        if isinstance(job, LipSyncJob) and uploads:
            record.uploading = anyio.CancelScope()

            def upload_first() -> None:
                running.group.start_soon(self._prepare, running, record, job, uploads)

            return handle, upload_first
        record.request = job.template if isinstance(job, LipSyncJob) else job
        handle._advance(JobStage.QUEUED)
        return handle, functools.partial(running.submitter.push, handle)

    def _undo(self, plan: Plan, handle: JobHandle) -> None:
        """Forget a job whose writes the store withdrew: as if it had never been submitted."""
        if handle is plan.handle:
            return  # known before this call
        self._book.registry.drop(handle.key)
        self._book.store.undo(handle, plan.row)

    def _unexplained(self, running: Running, handle: JobHandle, sent_at: float) -> None:
        """Reconcile the create of a job taken up from its record, sent at ``sent_at`` (wall
        time) with an outcome never learnt.

        It was sent by an earlier run, or by this one: the job then ended CreateOutcomeUnknown
        without candidates and its key was submitted again, and its attempt, still open in the
        ledger, is reconciled again (a second attempt for the same create would be a rival).
        """
        client = self._book.client
        ledger = client.lip_sync.ledger
        attempts = [a for a in ledger.open_attempts if a.key == handle.key and a.state == "unknown"]
        if attempts:
            attempt = attempts[0]
        else:
            # Written down right before it left: it left then, within the request timeout.
            sent = sent_at - time.time() + time.monotonic()
            attempt = ledger.resumed(handle.key, sent, sent + doubt(client))
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
        running: Running,
        record: JobRecord,
        job: LipSyncJob,
        uploads: list[tuple[Path, str]],
    ) -> None:
        """Upload a job's files, then queue its create."""
        handle, scope = record.handle, record.uploading
        assert scope is not None
        with scope:
            try:
                ids = {
                    path: await running.uploads.file_id(path, service) for path, service in uploads
                }
            except Exception as exc:  # any failure of its files fails this job only
                self._book.failed(handle, exc)
                return
            finally:
                record.uploading = None
            record.request = job.to_request(ids)
            handle._advance(JobStage.QUEUED)
            running.submitter.push(handle)


def checked(job: object) -> LipSyncRequest | LipSyncJob:
    """A job as ``submit`` takes it, as a request or a job with local files."""
    if isinstance(job, (LipSyncRequest, LipSyncJob)):
        return job
    if isinstance(job, Mapping):
        return LipSyncRequest(**job)
    raise InvalidInputError(
        "job", type(job).__name__, "must be a LipSyncRequest, a LipSyncJob or a mapping"
    )


def check_timeout(value: float | None) -> None:
    """A per-job ``timeout`` argument: None, or a finite number of seconds > 0."""
    problem = None if value is None else number_problem(value, above=True, unit="seconds")
    if problem is not None:
        raise InvalidInputError("timeout", value, problem)


def _unencodable(text: str) -> bool:
    """True for text UTF-8 cannot encode (a lone surrogate): no journal, URL or HMAC takes it."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False
