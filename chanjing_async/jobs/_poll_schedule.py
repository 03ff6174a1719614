"""When a poller reads each task next: the per-task poll state and the schedule of reads.

Each task has its own next-read time, adaptive (:class:`PollPolicy`): the interval grows by
``growth`` from ``min_interval`` up to ``max_interval`` (``callback_interval`` when a callback
receiver reports the task's end), with jitter, and is pulled in to just before the end that
the task's progress rate predicts.

The schedule is a heap with lazy deletion: rescheduling pushes a new entry and leaves the old
one behind. The stale entries are swept once they outnumber the live ones, so the heap holds
at most about two entries per tracked task however often tasks are refreshed.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
from typing import TYPE_CHECKING

import anyio

from ..models import TaskStatus

if TYPE_CHECKING:
    from ..models import LipSyncTask
    from ._handle import JobHandle
    from ._poll_policy import PollPolicy

__all__ = ["Schedule", "Tracked"]

# Stale heap entries tolerated beyond one per tracked task before a sweep.
_HEAP_SLACK = 64


class Tracked:
    """Poll state of one task."""

    __slots__ = (
        "callback",
        "confirming",
        "deadline",
        "due",
        "handle",
        "interval",
        "misses",
        "missing_since",
        "reported",
        "seen",
        "task_id",
        "timeout",
    )

    def __init__(
        self, handle: JobHandle, task_id: str, *, due: float, timeout: float, callback: bool
    ) -> None:
        self.handle = handle
        self.task_id = task_id
        self.due = due
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.callback = callback
        self.interval = 0.0
        self.confirming = False
        self.reported: int | None = None  # last status a callback reported
        self.misses = 0  # detail reads in a row that answered 40000 (the task is unknown)
        self.missing_since = 0.0
        # First (time, progress) seen with progress > 0: the base of the progress rate.
        self.seen: tuple[float, int] | None = None


class Schedule:
    """The tracked tasks by id, and when each is read next.

    Attributes:
        tracked: the poll state of every tracked task, by task id.
    """

    def __init__(self, policy: PollPolicy) -> None:
        self._policy = policy
        self.tracked: dict[str, Tracked] = {}
        self._heap: list[tuple[float, int, Tracked]] = []
        self._order = itertools.count()
        self._wake = anyio.Event()

    def add(self, record: Tracked) -> None:
        """Track a task, first read at ``record.due``."""
        self.tracked[record.task_id] = record
        self.push(record)

    def push(self, record: Tracked) -> None:
        heapq.heappush(self._heap, (record.due, next(self._order), record))
        if self._heap[0][2] is record:
            self._wake.set()
        if len(self._heap) > 2 * len(self.tracked) + _HEAP_SLACK:
            self._heap = [entry for entry in self._heap if self.live(entry[0], entry[2])]
            heapq.heapify(self._heap)

    def live(self, due: float, record: Tracked) -> bool:
        # Rescheduling pushes a new entry; the old one stays in the heap and is skipped here.
        return self.tracked.get(record.task_id) is record and record.due == due

    async def next_due(self) -> list[Tracked]:
        while True:
            while self._heap and not self.live(self._heap[0][0], self._heap[0][2]):
                heapq.heappop(self._heap)
            now = time.monotonic()
            if self._heap and self._heap[0][0] <= now:
                # Tasks due within half the shortest interval come along: reading them a
                # little early lets one list page serve them all.
                horizon = now + self._policy.min_interval / 2
                due: list[Tracked] = []
                while self._heap and self._heap[0][0] <= horizon:
                    at, _, record = heapq.heappop(self._heap)
                    if self.live(at, record):
                        due.append(record)
                return due
            delay = self._heap[0][0] - now if self._heap else math.inf
            self._wake = anyio.Event()
            with anyio.move_on_after(delay):
                await self._wake.wait()

    def schedule(self, record: Tracked, delay: float) -> None:
        record.due = min(time.monotonic() + delay, record.deadline)
        self.push(record)

    def next_interval(self, record: Tracked, task: LipSyncTask) -> tuple[float, float | None]:
        """The delay before the next read and the estimated seconds left (None if unknown)."""
        policy = self._policy
        cap = policy.callback_interval if record.callback else policy.max_interval
        interval = min(max(policy.min_interval, record.interval * policy.growth), cap)
        record.interval = interval
        now = time.monotonic()
        eta = None
        if task.status == TaskStatus.GENERATING and task.progress > 0:
            if record.seen is None:
                record.seen = (now, task.progress)
            since, base = record.seen
            if task.progress > base and now > since:
                rate = (task.progress - base) / (now - since)
                eta = (100 - task.progress) / rate
                if not record.callback:
                    # Pull the next read in to just before the expected end (never below
                    # min_interval): progress is rounded down and stops at 99 until the end,
                    # so aiming at 100 reads late half the time; aim at 98.
                    early = max(0.0, 98 - task.progress) / rate
                    interval = max(policy.min_interval, min(interval, early))
        spread = policy.jitter * (2 * random.random() - 1)
        return interval * (1 + spread), eta
