"""What a JobManager makes of a callback, and of a task its job's create may have made twice.

A callback names a job (by its key, signed in the URL) and a task. For a job that holds that
task, it wakes the poller. For a job whose create is unexplained, it is the claim that the
task is the job's: the reconciler checks it through ``detail`` before the job adopts it. A
callback naming another task than the one its job holds is the claim of a second task made by
the same create: if ``detail`` knows the task and nobody owns it, it is reported on the job as
a possible duplicate. The callback's word alone records nothing, and the reads its claims may
cost are bounded (``CallbackClaims``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..errors import ChanjingError
from ._callback_claims import CallbackClaims

if TYPE_CHECKING:
    from ..callbacks._receiver import Verdict
    from ..models import LipSyncTask
    from ._book import JobBook
    from ._handle import JobHandle

__all__ = ["CallbackSide"]

logger = logging.getLogger("chanjing_async")


class CallbackSide:
    """Judges the callbacks of a book's jobs and reports their duplicate tasks.

    Attributes:
        claims: bounds the reads of callbacks naming other tasks.
    """

    def __init__(self, book: JobBook) -> None:
        self._book = book
        self._reported: dict[str, str] = {}  # possible duplicates: task id -> job key
        self.claims = CallbackClaims()

    def on_callback(self, key: str, task: LipSyncTask) -> Verdict:
        """The receiver's verdict on a verified callback for job ``key`` about ``task``."""
        book = self._book
        record = book.registry.record(key)
        running = book.running
        if record is None or running is None:
            ended = book.registry.ended(key)
            if ended is None:
                return "unknown"
            self._another_task(ended, task.id)
            return "duplicate"
        handle = record.handle
        if handle.task_id is None:
            reconciler = running.submitter.reconciler
            if reconciler.waits_for(key) is None:
                return "mismatch"
            # The create of this job is unexplained: the callback names its task (checked
            # through detail before the job adopts it).
            if not self.claims.admit(key, task.id):
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
        if self._foreign(handle, task_id) and self.claims.admit(handle.key, task_id):
            running = self._book.running
            if running is not None:
                running.group.start_soon(self._confirm_another_task, handle, task_id)

    def _foreign(self, handle: JobHandle, task_id: str) -> bool:
        ledger = self._book.client.lip_sync.ledger
        return (
            task_id != handle.task_id and not self._book.owns(task_id) and not ledger.owns(task_id)
        )

    async def _confirm_another_task(self, handle: JobHandle, task_id: str) -> None:
        lip_sync = self._book.client.lip_sync
        try:
            await lip_sync.get(task_id)
        except ChanjingError as exc:
            logger.info("job %s: callback task %s not confirmed (%s)", handle.key, task_id, exc)
            return
        if self._foreign(handle, task_id):  # still nobody's after the read
            lip_sync.ledger.disown(task_id)
            self.duplicate(handle.key, task_id, proven=True)

    def duplicate(self, key: str, task_id: str, *, proven: bool = False) -> None:
        """Task ``task_id`` may have been made by job ``key``'s create as well as its own.

        Reported once per task, on one job: by time on the job most likely to have made it,
        moved to the job its callback names (``proven``) if that is another.
        """
        earlier = self._reported.get(task_id)
        if earlier == key or (earlier is not None and not proven):
            return  # reported already
        if self._book.registry.handle(key) is None:
            return  # long forgotten
        if earlier is not None:
            self._set_duplicates(earlier, task_id, add=False)
        elif self._book.running is not None:
            self._book.running.submitter.stats.late += 1
        self._reported[task_id] = key
        logger.warning("job %s: may have been created twice: task %s", key, task_id)
        self._set_duplicates(key, task_id, add=True)

    def _set_duplicates(self, key: str, task_id: str, *, add: bool) -> None:
        handle = self._book.registry.handle(key)
        if handle is None:
            return
        others = tuple(task for task in handle.duplicates if task != task_id)
        handle.duplicates = (*others, task_id) if add else others
        self._book.store.duplicates(key, handle.duplicates)
