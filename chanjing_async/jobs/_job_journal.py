"""What a JobManager writes in its journal, and how a key the journal holds is taken up again.

Each job is one row keyed by its job key, written when it is submitted (``begin``), marked
*sending* in a committed write before its create leaves (``going_out``), then given its task
id, every stage change and its end. A key the journal holds is never written as a new row;
submitting it again gives:

* the same handle, while the job is live in this manager;
* the same done handle, once the row says the job ended (in this run or an earlier one);
* a **new handle that resumes the row**, when the row is unfinished but the job is not live
  here: a row of an earlier run, or one this run left unfinished when its handle ended without
  the job ending (its deadline passed while the task ran on; its create's outcome stayed
  unknown with no candidate, as when the task list could not be read; it was never sent, see
  :func:`never_sent`). The new handle picks the job up exactly as a later run would: a
  created task is tracked again (with a new deadline), an unexplained create is reconciled
  again, a job never sent is queued.

A job **never sent** failed before any create of it could make a task, for a reason that says
nothing about the job itself: no connection (its uploads or its create), the credentials or
the token refused, 40001 too often, a page from something in front of the API, its "sending"
write failed. Its row keeps its last stage (queued or uploading), with ``sent_at`` cleared
and the error noted: no task of it can exist, so sending it again makes no second one. A job
the service refused or failed (bad parameters, a file it could not use, a failed task) is
written as failed: it runs again only with ``retry_failed``, as a new task.

A submit whose writes cannot be committed withdraws them (``Journal.flush(writes)``) and
raises ``JournalError``; the manager then forgets the jobs (``undo``), so the same submit,
made again, writes each row once and creates each job once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import (
    AuthenticationError,
    CreateOutcomeUnknown,
    HTTPStatusError,
    JobCancelledError,
    JobError,
    JobTimeoutError,
    JournalError,
    RateLimitError,
    TransportError,
    job_failure,
)
from ..limits._limits import SlidingWindowLimiter
from ..models import LipSyncRequest, LipSyncTask
from ._handle import JobHandle, JobStage
from ._jobspec import LipSyncJob

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..client._attempts import CreateLedger
    from ..client._client import AsyncChanjingClient
    from ..stores._journal import Journal, JournalRow

__all__ = [
    "ManagerJournal",
    "doubt",
    "fingerprint",
    "job_of",
    "never_sent",
    "spec",
    "stays_unfinished",
]

FINISHED_KEPT = 4096
"""Done handles kept for repeated keys; older ones are read back from the journal."""
OWNED_SECONDS = 7200.0
"""Tasks of earlier runs created this recently count as owned (a create's window is minutes)."""


class ManagerJournal:
    """A JobManager's side of its journal (see the module doc).

    Args:
        journal: the journal (opened by :meth:`open`).
        retry_failed: a failed row submitted again starts afresh (see ``JobManager``).

    Attributes:
        journal: the journal.
        rows: rows not taken up by a handle yet: every row of earlier runs at first, and the
            rows this run left unfinished once a submit or ``resume`` asks for them again.
        finished: the done handle (and fingerprint) of the latest jobs (``FINISHED_KEPT``)
            whose row says it ended; older ones are read back from the journal when their
            key is submitted again (a done handle again, a new object).
        closing: set by the manager as it closes: the jobs it cancels stay unfinished.
    """

    def __init__(self, journal: Journal, *, retry_failed: bool) -> None:
        self.journal = journal
        self.retry_failed = retry_failed
        self.rows: dict[str, JournalRow] = {}
        self.finished: OrderedDict[str, tuple[JobHandle, str]] = OrderedDict()
        self.closing = False
        self._forgotten = False  # some finished jobs are only in the journal now
        # Task ids of earlier runs recent enough to fall in a create's window (this run's are
        # owned by the client's ledger): a batch of any length keeps a bounded set.
        self._tasks: set[str] = set()
        self._live: dict[str, tuple[JobStage, str]] = {}  # stage last written, fingerprint
        self._left: set[str] = set()  # keys this run left unfinished, not taken up again

    async def open(self, client: AsyncChanjingClient) -> None:
        """Open the journal for ``client``'s account and read every row.

        The create limiter learns the creates of the last window, and the ledger the tasks
        that will date the server's clock once read.

        Raises:
            ConfigurationError: the file is no journal of this version, is open already, or
                belongs to another app id or server.
            JournalError: the journal cannot be written.
        """
        await self.journal.open()
        try:
            await self.journal.claim(client.app_id, client.base_url)
            rows = await self.journal.rows()
        except BaseException:
            with contextlib.suppress(JournalError):  # the first error is the one to tell
                await self.journal.close()
            raise
        self.rows = {row.key: row for row in rows}
        recent = time.time() - OWNED_SECONDS
        self._tasks = {
            row.task_id
            for row in rows
            if row.task_id is not None and (row.answered_at is None or row.answered_at > recent)
        }
        _seed(client.limiters.create, rows, doubt(client))
        _expect(client.lip_sync.ledger, rows)

    def owns(self, task_id: str) -> bool:
        """True for a task id of an earlier run's row, created within ``OWNED_SECONDS``."""
        return task_id in self._tasks

    async def recall(self, keys: Iterable[object] | None = None) -> None:
        """Read back the rows of jobs this run left unfinished (``keys`` of them, or all), and
        of ``keys`` whose done handle is no longer kept, so that a submit or ``resume`` takes
        them up again. Keys not checked yet are welcome: what is no such key is skipped.

        Raises:
            JournalError: queued writes could not be committed before the read.
        """
        if keys is None:
            wanted = set(self._left)
        else:
            named = {key for key in keys if isinstance(key, str)}
            wanted = named & self._left
            if self._forgotten:
                wanted |= {
                    key
                    for key in named
                    if key not in self._live and key not in self.finished and key not in self.rows
                }
        if wanted:
            for row in await self.journal.rows(wanted):
                self.rows[row.key] = row
            self._left -= wanted

    def unfinished(self) -> list[JournalRow]:
        """The rows not taken up yet whose job has not ended, in submission order."""
        rows = [row for row in self.rows.values() if not JobStage(row.stage).is_final]
        return sorted(rows, key=lambda row: row.seq)

    # -- one job -------------------------------------------------------------------------------

    def begin(
        self,
        handle: JobHandle,
        job: LipSyncRequest | LipSyncJob,
        row: JournalRow | None,
        fingerprint: str,
    ) -> JournalRow | None:
        """Write a job down as it starts, and follow its changes from then on.

        A new job gets a new row. A job taken up from ``row`` ends at once if the row says it
        ended (its handle is then done), or starts afresh if it failed and ``retry_failed``
        is set (a failed create whose outcome stayed unknown excepted: its task may exist).

        Returns:
            The row to resume from; None to start afresh.
        """
        key = handle.key
        if row is not None and row.fingerprint != fingerprint:  # never created (``replaceable``)
            self.journal.forget(key)
            del self.rows[key]
            row = None
        if row is None:
            self.journal.add(key, spec(job), fingerprint, handle.stage.value)
        else:
            handle.duplicates = row.duplicates
            del self.rows[key]
            if self.retry_failed and _retryable(row):
                self.journal.update(
                    key, stage=handle.stage.value, task_id=None, sent_at=None, task=None, error=None
                )
                row = None
            elif JobStage(row.stage).is_final:
                _finish_from(handle, row)
                self._keep(key, handle, fingerprint)
                return row
        self._live[key] = (handle.stage, fingerprint)
        handle._set_watcher(self._changed)
        return row

    def undo(self, handle: JobHandle, row: JournalRow | None) -> None:
        """Forget a job whose writes were withdrawn: its submit failed, it was never begun."""
        self._live.pop(handle.key, None)
        if self.finished.get(handle.key, (None, ""))[0] is handle:
            del self.finished[handle.key]
        if row is not None:
            self.rows[handle.key] = row

    async def going_out(self, key: str, request: dict[str, Any]) -> None:
        """Commit that job ``key``'s create is leaving now, with the request (as JSON) it sends.

        Raises:
            JournalError: it could not be committed; the write is withdrawn, so the row does
                not say the create left. The create must not be sent.
        """
        with self.journal.recording() as mine:
            self.journal.update(key, sent_at=time.time(), request=request)
        await self.journal.flush(mine)

    def created(self, key: str, task_id: str) -> None:
        """Job ``key``'s create answered with ``task_id``."""
        self.journal.update(key, task_id=task_id, answered_at=time.time())

    def requeued(self, key: str) -> None:
        """Job ``key``'s create was refused, or created nothing: none of it is pending."""
        self.journal.update(key, sent_at=None)

    def duplicates(self, key: str, task_ids: Iterable[str]) -> None:
        """The tasks job ``key``'s create may also have made."""
        self.journal.update(key, duplicates=json.dumps(sorted(task_ids)))

    def _keep(self, key: str, handle: JobHandle, fingerprint: str) -> None:
        """Keep a done handle for a repeated key; the oldest go back to the journal alone."""
        self.finished[key] = (handle, fingerprint)
        self.finished.move_to_end(key)
        if len(self.finished) > FINISHED_KEPT:
            self.finished.popitem(last=False)
            self._forgotten = True

    def _changed(self, handle: JobHandle) -> None:
        """Write a job's new stage, or its end."""
        key = handle.key
        live = self._live.get(key)
        if live is None:
            return  # undone: its submit failed
        written, fingerprint = live
        if not handle.done:
            if written is not handle.stage:
                self._live[key] = (handle.stage, fingerprint)
                self.journal.update(key, stage=handle.stage.value)
            return
        del self._live[key]
        error = handle.error
        if stays_unfinished(error, closing=self.closing):
            # The task runs on; nothing was sent; left by a closing manager; or a create whose
            # outcome the task list could not tell (its sent_at stays): the row stays
            # unfinished, for a submit of the key, resume() or a later run.
            self._left.add(key)
            if error is not None and never_sent(error):
                # Its create was refused, or never left: none of it is pending.
                self.journal.update(key, sent_at=None, error=_error_text(error))
            return
        self._keep(key, handle, fingerprint)
        self.journal.update(
            key,
            stage=handle.stage.value,
            task=_task_record(handle.last),
            error=None if error is None else _error_text(error),
        )


def replaceable(row: JournalRow) -> bool:
    """Whether a job row may give its key to a different job: nothing of it can exist at the
    service (no task, no create sent or in doubt, no duplicate), e.g. a row never sent, or
    one the service refused. A row that made or may have made a task keeps its key."""
    return row.task_id is None and row.sent_at is None and not row.duplicates and row.task is None


def never_sent(error: BaseException | None) -> bool:
    """True for the error of a job that ended before any create of it could make a task, for
    a reason that says nothing about the job (see the module doc): it is to be run again.

    A create that reached the API and may have made a task raises CreateOutcomeUnknown
    instead, and a transport error ends no job once it has a task (the poller reads again), so
    these types alone tell it.
    """
    return isinstance(
        error, (TransportError, AuthenticationError, RateLimitError, HTTPStatusError, JournalError)
    )


def stays_unfinished(error: BaseException | None, *, closing: bool) -> bool:
    """True when a job that ended with ``error`` keeps its row unfinished, to be taken up
    again: never sent, past its deadline (the task runs on), left by a closing manager, or a
    create whose outcome the task list could not tell (no candidates)."""
    return (
        never_sent(error)
        or isinstance(error, JobTimeoutError)
        or (isinstance(error, JobCancelledError) and closing)
        or (isinstance(error, CreateOutcomeUnknown) and not error.candidates)
    )


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


# -- rows and jobs ---------------------------------------------------------------------------------


def spec(job: LipSyncRequest | LipSyncJob) -> dict[str, Any]:
    """The job as journaled (JSON-ready); local paths made absolute."""
    if isinstance(job, LipSyncRequest):
        return {"request": job.model_dump(mode="json")}
    return {
        "template": job.template.model_dump(mode="json"),
        "video_path": None if job.video_path is None else os.path.abspath(job.video_path),
        "audio_path": None if job.audio_path is None else os.path.abspath(job.audio_path),
    }


def fingerprint(job_spec: dict[str, Any]) -> str:
    """A digest of a job's spec, to notice a key reused for another job."""
    canonical = json.dumps(job_spec, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "backslashreplace")).hexdigest()


def job_of(job_spec: dict[str, Any]) -> LipSyncRequest | LipSyncJob:
    """The job a journal row was made from (the inverse of :func:`spec`)."""
    if "request" in job_spec:
        return LipSyncRequest.model_validate(job_spec["request"])
    video, audio = job_spec["video_path"], job_spec["audio_path"]
    return LipSyncJob(
        LipSyncRequest.model_validate(job_spec["template"]),
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
        handle._finish(stage)
    elif stage is JobStage.FAILED and task is not None and task.failed:
        handle._finish(stage, job_failure(task, job_key=row.key))
    else:
        reason = row.error or "ended in an earlier run"
        if stage is JobStage.CANCELLED:
            handle._finish(stage, JobCancelledError(reason, job_key=row.key, task_id=row.task_id))
        else:
            handle._finish(stage, JobError(reason, job_key=row.key, task_id=row.task_id))


def _retryable(row: JournalRow) -> bool:
    """A failed row that may be created again: its create did not end unexplained."""
    return row.stage == JobStage.FAILED.value and not (row.error or "").startswith(
        CreateOutcomeUnknown.__name__
    )


# -- the limiter and the ledger after a restart ----------------------------------------------------


def doubt(client: AsyncChanjingClient) -> float:
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
