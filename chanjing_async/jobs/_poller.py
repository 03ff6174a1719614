"""The shared poller: one loop per JobManager refreshes every task in flight.

Each task has its own next-read time (adaptive, see :class:`PollPolicy`). On every tick the
poller takes the tasks that are due (and those due within half ``min_interval``). When more
are due than the tasks in flight fill pages, it reads ``list`` pages (``page_size`` tasks per
call) until it has seen them all or read as many pages as the tasks in flight could fill, plus
one; every tracked task seen on a page is refreshed, due or not. A page that fails (after the
client's own retries) is read again, up to three times in all, before the pass gives up on the
list. Tasks the pages did not show are read one by one through ``detail``. The list's order is
undocumented, so it only decides how fast the pages find the tasks, never
whether a task is refreshed. Every read goes through the client's read limiter, so polling is
never answered 40001 by a server that counts 10 reads a second.

A task the server no longer knows (it restarted and forgot its tasks, say) answers ``detail``
with 40000. Such a task is read again ``missing_reads`` times in all, spread over
``missing_window``; if it is still unknown, a census reads the task list whole (at most
``CENSUS_PAGES`` pages; one census serves every such task of the moment) and a task it does
not show ends its job with TaskNotFoundError. Any reading that shows the task clears the
count. So a vanished task costs at most ``missing_reads`` detail reads and its share of one
census.

When each task is read next is the schedule's business (``_poll_schedule``).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from ..errors import ChanjingError, InvalidRequestError, TaskNotFoundError
from ._handle import JobStage
from ._poll_policy import PollPolicy as PollPolicy
from ._poll_schedule import Schedule, Tracked

if TYPE_CHECKING:
    from collections.abc import Callable

    from anyio.abc import TaskGroup

    from ..client._lip_sync import LipSync
    from ..models import LipSyncTask, Page
    from ._handle import JobHandle

__all__ = ["PollPolicy", "PollStats", "Poller"]  # PollPolicy lives in _poll_policy

logger = logging.getLogger("chanjing_async")

# Reads in flight at once; the read limiter paces them, this only bounds the tasks waiting.
_CONCURRENT_READS = 10
# Reads of one list page in a pass (each after the client's own retries) before giving up.
_PAGE_ATTEMPTS = 3
# Pages a census reads at most: a longer list is read that far (5,000 tasks, 5 s of reads).
CENSUS_PAGES = 50


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
        self._plan = Schedule(policy)
        self._tracked = self._plan.tracked
        self._census_at = 0.0  # monotonic time before which no new census starts
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
        self._plan.add(
            Tracked(
                handle, task_id, due=time.monotonic() + delay, timeout=timeout, callback=callback
            )
        )

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
                due = await self._plan.next_due()
                await self._refresh(due)

    # -- reading -----------------------------------------------------------------------------

    def _apply(self, record: Tracked, task: LipSyncTask) -> None:
        record.misses = 0
        delay, eta = self._plan.next_interval(record, task)
        record.handle._observe(task, eta=eta)
        if record.handle.done:
            self._forget(record)
        else:
            self._plan.schedule(record, delay)

    def _forget(self, record: Tracked) -> None:
        if self._tracked.get(record.task_id) is record:
            del self._tracked[record.task_id]
            self._on_untracked(record.handle)

    async def _refresh(self, due: list[Tracked]) -> None:
        now = time.monotonic()
        pending: list[Tracked] = []
        unknown: list[Tracked] = []
        for record in due:
            if now >= record.deadline:
                record.handle._end_expired(record.timeout)
                self._forget(record)
            elif self._confirmed_missing(record, now):
                unknown.append(record)
            else:
                pending.append(record)
        if unknown:
            await self._census(unknown)
        # A list pass costs about one call per page of tasks in flight and refreshes them all;
        # it pays off once more tasks are due than it has pages.
        pages = math.ceil(len(self._tracked) / self._policy.page_size)
        if len(pending) >= max(self._policy.batch_threshold, pages + 1):
            pending = await self._list_pass(pending)
        if pending:
            async with anyio.create_task_group() as group:
                for record in pending:
                    group.start_soon(self._detail, record)

    async def _list_pass(self, due: list[Tracked]) -> list[Tracked]:
        """Read list pages until every tracked task was seen; return the due ones unseen.

        Once pages are read at all, the pass goes on past the due tasks to every tracked one
        (within the page budget): they are all refreshed and rescheduled together, so the
        next pass finds them due together instead of in many small groups, each of which
        would read the first pages again.
        """
        wanted = {record.task_id for record in due}
        unseen = set(self._tracked)
        budget = math.ceil(len(self._tracked) / self._policy.page_size) + 1
        page = 1
        while unseen and page <= budget:
            result = await self._page(page)
            if result is None:
                logger.warning("list page %d keeps failing, falling back to detail", page)
                break
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

    async def _page(self, page: int) -> Page[LipSyncTask] | None:
        """List page ``page``, read up to ``_PAGE_ATTEMPTS`` times; None if every read failed.

        Reading a failed page again costs one call; giving up on it would send every due task
        it holds to ``detail``, one call each.
        """
        for _ in range(_PAGE_ATTEMPTS):
            try:
                async with self._reads:
                    return await self._lip_sync.list(page=page, page_size=self._policy.page_size)
            except ChanjingError as exc:
                self.stats.errors += 1
                logger.warning("list page %d failed: %s", page, exc)
            finally:
                self.stats.list_calls += 1
        return None

    # -- tasks the server does not know ------------------------------------------------------

    def _confirmed_missing(self, record: Tracked, now: float) -> bool:
        policy = self._policy
        return (
            record.misses >= policy.missing_reads
            and now - record.missing_since >= policy.missing_window
        )

    def _missed(self, record: Tracked, error: InvalidRequestError) -> None:
        """``detail`` says the server does not know the task: count it and read it later."""
        if self._tracked.get(record.task_id) is not record:
            return
        now = time.monotonic()
        if record.misses == 0:
            record.missing_since = now
        record.misses += 1
        logger.warning(
            "task %s unknown to the server (%d of %d reads): %s",
            record.task_id,
            record.misses,
            self._policy.missing_reads,
            error,
        )
        if self._confirmed_missing(record, now):
            # Due at the next census, which every task confirmed missing by then shares.
            self._plan.schedule(record, max(0.0, self._census_at - now))
        else:
            self._plan.schedule(record, self._policy.missing_spacing)

    async def _census(self, unknown: list[Tracked]) -> None:
        """Read the whole task list (up to CENSUS_PAGES pages); end the jobs it does not show."""
        self._census_at = time.monotonic() + self._policy.missing_spacing
        absent = {record.task_id for record in unknown}
        listed: set[str] = set()
        page = 1
        while absent:
            result = await self._page(page)
            if result is None:
                # Nothing proves these tasks gone: try again at the next census.
                logger.warning(
                    "census: list page %d keeps failing; %d tasks wait", page, len(absent)
                )
                for record in unknown:
                    if record.task_id in absent and self._tracked.get(record.task_id) is record:
                        self._plan.schedule(record, self._policy.missing_spacing)
                return
            for task in result.items:
                listed.add(task.id)
                tracked = self._tracked.get(task.id)
                if tracked is not None:
                    absent.discard(task.id)
                    self._apply(tracked, task)
            info = result.page_info
            whole = len(listed) >= info.total_count or page >= info.total_page
            if not result.items or whole or page >= CENSUS_PAGES:
                break
            page += 1
        now = time.monotonic()
        for record in unknown:
            if record.task_id in absent and self._tracked.get(record.task_id) is record:
                error = TaskNotFoundError(
                    f"the server no longer knows the task: {record.misses} detail reads over "
                    f"{now - record.missing_since:.3g} s answered 40000 and the task list "
                    "does not show it",
                    job_key=record.handle.key,
                    task_id=record.task_id,
                )
                record.handle._finish(JobStage.FAILED, error)
                self._forget(record)

    def _retry_later(self, record: Tracked, error: Exception) -> None:
        logger.warning("reading task %s failed, will retry: %s", record.task_id, error)
        if self._tracked.get(record.task_id) is record:
            self._plan.schedule(record, self._policy.error_backoff)

    async def _detail(self, record: Tracked) -> None:
        try:
            async with self._reads:
                task = await self._lip_sync.get(record.task_id)
        except InvalidRequestError as exc:
            self.stats.errors += 1
            if record.handle.request is None and record.handle.last is None:
                # 40000 for an id given to attach and never read: a wrong id, not a passing
                # failure, so the job ends with it. For a task we created, retry as below.
                record.handle._finish(None, exc)
                self._forget(record)
                return
            self._missed(record, exc)
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
