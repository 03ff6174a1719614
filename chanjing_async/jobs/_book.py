"""The book of a JobManager's jobs: their records, their store, and what ends or moves them.

:class:`JobBook` is the one place that changes a live job's record: the submitter reports its
creates to it (it is the submitter's ``SubmitHost``), the poller reports the jobs it stops
tracking, a handle's ``cancel`` lands here. Starting jobs (``_launch``) and judging callbacks
(``_callback_side``) read and add records through it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import JobError
from ..models import LipSyncRequest
from ._callback_side import CallbackSide
from ._handle import JobHandle, JobStage
from ._records import JobRecord, Registry

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from ..callbacks._receiver import CallbackReceiver
    from ..client._client import AsyncChanjingClient
    from ._jobspec import LipSyncJob
    from ._poll_policy import PollPolicy
    from ._poller import Poller
    from ._store import JobStore
    from ._submit import Submitter
    from ._uploads import Uploads

__all__ = ["JobBook", "Running"]


@dataclass(frozen=True)
class Running:
    """The background work of an open manager."""

    group: TaskGroup
    submitter: Submitter
    poller: Poller
    uploads: Uploads


class JobBook:
    """A manager's live jobs, their store and callbacks, and the events that change them.

    Attributes:
        registry: the live jobs' records, and the handles that ended lately.
        store: where the jobs are written down (a no-op store without a journal).
        side: the judge of the callbacks naming the jobs, and of their duplicate tasks.
        running: the background work, while the manager is open.
    """

    def __init__(
        self,
        client: AsyncChanjingClient,
        store: JobStore,
        *,
        callbacks: CallbackReceiver | None,
        policy: PollPolicy,
        job_timeout: float,
    ) -> None:
        self.client = client
        self.store = store
        self.callbacks = callbacks
        self.policy = policy
        self.job_timeout = job_timeout
        self.registry = Registry()
        self.running: Running | None = None
        self.side = CallbackSide(self)

    # -- the submitter's host ------------------------------------------------------------------

    def request_of(self, handle: JobHandle) -> LipSyncRequest:
        record = self.registry.record(handle.key)
        assert record is not None  # a queued job is live
        assert record.request is not None  # and prepared
        request = record.request
        if self.callbacks is not None and request.callback is None:
            request = request.model_copy(update={"callback": self.callbacks.url_for(handle.key)})
        return request

    def owns(self, task_id: str) -> bool:
        # The client's ledger knows the tasks of this run (any manager's, or a direct
        # create's); the store knows those of earlier runs.
        return self.store.owns(task_id)

    async def before_send(self, handle: JobHandle) -> None:
        """Commit that the create is going out, before it does.

        A JournalError stops the create (nothing is sent) and fails this job only; its record
        stays unfinished, so its key can be submitted again. A job cancelled meanwhile has no
        record: nothing is written, and the submitter withdraws its create.
        """
        record = self.registry.record(handle.key)
        if record is not None and record.request is not None:
            await self.store.going_out(handle.key, record.request.model_dump(mode="json"))

    def requeued(self, handle: JobHandle) -> None:
        self.store.requeued(handle.key)

    def created(self, handle: JobHandle, task_id: str) -> None:
        self.store.created(handle.key, task_id)
        record = self.registry.record(handle.key)
        if record is not None:
            record.request = None
        handle.task_id = task_id
        if handle.done:
            # Cancelled while its create was in flight: the task exists (and is billed), so
            # its id goes on the handle and on the error wait() raises; it is not tracked.
            if isinstance(handle.error, JobError):
                handle.error.task_id = task_id
            return
        handle._advance(JobStage.SUBMITTED)
        if self.running is not None:
            self.track(handle, task_id, delay=self.policy.first)

    def failed(self, handle: JobHandle, error: Exception) -> None:
        handle._finish(JobStage.FAILED, error)
        self.forget(handle)

    def duplicate(self, key: str, task_id: str) -> None:
        self.side.duplicate(key, task_id)

    # -- tracking and ending -------------------------------------------------------------------

    def track(self, handle: JobHandle, task_id: str, *, delay: float) -> None:
        """Have the poller follow ``handle``'s task until it ends or its deadline passes."""
        assert self.running is not None
        record = self.registry.record(handle.key)
        timeout = record.timeout if record is not None else None
        # Only a job we created with our own URL gets callbacks; an attached task never does.
        callback = (
            self.callbacks is not None
            and handle.request is not None
            and _request_callback(handle.request) is None
        )
        self.running.poller.track(
            handle,
            task_id,
            timeout=self.job_timeout if timeout is None else timeout,
            callback=callback,
            delay=delay,
        )

    def attach(self, running: Running, task_id: str, timeout: float | None) -> JobHandle:
        """``JobManager.attach``: track a task created elsewhere, read at once."""
        tracked = running.poller.handle_of(task_id)
        if tracked is not None:
            return tracked
        handle = JobHandle(
            uuid.uuid4().hex, None, stage=JobStage.SUBMITTED, cancel=self.cancel, task_id=task_id
        )
        self.registry.add(JobRecord(handle, timeout=timeout))
        self.client.lip_sync.ledger.own(task_id)
        self.track(handle, task_id, delay=0.0)
        return handle

    def cancel(self, handle: JobHandle) -> None:
        """A handle's ``cancel``: stop whatever the job is waiting for, and end it."""
        running = self.running
        if running is not None:
            running.submitter.remove(handle)
            if handle.task_id is not None:
                running.poller.untrack(handle.task_id)
        record = self.registry.record(handle.key)
        if record is not None and record.uploading is not None:
            record.uploading.cancel()
        handle._end_cancelled("cancelled by the caller")
        self.forget(handle)

    def forget(self, handle: JobHandle) -> None:
        """A job ended: drop its record."""
        self.registry.end(handle)


def _request_callback(request: LipSyncRequest | LipSyncJob) -> str | None:
    return request.callback if isinstance(request, LipSyncRequest) else request.template.callback
