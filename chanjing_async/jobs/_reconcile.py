"""Reconciliation of a JobManager's creates whose outcome is unknown.

A create that timed out, lost its connection, met a gateway page or 50000 may have made a
task, now or at any moment until its processing horizon (``Timeouts.create_horizon``). Its job
waits here while every other job goes on being created. The task list is read whole (every
page, as many distinct tasks as it says it holds; its order plays no part) soon after the
ambiguity, then at growing intervals and right after each attempt closes, and the client's ledger
(``_attempts``) decides:

* **adopted**: exactly one open attempt of the whole client explains an unowned task: the job
  takes it (often at the first look: a connection dropped after the server answered);
* **empty**: a reading started after the attempt closed (its horizon, plus the uncertainty of
  the server's clock, the margin and a second: ``CreateLedger.closes_at``) found nothing it
  could have made: the job goes back to the head of the queue and is sent again;
* **contested**: tasks appeared that several attempts could have made, and every one of those
  attempts has passed its horizon: the jobs fail with ``CreateOutcomeUnknown(candidates=...)``.

A callback proves what time cannot: the URL of a job's create carries its key, so a callback for
a job still waiting names its task (checked through ``detail`` first) and the job adopts it.

Decided attempts stay watched for one more horizon: a task that appears that late is reported
(a WARNING, ``SubmitStats.late``, the job's handle and journal: "may have been created twice"),
and never adopted by any job.
"""

from __future__ import annotations

import functools
import logging
import time
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from ..errors import ChanjingError, CreateOutcomeUnknown
from ..models import MAX_PAGE_SIZE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from anyio.abc import TaskGroup

    from ..client._attempts import Attempt
    from ..client._lip_sync import LipSync
    from ._handle import JobHandle
    from ._submit import SubmitStats

logger = logging.getLogger("chanjing_async")

# A whole reading: create times, ended tasks, other processes' attempt windows, tasks they own.
_Reading = tuple[dict[str, int], frozenset[str], list[tuple[float, float]], frozenset[str]]

# Readings in a row that were not whole, or could not be judged (the server's clock unknown),
# before jobs past their horizon fail (no candidates).
_FAILED_READS = 5
# Seconds between checks that no create is in flight.
_QUIET_POLL = 0.005


@dataclass
class _Pending:
    handle: JobHandle
    attempt: Attempt
    error: CreateOutcomeUnknown


@dataclass(frozen=True)
class Outcomes:
    """What the reconciler hands back to the submitter, per job."""

    adopted: Callable[[JobHandle, str], None]
    resend: Callable[[JobHandle], None]
    failed: Callable[[JobHandle, Exception], None]
    duplicate: Callable[[str, str], None]


