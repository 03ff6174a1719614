"""``JobHandle``: one job of a JobManager, its stage, its events and its result."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

import anyio

from ..errors import JobCancelledError, JobTimeoutError, job_failure
from ..models import TaskStatus

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..models import LipSyncRequest, LipSyncTask
    from ._jobspec import LipSyncJob

__all__ = ["JobEvent", "JobHandle", "JobStage"]


class JobStage(str, Enum):
    """Where a job stands: uploading → queued → submitted → generating → a final stage."""

    UPLOADING = "uploading"
    """Its local files are being uploaded."""
    QUEUED = "queued"
    """Waiting for a create slot (10 per minute), or its create is on the wire."""
    SUBMITTED = "submitted"
    """Created; the server has not started generating (task status 0)."""
    GENERATING = "generating"
    """The server is generating (task status 10); ``progress`` rises to 100."""
    SUCCEEDED = "succeeded"
    """Task status 20: the result URLs are in the task."""
    FAILED = "failed"
    """A failure status (30, 40, 41, 50, 1101), or the job could not be created (see error)."""
    CANCELLED = "cancelled"
    """Cancelled by the caller, or its manager closed first."""

    @property
    def is_final(self) -> bool:
        """True for succeeded, failed and cancelled."""
        return self in (JobStage.SUCCEEDED, JobStage.FAILED, JobStage.CANCELLED)


# The stage a task status moves the job to. A status missing here (1100, manual review, and
# any the docs do not list) keeps the stage: the job waits, bounded by its deadline, and the
# status shows on the handle (``status``) and on its events (``task``).
_STAGE_OF_STATUS: dict[int, JobStage] = {
    TaskStatus.QUEUED: JobStage.SUBMITTED,
    TaskStatus.GENERATING: JobStage.GENERATING,
    TaskStatus.SUCCEEDED: JobStage.SUCCEEDED,
    **{status: JobStage.FAILED for status in TaskStatus if status.is_failure},
}


@dataclass(frozen=True)
class JobEvent:
    """A change of a job's stage or progress, as yielded by :meth:`JobHandle.events`.

    Attributes:
        stage: the stage after the change.
        progress: 0-100, as last reported by the server.
        task: the latest task object (None before the first read).
        at: wall-clock Unix time of the change.
        done: True on the last event of the job (it will not change again).
    """

    stage: JobStage
    progress: int
    task: LipSyncTask | None
    at: float
    done: bool


class _Subscriber:
    __slots__ = ("events", "wake")

    def __init__(self) -> None:
        self.events: deque[JobEvent] = deque()
        self.wake = anyio.Event()


class _EventStream:
    """Async iterator over one subscriber's events; ends after the job's last event."""

    def __init__(self, subscriber: _Subscriber) -> None:
        self._subscriber = subscriber
        self._ended = False

    def __aiter__(self) -> _EventStream:
        return self

    async def __anext__(self) -> JobEvent:
        subscriber = self._subscriber
        while not subscriber.events:
            if self._ended:
                raise StopAsyncIteration
            await subscriber.wake.wait()
            subscriber.wake = anyio.Event()
        event = subscriber.events.popleft()
        self._ended = event.done
        return event


class JobHandle:
    """One job of a :class:`~chanjing_async.JobManager`; returned by ``submit`` at once.

    The manager updates it as the job advances; the caller reads it, awaits it, follows its
    events or cancels it. Example::

        handle = await jobs.submit(request)
        async for event in handle.events():
            print(event.stage, event.progress)
        task = await handle.wait()

    Attributes:
        key: the manager's id of the job, known before any task exists (it is in the callback
            URL and, with a journal, in the journal).
        request: what was submitted (a request, or a job with local files); None for a task
            attached by id.
        task_id: the task id; None until the task is created.
        stage: the current :class:`JobStage`.
        last: the latest task object read from the server (None before the first read).
        progress: 0-100, from the latest task object.
        status: the latest task status (e.g. 1100 while held for manual review), or None.
        eta: estimated seconds until the task ends (from its progress rate), or None.
        error: why the job did not succeed, once it is done; None otherwise.
        duplicates: tasks that this job's create may also have made (they appeared after the
            processing horizon of a create that was then sent again, or a callback named this
            job for them): they may have been billed; no job adopts them. Usually empty.
    """

    __slots__ = (
        "_cancel",
        "_done",
        "_listeners",
        "_subscribers",
        "_watcher",
        "duplicates",
        "error",
        "eta",
        "key",
        "last",
        "progress",
        "request",
        "stage",
        "task_id",
    )

    def __init__(
        self,
        key: str,
        request: LipSyncRequest | LipSyncJob | None,
        *,
        stage: JobStage,
        cancel: Callable[[JobHandle], None],
        task_id: str | None = None,
    ) -> None:
        self.key = key
        self.request = request
        self.task_id = task_id
        self.stage = stage
        self.last: LipSyncTask | None = None
        self.progress = 0
        self.eta: float | None = None
        self.error: BaseException | None = None
        self.duplicates: tuple[str, ...] = ()
        self._cancel = cancel
        # Made on demand: most handles are never awaited one by one nor followed.
        self._done: anyio.Event | None = None
        self._subscribers: list[_Subscriber] | None = None
        self._listeners: list[Callable[[JobHandle], None]] | None = None
        self._watcher: Callable[[JobHandle], None] | None = None

    def __repr__(self) -> str:
        return (
            f"<JobHandle {self.key} task={self.task_id or '-'} {self.stage.value}"
            f" progress={self.progress}{' done' if self.done else ''}>"
        )

    @property
    def status(self) -> int | None:
        """The task status last read (see :class:`TaskStatus`; 1100 is manual review), or None."""
        return None if self.last is None else self.last.status

    @property
    def done(self) -> bool:
        """True once the job has ended (succeeded, failed, cancelled or past its deadline)."""
        return self.stage.is_final or self.error is not None

    def result(self) -> LipSyncTask:
        """The succeeded task of a finished job.

        Raises:
            RuntimeError: the job is not done yet.
            JobFailedError, JobTimeoutError, JobCancelledError, ChanjingError: why it did not
                succeed (``error``).
        """
        if not self.done:
            raise RuntimeError(f"job {self.key} is not done yet (stage {self.stage.value})")
        if self.error is not None:
            raise self.error
        assert self.last is not None  # succeeded means a task was read
        return self.last

    async def wait(self, timeout: float | None = None) -> LipSyncTask:
        """Wait for the job to end and return the succeeded task.

        Args:
            timeout: seconds this call waits at most; None waits until the job ends, which
                its deadline (the manager's ``job_timeout``) bounds once the task exists.

        Raises:
            JobTimeoutError: ``timeout`` passed (``tracked`` is True: the job goes on), or the
                job's deadline passed (``tracked`` is False). Also a ``TimeoutError``.
            JobFailedError: the task ended in a failure status, 30, 40, 41, 50 or 1101
                (InsufficientBalanceError for billing); ``task.status`` tells which.
            TaskNotFoundError: the server no longer knows the task.
            JobCancelledError: the job was cancelled or its manager closed.
            ChanjingError: the job could not be created or its files uploaded.
        """
        if not self.done:
            if self._done is None:
                self._done = anyio.Event()
            with anyio.move_on_after(timeout):
                await self._done.wait()
            if not self.done:
                raise JobTimeoutError(
                    f"still {self.stage.value} after waiting {timeout:g} s; the job goes on",
                    job_key=self.key,
                    task_id=self.task_id,
                    tracked=True,
                )
        return self.result()

    def events(self) -> _EventStream:
        """An async iterator of stage and progress changes, starting with the current state.

        It ends after the job's last event (``event.done``). Each call gets its own stream;
        events are buffered, so a slow reader misses none.
        """
        subscriber = _Subscriber()
        subscriber.events.append(self._event())
        if not self.done:
            if self._subscribers is None:
                self._subscribers = []
            self._subscribers.append(subscriber)
        return _EventStream(subscriber)

    def cancel(self) -> None:
        """Cancel the job; no effect once done.

        A job waiting for its create slot (or uploading) is never created. A created task keeps
        running on the server but is no longer tracked (``task_id`` names it). A create already
        on the wire cannot be called back: if it creates the task, ``task_id`` (on the handle
        and on the JobCancelledError) is set when its answer arrives.
        """
        if not self.done:
            self._cancel(self)

    # -- called by the manager (private: a user only reads, waits and cancels) ---------------

    def _on_done(self, listener: Callable[[JobHandle], None]) -> None:
        """Call ``listener(self)`` once the job is done (at once if it already is)."""
        if self.done:
            listener(self)
            return
        if self._listeners is None:
            self._listeners = []
        self._listeners.append(listener)

    def _set_watcher(self, watcher: Callable[[JobHandle], None]) -> None:
        """Call ``watcher(self)`` on every change of stage or progress, and when done."""
        self._watcher = watcher

    def _advance(self, stage: JobStage) -> None:
        """Move to a stage that is not final (uploading, queued, submitted)."""
        if not self.done and stage is not self.stage:
            self.stage = stage
            self._publish()

    def _observe(self, task: LipSyncTask, *, eta: float | None = None) -> None:
        """Take a task object read from the server; a final status finishes the job."""
        if self.done:
            return
        stage = _STAGE_OF_STATUS.get(task.status)
        changed = (
            task.progress != self.progress
            or task.status != self.status
            or (stage is not None and stage is not self.stage)
        )
        self.last = task
        self.progress = task.progress
        self.eta = eta
        if stage is JobStage.SUCCEEDED:
            self.eta = 0.0
            self._finish(JobStage.SUCCEEDED)
        elif stage is JobStage.FAILED:
            self._finish(JobStage.FAILED, job_failure(task, job_key=self.key))
        else:
            # 1100 or an undocumented status keeps the stage and is polled further.
            if stage is not None:
                self.stage = stage
            if changed:
                self._publish()

    def _finish(self, stage: JobStage | None, error: BaseException | None = None) -> None:
        """End the job: a final stage, or None to keep the stage (a passed deadline)."""
        if self.done:
            return
        if stage is not None:
            self.stage = stage
        if error is None and not self.stage.is_final:
            raise ValueError("_finish() needs a final stage or an error")
        self.error = error
        self._publish()
        self._subscribers = None
        if self._done is not None:
            self._done.set()
        listeners, self._listeners = self._listeners or [], None
        for listener in listeners:
            listener(self)

    def _end_cancelled(self, reason: str) -> None:
        """Finish as cancelled, with a JobCancelledError saying why."""
        self._finish(
            JobStage.CANCELLED,
            JobCancelledError(reason, job_key=self.key, task_id=self.task_id),
        )

    def _end_expired(self, seconds: float) -> None:
        """Finish because the job's deadline passed; the stage stays where it was."""
        self._finish(
            None,
            JobTimeoutError(
                f"deadline of {seconds:g} s passed while {self.stage.value}; the task may "
                "still finish (JobManager.attach tracks it again)",
                job_key=self.key,
                task_id=self.task_id,
                tracked=False,
            ),
        )

    def _event(self) -> JobEvent:
        return JobEvent(self.stage, self.progress, self.last, time.time(), self.done)

    def _publish(self) -> None:
        if self._watcher is not None:
            self._watcher(self)
        if not self._subscribers:
            return
        event = self._event()
        for subscriber in self._subscribers:
            subscriber.events.append(event)
            subscriber.wake.set()
