"""The shared poller: one loop per JobManager refreshes every task in flight.

Each task has its own next-read time (adaptive, see :class:`PollPolicy`). On every tick the
poller takes the tasks that are due (and those due within half ``min_interval``). When more
are due than the tasks in flight fill pages, it reads ``list`` pages (``page_size`` tasks per
call) until it has seen them all or read as many pages as the tasks in flight could fill, plus
one; every tracked task seen on a page is refreshed, due or not. Tasks the pages did not show
are read one by one through ``detail``. The list's order is undocumented (reference §5.3), so
it only decides how fast the pages find the tasks, never whether a task is refreshed. Every
read goes through the client's read limiter, so polling is never answered 40001 by a server
that counts 10 reads a second.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import anyio

from .errors import ChanjingError, ConfigurationError, InvalidRequestError
from .models import MAX_PAGE_SIZE, TaskStatus

if TYPE_CHECKING:
    from collections.abc import Callable

    from anyio.abc import TaskGroup

    from ._handle import JobHandle
    from ._resources import LipSync
    from .models import LipSyncTask

logger = logging.getLogger("chanjing_async")

# Reads in flight at once; the read limiter paces them, this only bounds the tasks waiting.
_CONCURRENT_READS = 10


@dataclass(frozen=True)
class PollPolicy:
    """How often the shared poller reads each task, in seconds of real time.

    A task is first read ``first`` seconds after its create, then after an interval that
    starts at ``min_interval`` and grows ×``growth`` up to ``max_interval``. Once the task
    reports progress, the interval is also cut to the estimated time left (from the progress
    rate), so the end is seen soon after it happens. Intervals get ±``jitter`` (a fraction).
    Jobs whose callback URL is ours grow to ``callback_interval`` instead: the callback brings
    the end, polling is the safety net for a callback that never comes.

    Attributes:
        first: delay before the first read of a new task.
        min_interval: shortest interval between two reads of a task.
        max_interval: longest interval, without callbacks.
        growth: factor applied to the interval after each read (1 keeps it fixed).
        callback_interval: longest interval for jobs with a callback receiver.
        batch_threshold: fewest due tasks for which ``list`` pages are read instead of
            ``detail`` (more are needed when the tasks in flight fill several pages).
        page_size: tasks per list page (at most 100).
        jitter: relative random spread of each interval, 0 to 0.5.
        error_backoff: delay before reading again a task whose read failed.
        file_interval: first delay between readiness checks of a file the manager uploaded
            (``files.upload(poll_interval=...)``).

    Raises:
        ConfigurationError: (a ValueError) a value out of range.
    """

    first: float = 5.0
    min_interval: float = 2.0
    max_interval: float = 30.0
    growth: float = 1.5
    callback_interval: float = 120.0
    batch_threshold: int = 2
    page_size: int = MAX_PAGE_SIZE
    jitter: float = 0.1
    error_backoff: float = 2.0
    file_interval: float = 1.0

    def __post_init__(self) -> None:
        for name in ("first", "min_interval", "error_backoff", "file_interval"):
            if not _finite(getattr(self, name)) or getattr(self, name) <= 0:
                raise ConfigurationError(f"PollPolicy.{name}={getattr(self, name)!r}: must be > 0")
        for name in ("max_interval", "callback_interval"):
            value = getattr(self, name)
            if not _finite(value) or value < self.min_interval:
                raise ConfigurationError(
                    f"PollPolicy.{name}={value!r}: must be >= min_interval ({self.min_interval})"
                )
        if not _finite(self.growth) or self.growth < 1:
            raise ConfigurationError(f"PollPolicy.growth={self.growth!r}: must be >= 1")
        if type(self.batch_threshold) is not int or self.batch_threshold < 1:
            raise ConfigurationError(
                f"PollPolicy.batch_threshold={self.batch_threshold!r}: must be an integer >= 1"
            )
        if type(self.page_size) is not int or not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ConfigurationError(
                f"PollPolicy.page_size={self.page_size!r}: must be an integer 1..{MAX_PAGE_SIZE}"
            )
        if not _finite(self.jitter) or not 0 <= self.jitter <= 0.5:
            raise ConfigurationError(f"PollPolicy.jitter={self.jitter!r}: must be 0 to 0.5")

    def scaled(self, time_scale: float) -> PollPolicy:
        """The same policy on a clock running ``time_scale`` times faster (emulator tests)."""
        if not _finite(time_scale) or time_scale <= 0:
            raise ConfigurationError(f"time_scale={time_scale!r}: must be a finite number > 0")
        k = time_scale
        return replace(
            self,
            first=self.first / k,
            min_interval=self.min_interval / k,
            max_interval=self.max_interval / k,
            callback_interval=self.callback_interval / k,
            error_backoff=self.error_backoff / k,
            file_interval=self.file_interval / k,
        )


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Tracked:
    """Poll state of one task."""

    __slots__ = (
        "callback",
        "confirming",
        "deadline",
        "due",
        "handle",
        "interval",
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
        # First (time, progress) seen with progress > 0: the base of the progress rate.
        self.seen: tuple[float, int] | None = None


@dataclass
class PollStats:
    """What the poller has done (observable by tests and benchmarks).

    Attributes:
        list_calls: list pages read.
        detail_calls: detail reads (including callback confirmations).
        errors: reads that failed after the client's own retries (the task is read again).
    """

    list_calls: int = 0
    detail_calls: int = 0
    errors: int = 0


class Poller:
    """Refreshes every tracked task through ``list`` pages and ``detail`` reads."""

    def __init__(
        self,
        lip_sync: LipSync,
        policy: PollPolicy,
        *,
        on_untracked: Callable[[JobHandle], None],
    ) -> None:
        self._lip_sync = lip_sync
        self._policy = policy
        self._on_untracked = on_untracked
        self._tracked: dict[str, _Tracked] = {}
        self._heap: list[tuple[float, int, _Tracked]] = []
        self._order = itertools.count()
        self._wake = anyio.Event()
        self._reads = anyio.CapacityLimiter(_CONCURRENT_READS)
        self._task_group: TaskGroup | None = None
        self.stats = PollStats()

    def track(
        self, handle: JobHandle, task_id: str, *, timeout: float, callback: bool, delay: float
    ) -> None:
        """Start refreshing ``task_id`` for ``handle``, first in ``delay`` seconds.

        The job's deadline is ``timeout`` seconds from now; ``callback`` says a callback
        receiver will report the task's end (polling then slows to the safety-net cadence).
        """
        record = _Tracked(
            handle, task_id, due=time.monotonic() + delay, timeout=timeout, callback=callback
        )
        self._tracked[task_id] = record
        self._push(record)

    def handle_of(self, task_id: str) -> JobHandle | None:
        """The handle tracking ``task_id``, if any."""
        record = self._tracked.get(task_id)
        return None if record is None else record.handle

    def untrack(self, task_id: str) -> None:
        """Stop refreshing ``task_id`` (its job ended or was cancelled)."""
        self._tracked.pop(task_id, None)

    def confirm(self, task_id: str, status: int) -> bool:
        """A callback says ``task_id`` reached ``status``: read it now through ``detail``.

        Returns False if the task is not tracked or this status was already reported (a
        duplicate). The callback is only a hint: the handle follows what ``detail`` answers.
        """
        record = self._tracked.get(task_id)
        if record is None or record.reported == status:
            return False
        record.reported = status
        if not record.confirming and self._task_group is not None:
            record.confirming = True
            self._task_group.start_soon(self._detail, record)
        return True

    async def run(self) -> None:
        """Poll until cancelled."""
        async with anyio.create_task_group() as group:
            self._task_group = group
            while True:
                due = await self._next_due()
                await self._refresh(due)

    # -- scheduling --------------------------------------------------------------------------

    def _push(self, record: _Tracked) -> None:
        heapq.heappush(self._heap, (record.due, next(self._order), record))
        if self._heap[0][2] is record:
            self._wake.set()

    def _live(self, due: float, record: _Tracked) -> bool:
        # Rescheduling pushes a new entry; the old one stays in the heap and is skipped here.
        return self._tracked.get(record.task_id) is record and record.due == due

    async def _next_due(self) -> list[_Tracked]:
        while True:
            while self._heap and not self._live(self._heap[0][0], self._heap[0][2]):
                heapq.heappop(self._heap)
            now = time.monotonic()
            if self._heap and self._heap[0][0] <= now:
                # Tasks due within half the shortest interval come along: reading them a
                # little early lets one list page serve them all.
                horizon = now + self._policy.min_interval / 2
                due: list[_Tracked] = []
                while self._heap and self._heap[0][0] <= horizon:
                    at, _, record = heapq.heappop(self._heap)
                    if self._live(at, record):
                        due.append(record)
                return due
            delay = self._heap[0][0] - now if self._heap else math.inf
            self._wake = anyio.Event()
            with anyio.move_on_after(delay):
                await self._wake.wait()

    def _schedule(self, record: _Tracked, delay: float) -> None:
        record.due = min(time.monotonic() + delay, record.deadline)
        self._push(record)

    def _next_interval(self, record: _Tracked, task: LipSyncTask) -> tuple[float, float | None]:
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

    # -- reading -----------------------------------------------------------------------------

    def _apply(self, record: _Tracked, task: LipSyncTask) -> None:
        delay, eta = self._next_interval(record, task)
        record.handle.observe(task, eta=eta)
        if record.handle.done:
            self._forget(record)
        else:
            self._schedule(record, delay)

    def _forget(self, record: _Tracked) -> None:
        if self._tracked.get(record.task_id) is record:
            del self._tracked[record.task_id]
            self._on_untracked(record.handle)

    async def _refresh(self, due: list[_Tracked]) -> None:
        now = time.monotonic()
        pending: list[_Tracked] = []
        for record in due:
            if now >= record.deadline:
                record.handle.deadline_passed(record.timeout)
                self._forget(record)
            else:
                pending.append(record)
        # A list pass costs about one call per page of tasks in flight and refreshes them all;
        # it pays off once more tasks are due than it has pages.
        pages = math.ceil(len(self._tracked) / self._policy.page_size)
        if len(pending) >= max(self._policy.batch_threshold, pages + 1):
            pending = await self._list_pass(pending)
        if pending:
            async with anyio.create_task_group() as group:
                for record in pending:
                    group.start_soon(self._detail, record)

    async def _list_pass(self, due: list[_Tracked]) -> list[_Tracked]:
        """Read list pages until every tracked task was seen; return the due ones unseen.

        Once pages are read at all, the pass goes on past the due tasks to every tracked one
        (within the page budget): they are all refreshed and rescheduled together, so the
        next pass finds them due together instead of in many small groups, each of which
        would read the first pages again.
        """
        wanted = {record.task_id for record in due}
        unseen = set(self._tracked)
        size = self._policy.page_size
        budget = math.ceil(len(self._tracked) / size) + 1
        page = 1
        while unseen and page <= budget:
            try:
                async with self._reads:
                    result = await self._lip_sync.list(page=page, page_size=size)
            except ChanjingError as exc:
                self.stats.errors += 1
                logger.warning("list page %d failed, falling back to detail: %s", page, exc)
                break
            finally:
                self.stats.list_calls += 1
            for task in result.items:
                record = self._tracked.get(task.id)
                if record is not None:
                    wanted.discard(task.id)
                    unseen.discard(task.id)
                    self._apply(record, task)
            if not result.items or page >= result.page_info.total_page:
                break
            page += 1
        return [record for record in due if record.task_id in wanted]

    def _retry_later(self, record: _Tracked, error: Exception) -> None:
        logger.warning("reading task %s failed, will retry: %s", record.task_id, error)
        if self._tracked.get(record.task_id) is record:
            self._schedule(record, self._policy.error_backoff)

    async def _detail(self, record: _Tracked) -> None:
        try:
            async with self._reads:
                task = await self._lip_sync.get(record.task_id)
        except InvalidRequestError as exc:
            self.stats.errors += 1
            if record.handle.request is None and record.handle.last is None:
                # 40000 for an id given to attach and never read: a wrong id, not a passing
                # failure, so the job ends with it. For a task we created, retry as below.
                record.handle.finish(None, exc)
                self._forget(record)
                return
            self._retry_later(record, exc)
            return
        except ChanjingError as exc:
            self.stats.errors += 1
            self._retry_later(record, exc)
            return
        finally:
            self.stats.detail_calls += 1
            record.confirming = False
        if self._tracked.get(record.task_id) is record:
            self._apply(record, task)
            # Still running: whatever a callback claimed was not true (yet), so the next
            # callback for that status is a new hint, not a duplicate.
            record.reported = None
