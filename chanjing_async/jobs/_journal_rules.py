"""How a job becomes a journal row and back, and which ends leave its row unfinished.

A job **never sent** failed before any create of it could make a task, for a reason that says
nothing about the job itself: no connection (its uploads or its create), the credentials or
the token refused, 40001 too often, a page from something in front of the API, its "sending"
write failed. Its row keeps its last stage (queued or uploading), with ``sent_at`` cleared
and the error noted: no task of it can exist, so sending it again makes no second one. A job
the service refused or failed (bad parameters, a file it could not use, a failed task) is
written as failed: it runs again only with ``retry_failed``, as a new task.

After a restart, the rows also tell the create limiter which creates of the last window were
sent, and the client's ledger the send and answer times of earlier tasks.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
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
from ..limits import SlidingWindowLimiter
from ..models import LipSyncRequest, LipSyncTask
from ._handle import JobHandle, JobStage
from ._jobspec import LipSyncJob

if TYPE_CHECKING:
    from ..client._attempts import CreateLedger
    from ..client._client import AsyncChanjingClient
    from ..stores._journal import JournalRow

__all__ = [
    "doubt",
    "error_text",
    "expect",
    "fingerprint",
    "finish_from",
    "job_of",
    "never_sent",
    "replaceable",
    "retryable",
    "seed",
    "spec",
    "stays_unfinished",
    "task_record",
]


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


def error_text(error: BaseException) -> str:
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


def task_record(task: LipSyncTask | None) -> dict[str, Any] | None:
    """A task object for the journal: result URLs expire, so they are not kept."""
    if task is None:
        return None
    return task.model_dump(mode="json", exclude={"video_url", "preview_url"})


def finish_from(handle: JobHandle, row: JournalRow) -> None:
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


def retryable(row: JournalRow) -> bool:
    """A failed row that may be created again: its create did not end unexplained."""
    return row.stage == JobStage.FAILED.value and not (row.error or "").startswith(
        CreateOutcomeUnknown.__name__
    )


# -- the limiter and the ledger after a restart ----------------------------------------------------


def doubt(client: AsyncChanjingClient) -> float:
    """Seconds after its journaled send that a create of an earlier run may still be handled:
    the horizon, plus a second for the moments between the write and the send."""
    return client.timeouts.create_horizon + 1.0


def seed(limiter: object, rows: list[JournalRow], doubt: float) -> None:
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


def expect(ledger: CreateLedger, rows: list[JournalRow]) -> None:
    """The tasks of earlier runs date the server's clock once read (when their send and answer
    times are known; the local wall clock is taken not to have stepped between runs, as the
    limiter's seeding takes it)."""
    shift = time.monotonic() - time.time()
    for row in rows:
        if row.task_id is not None and row.sent_at is not None and row.answered_at is not None:
            ledger.expect(row.task_id, row.sent_at + shift, row.answered_at + shift)