class Reconciler:
    """Waits out the unknown creates of one manager (see the module doc).

    Args:
        lip_sync: the client's lip-sync resource (its ledger is shared by every caller).
        outcomes: what to do with a job once its create is explained.
        owned: tasks owned outside the ledger (a journal of earlier runs).
        settle: seconds before the first look at the task list, and between failed looks.
        margin: seconds of slack when matching ``create_time`` in the server's time.
        stats: counters to update (``SubmitStats``).
        group: the manager's task group, which runs the reconciliation.
        proof: callbacks name the jobs of their tasks (a CallbackReceiver is set).
    """

    def __init__(
        self,
        lip_sync: LipSync,
        outcomes: Outcomes,
        *,
        owned: Callable[[str], bool],
        settle: float,
        margin: float,
        stats: SubmitStats,
        group: TaskGroup,
        proof: bool,
    ) -> None:
        self._lip_sync = lip_sync
        self._outcomes = outcomes
        self._owned = owned
        self._settle = settle
        self._margin = margin
        self._stats = stats
        self._group = group
        self._proof = proof
        self._pending: dict[int, _Pending] = {}
        self._watched: dict[int, Attempt] = {}  # decided, watched for late tasks
        self._told: set[str] = set()  # late tasks handed over
        self._running = False
        self._wake = anyio.Event()
        self._failed_reads = 0  # in a row
        self._proving: set[str] = set()  # tasks named by a callback, being checked
        # While the list is read, this manager sends no create (so no task appears in the
        # middle of the reading and hides another as the pages shift).
        self._listing = False
        self._listed = anyio.Event()
        self._sending = 0

    @property
    def unsettled(self) -> int:
        """Creates still unexplained, or settled and still watched for a late task."""
        return len(self._pending) + len(self._watched)

    def add(self, handle: JobHandle, attempt: Attempt, error: CreateOutcomeUnknown) -> None:
        """Explain ``attempt`` (unknown outcome) before ``handle`` goes anywhere."""
        self._pending[attempt.id] = _Pending(handle, attempt, error)
        self._wake.set()
        if not self._running:
            self._running = True
            self._group.start_soon(self._run)

    def waits_for(self, key: str) -> Attempt | None:
        """The unknown attempt of job ``key``, if it is waiting here."""
        for pending in self._pending.values():
            if pending.handle.key == key:
                return pending.attempt
        return None

    async def prove(self, key: str, task_id: str) -> bool:
        """A callback says job ``key``'s create made ``task_id``: adopt it if it fits.

        The task is read through ``detail`` first (a callback body is not trusted); it must
        exist, belong to nobody and have been created inside the attempt's window.
        """
        attempt = self.waits_for(key)
        if attempt is None:
            return False
        self._proving.add(task_id)
        try:
            task = await self._lip_sync.get(task_id)
        except ChanjingError as exc:
            logger.info("job %s: callback task %s not confirmed (%s)", key, task_id, exc)
            return False
        finally:
            self._proving.discard(task_id)
        if not self._lip_sync.ledger.prove(attempt, task.id, task.create_time, self._margin):
            return False
        await self._publish([attempt])
        self._stats.proven += 1
        self._settle_pending()
        return True

    async def _run(self) -> None:
        ledger = self._lip_sync.ledger
        interval = self._settle
        try:
            while self._pending or self._watched:
                self._wake = anyio.Event()
                listed_at = time.monotonic()
                reading = await self._read()
                if reading is not None:
                    tasks, ended, rivals, shared = reading
                    verdict = ledger.judge(
                        tasks,
                        listed_at=listed_at,
                        owned=functools.partial(_either, shared, self._owned),
                        margin=self._margin,
                        # A task whose callback is being checked has not had its say yet.
                        ended=ended - self._proving if self._proof else None,
                        rivals=rivals,
                    )
                    await self._publish(verdict.adopted)
                    # Whole readings that could decide nothing: the server's clock is unknown.
                    self._failed_reads = 0 if ledger.clock.bounded else self._failed_reads + 1
                    if self._failed_reads >= _FAILED_READS:
                        self._give_up(listed_at, "no create of this client has been read back")
                    self._settle_pending()
                    self._report()
                    # Only a reading started after its watch ended covers all it may make.
                    self._unwatch(listed_at)
                    interval = min(2 * interval, max(self._settle, ledger.horizon / 4))
                else:
                    self._failed_reads += 1
                    if self._failed_reads >= _FAILED_READS:
                        self._give_up(listed_at, "the task list could not be read whole")
                        self._unwatch(listed_at)
                    interval = self._settle
                await self._sleep(listed_at, interval)
        finally:
            self._running = False

    async def _sleep(self, listed_at: float, interval: float) -> None:
        """Until the next look: ``interval``, just after the next horizon or watch end, or soon
        after a new unknown create."""
        ledger = self._lip_sync.ledger
        horizons = [ledger.closes_at(p.attempt, self._margin) for p in self._pending.values()]
        horizons += [self._watch_end(attempt) for attempt in self._watched.values()]
        upcoming = [h for h in horizons if h > listed_at]
        wake = time.monotonic() + interval
        if upcoming:
            wake = min(wake, min(upcoming) + 0.001)
        elif horizons:
            wake = min(wake, time.monotonic() + self._settle)  # due now: read again soon
        with anyio.move_on_after(max(0.0, wake - time.monotonic())):
            await self._wake.wait()
            # A new unknown create: give its task a moment to appear before looking.
            await anyio.sleep(self._settle)

    def _settle_pending(self) -> None:
        """Act on every waiting job whose attempt the ledger has decided (by anyone)."""
        for number, pending in list(self._pending.items()):
            attempt, handle = pending.attempt, pending.handle
            if not attempt.decided:
                continue
            del self._pending[number]
            if attempt.state == "adopted":
                assert attempt.task_id is not None
                self._stats.adopted += 1
                logger.warning(
                    "job %s: adopted task %s made by its ambiguous create",
                    handle.key,
                    attempt.task_id,
                )
                self._outcomes.adopted(handle, attempt.task_id)
                if attempt.rival:
                    self._watched[number] = attempt  # the other attempt may still make one
                continue
            self._watched[number] = attempt
            if attempt.state == "empty":
                self._stats.resent += not handle.done
                self._outcomes.resend(handle)
            else:
                self._unresolved(pending, pending.error.reason, attempt.candidates)

    def _give_up(self, now: float, reason: str) -> None:
        """Readings keep deciding nothing: fail the jobs whose horizon has passed.

        Their error has no candidates, so a journal keeps them unfinished for a later run;
        their attempts stay open in the ledger, so no other job adopts what they made.
        """
        for number, pending in list(self._pending.items()):
            if now < pending.attempt.horizon:
                continue
            del self._pending[number]
            self._unresolved(pending, reason, ())

    def _unresolved(self, pending: _Pending, reason: str, candidates: tuple[str, ...]) -> None:
        """Fail a job whose create stays unexplained, with the tasks it may have made."""
        self._stats.unresolved += 1
        error = pending.error
        self._outcomes.failed(
            pending.handle,
            CreateOutcomeUnknown(
                reason,
                endpoint=error.endpoint,
                sent_at=error.sent_at,
                gave_up_at=error.gave_up_at,
                request=error.request,
                candidates=candidates,
            ),
        )

    def _report(self) -> None:
        """Hand over the late tasks the ledger found for this manager's settled creates,
        whichever manager's reading found them: each on the job most likely to have made it
        (the latest sent of those that may have)."""
        likely: dict[str, Attempt] = {}
        for attempt in self._watched.values():
            for task_id in attempt.late:
                if task_id not in self._told and attempt.key is not None:
                    if task_id not in likely or likely[task_id].sent < attempt.sent:
                        likely[task_id] = attempt
        for task_id, attempt in likely.items():
            assert attempt.key is not None
            self._told.add(task_id)
            self._outcomes.duplicate(attempt.key, task_id)

    def _unwatch(self, now: float) -> None:
        """Stop watching settled attempts whose watch (one more horizon) ended before ``now``."""
        for number, attempt in list(self._watched.items()):
            if now > self._watch_end(attempt):
                del self._watched[number]

    def _watch_end(self, attempt: Attempt) -> float:
        ledger = self._lip_sync.ledger
        return ledger.closes_at(attempt, self._margin) + ledger.horizon

    @asynccontextmanager
    async def sending(self) -> AsyncIterator[None]:
        """Around one create of the manager: waits while the list is being read, and while a
        create of an earlier run (from a journal) is unexplained: explained first, it cannot
        overlap with this run's creates if this run stops too."""
        while True:
            if self._listing:
                await self._listed.wait()
            elif any(pending.attempt.resumed for pending in self._pending.values()):
                await anyio.sleep(_QUIET_POLL)
            else:
                break
        self._sending += 1
        try:
            yield
        finally:
            self._sending -= 1

    async def _publish(self, adopted: list[Attempt]) -> None:
        """Tell the other processes (with a shared store) which tasks were adopted here."""
        store = self._lip_sync.ledger.store
        if store is not None:
            for attempt in adopted:
                await store.ended(attempt.id, closed=True, task_id=attempt.task_id)

    async def _read(self) -> _Reading | None:
        """Every task's ``create_time``, the tasks that ended, and what other processes
        sharing the app id have in flight or own; None if the list was not read whole.

        Whole means every page, and as many distinct tasks as the list says it holds (an
        unstable order, or tasks created meanwhile, can hide one; tasks are never removed).
        Creates wait meanwhile (the reading starts once none is in flight, a direct create's
        included, and with a shared store those of every process), a pause of a few list
        calls, not of a horizon.
        """
        store = self._lip_sync.ledger.store
        self._listing, self._listed = True, anyio.Event()
        try:
            async with store.reading() if store is not None else nullcontext():
                while True:  # polled: creates are at most ten a minute
                    if not self._sending and not self._lip_sync.ledger.in_flight:
                        break
                    await anyio.sleep(_QUIET_POLL)
                pages = await self._read_pages()
                if pages is None:
                    return None
                rivals, shared = await store.rivals() if store is not None else ([], frozenset())
                return (*pages, rivals, shared)
        finally:
            self._listing = False
            self._listed.set()

    async def _read_pages(self) -> tuple[dict[str, int], frozenset[str]] | None:
        found: dict[str, int] = {}
        ended: set[str] = set()
        page = 1
        try:
            while True:
                result = await self._lip_sync.list(page=page, page_size=MAX_PAGE_SIZE)
                for task in result.items:
                    found[task.id] = task.create_time
                    if task.is_terminal:
                        ended.add(task.id)
                if not result.items or page >= result.page_info.total_page:
                    break
                page += 1
        except ChanjingError as exc:
            logger.warning("reconciliation: listing tasks failed (%s)", exc)
            return None
        if len(found) < result.page_info.total_count:
            return None
        return found, frozenset(ended)


def _either(shared: frozenset[str], owned: Callable[[str], bool], task_id: str) -> bool:
    """Owned by another process (``shared``) or by an earlier run (``owned``)."""
    return task_id in shared or owned(task_id)
