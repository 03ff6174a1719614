"""What the task control routes do: show a chosen status, make tasks at once, forget them all."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING

from ._clock import server_time
from ._tasks import TaskRecord

if TYPE_CHECKING:
    from .settings import EmulatorSettings

# Messages of the task statuses Chanjing's other task APIs use, for set_task_status.
STATUS_MESSAGES = {
    40: "任务失败，请重试",
    41: "任务超时",
    50: "任务已取消",
    1100: "人工审核中",
    1101: "审核不通过",
}


class TaskControls:
    """The task controls of :class:`~chanjing_async.emulator.EmulatorState` (its base)."""

    settings: EmulatorSettings
    _tasks: dict[str, TaskRecord]

    def set_task_status(self, task_id: str, status: int | None, msg: str | None = None) -> None:
        """Show ``status`` for a task from now on, whatever its clock says; None undoes it.

        For the statuses the lip-sync docs leave open (40, 41, 50, 1100, 1101: see
        ``STATUS_MESSAGES``, the default ``msg``). Progress stays where it is now; no result
        URLs are shown. Undone, the task follows its clock again (it may have ended meanwhile).
        A callback still goes out when the clock ends the task, with the status shown then.

        Raises:
            KeyError: Unknown task id.
        """
        task = self._tasks[task_id]
        forced = None
        if status is not None:
            progress = replace(task, forced=None).to_object(time.monotonic())["progress"]
            forced = (status, STATUS_MESSAGES.get(status, "") if msg is None else msg, progress)
        self._tasks[task_id] = replace(task, forced=forced)

    def seed_tasks(self, count: int, base_url: str) -> list[str]:
        """Make ``count`` tasks at once, without creates, for benchmarks of many in flight.

        They need no files and take no fate draw (later tasks' fates do not shift): each
        runs ``task_seconds`` from now and succeeds. ``tasks_created`` does not count them.

        Returns:
            Their ids, in creation order.
        """
        now = time.monotonic()
        ends_at = now + self.settings.scaled(self.settings.task_seconds)
        create_time = int(server_time(self.settings))
        ids: list[str] = []
        for _ in range(count):
            task = TaskRecord(
                id=uuid.uuid4().hex,
                request={},
                base_url=base_url,
                callback=None,
                create_time=create_time,
                created_at=now,
                ends_at=ends_at,
                duration=1000,
                failure=None,
            )
            self._tasks[task.id] = task
            ids.append(task.id)
        return ids

    def forget_tasks(self) -> int:
        """Forget every task, as a server restarted without its task store would.

        Detail then answers ``40000 任务不存在`` and the list is empty until new tasks are
        created; tokens, files, limits and counters are kept.

        Returns:
            How many tasks were forgotten.
        """
        forgotten = len(self._tasks)
        self._tasks.clear()
        return forgotten
