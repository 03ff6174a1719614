"""FIFO create submission for a JobManager, and the reconciliation of ambiguous creates.

**Order.** One loop starts creates one at a time: each waits (FIFO) for a slot of the client's
create limiter, and only once it holds the slot does it take the job at the head of the queue.
So jobs are created in submission order, a job put back at the head goes next, and at most
one create waits for a slot at any time while up to ``limit`` may be in flight. The create is
sent in that slot exactly once (``lip_sync.create(..., slot=...)``) and shielded from
cancellation: a create cut off mid-flight would make its outcome unknown.

**With a journal** the manager's ``before_send`` commits "this create is going out" before
each create (inside its slot), and creates go out one at a time (``serial``): a crash then
leaves at most one create unexplained, which the next run hands to :meth:`Submitter.unexplained`
and reconciles like any other.

**Refusals that prove nothing was created** put the job back at the head of the queue:
40001 (the client has already pushed the limiter back by a window), a connection that was
never established (creates then pause for the client's retry backoff, growing with the job's
refusals) and a refused token (refreshed by the client; once per job).

**Ambiguous creates** (``CreateOutcomeUnknown``: a timeout, a dropped connection, a gateway
page, 50000) pause new creates. Once no create is in flight, the task list is read for tasks
whose ``create_time`` lies in ``[first sent_at - margin, last gave_up_at + margin]`` and that no
job of this manager owns (the task object carries no inputs, so time and ownership are all
there is to match on):

* one ambiguous job and exactly one such task: the job adopts it;
* no such task, again after ``settle`` seconds (a late request may still create one): nothing
  was created, so the jobs go back to the head of the queue;
* anything else (several tasks, or several ambiguous jobs with tasks): the jobs fail with
  ``CreateOutcomeUnknown`` listing the candidate ids. We never guess: a wrong adoption would
  hand one job another's video.

Pausing keeps the match unique: while one create is unexplained this manager starts no other,
and the list is read only while no create of the client is in flight (another manager's
included), so every task the client created is known when the list is judged. The whole list
is read, whatever its order; a reading that is not whole settles nothing (see ``_unowned``).

What this cannot see: another *process* or program creating on the same app id inside that
window. Two such tasks are the third case; one such task while ours was never created would
be adopted by mistake. Run one process per app id, or give it its own app id, when creates can
become ambiguous.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from .errors import (
    AuthenticationError,
    ChanjingError,
    CreateOutcomeUnknown,
    RateLimitError,
    TransportError,
)
from .models import MAX_PAGE_SIZE

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.abc import TaskGroup

    from ._handle import JobHandle
    from ._resources import LipSync
    from .limits import RateLimiter, Slot
    from .models import LipSyncRequest

logger = logging.getLogger("chanjing_async")

# Whole readings of the task list tried per reconciliation before giving up.
_RECONCILE_ATTEMPTS = 5
_QUIET_POLL = 0.02


@dataclass
class SubmitStats:
    """What the submitter has done.

    Attributes:
        sent: creates sent (each holds one limiter slot).
        created: tasks created and attributed to a job (adoptions included).
        requeued: jobs put back at the head after a refusal (40001, no connection, token).
        rate_limited: creates answered 40001.
        ambiguous: creates whose outcome was unknown.
        adopted: ambiguous creates resolved by adopting the one matching task.
        resent: ambiguous creates resolved as "nothing created" and queued again.
        unresolved: ambiguous creates failed with CreateOutcomeUnknown.
    """

    sent: int = 0
    created: int = 0
    requeued: int = 0
    rate_limited: int = 0
    ambiguous: int = 0
    adopted: int = 0
    resent: int = 0
    unresolved: int = 0


class Submitter:
    """Creates queued jobs in FIFO order through the create limiter (see the module doc)."""

    def __init__(
        self,
        lip_sync: LipSync,
        limiter: RateLimiter,
        *,
        request_of: Callable[[JobHandle], LipSyncRequest],
        owned: Callable[[str], bool],
        on_created: Callable[[JobHandle, str], None],
        on_failed: Callable[[JobHandle, Exception], None],
        before_send: Callable[[JobHandle], Awaitable[None]],
        on_requeued: Callable[[JobHandle], None],
        group: TaskGroup,
        serial: bool,
        settle: float,
        margin: float,
        max_attempts: int,
        backoff: Callable[[int], float],
    ) -> None:
        self._lip_sync = lip_sync
        self._before_send = before_send
        self._on_requeued = on_requeued
        self._group = group
        self._serial = serial
        self._limiter = limiter
        self._request_of = request_of
        self._owned = owned
        self._on_created = on_created
        self._on_failed = on_failed
        self._settle = settle
        self._margin = margin
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._queue: deque[JobHandle] = deque()
        self._attempts: dict[str, int] = {}  # refusals by 40001 or no connection, per job
        self._auth_retried: set[str] = set()
        self._order: dict[str, int] = {}  # key -> place in the queue, kept when put back
        self._counter = itertools.count()
        self._changed = anyio.Event()
        self._paused = False
        self._not_before = 0.0  # monotonic time before which no create starts (backoff)
        self._unknown: list[tuple[JobHandle, CreateOutcomeUnknown]] = []
        # Candidates of reconciliations that could not decide: they existed before any later
        # create was sent, so they can never be a later create's task.
        self._disowned: set[str] = set()
        self.stats = SubmitStats()

    def push(self, handle: JobHandle) -> None:
        """Queue a job for creation, behind every job queued before it."""
        self._order[handle.key] = next(self._counter)
        self._queue.append(handle)
        self._changed.set()

    def _push_back(self, handle: JobHandle) -> None:
        """Put a refused job back at the head, before every job queued after it.

        Jobs refused together (10 creates in flight meet a 40001 burst) keep their order: each
        goes before the first queued job that came after it.
        """
        if handle.done:
            self._forget(handle)  # cancelled while its create was in flight or reconciled
            return
        self._on_requeued(handle)
        order = self._order[handle.key]
        index = 0
        while index < len(self._queue) and self._order[self._queue[index].key] < order:
            index += 1
        self._queue.insert(index, handle)
        self._changed.set()

    def remove(self, handle: JobHandle) -> bool:
        """Take a job out of the queue (it is cancelled); False if it is not queued."""
        try:
            self._queue.remove(handle)
        except ValueError:
            return False
        self._forget(handle)
        return True

    def _forget(self, handle: JobHandle) -> None:
        self._attempts.pop(handle.key, None)
        self._auth_retried.discard(handle.key)
        self._order.pop(handle.key, None)

    async def run(self) -> None:
        """Start creates one after another, until cancelled."""
        while True:
            while self._paused or not self._queue:
                self._changed = anyio.Event()
                await self._changed.wait()
            await anyio.sleep(max(0.0, self._not_before - time.monotonic()))
            admitted, finished = anyio.Event(), anyio.Event()
            self._group.start_soon(self._create_next, admitted, finished)
            await (finished if self._serial else admitted).wait()

    async def _create_next(self, admitted: anyio.Event, finished: anyio.Event) -> None:
        try:
            async with self._limiter.slot() as slot:
                if self._paused or not self._queue:
                    slot.discard()  # the job was cancelled meanwhile: the slot was not used
                    return
                handle = self._queue.popleft()
                admitted.set()
                # Shielded: a create cancelled mid-flight would leave its outcome unknown.
                with anyio.CancelScope(shield=True):
                    try:
                        await self._before_send(handle)
                    except BaseException:
                        slot.discard()  # not sent: the journal could not record it
                        raise
                    if handle.done:
                        # Cancelled while its intent was being written: nothing goes out.
                        slot.discard()
                        self._on_requeued(handle)
                        self._forget(handle)
                        return
                    await self._send(handle, slot)
        finally:
            admitted.set()
            finished.set()

    async def _send(self, handle: JobHandle, slot: Slot) -> None:
        self.stats.sent += 1
        try:
            task_id = await self._lip_sync.create(self._request_of(handle), slot=slot)
        except CreateOutcomeUnknown as exc:
            self.stats.ambiguous += 1
            logger.warning("job %s: create outcome unknown, reconciling: %s", handle.key, exc)
            self.unexplained(handle, exc)
        except (RateLimitError, AuthenticationError, TransportError) as exc:
            # A create that reached the wire surfaces as CreateOutcomeUnknown, so a
            # TransportError here means the connection was never established.
            self._refused(handle, exc)
        except ChanjingError as exc:
            self._fail(handle, exc)
        else:
            self._created(handle, task_id)

    def unexplained(self, handle: JobHandle, exc: CreateOutcomeUnknown) -> None:
        """Reconcile a create whose outcome is unknown (sent by this run or, from a journal,
        by one that crashed); creates pause until it is explained."""
        self._order.setdefault(handle.key, next(self._counter))
        self._unknown.append((handle, exc))
        if not self._paused:
            self._paused = True
            self._group.start_soon(self._reconcile)

    def _created(self, handle: JobHandle, task_id: str) -> None:
        self._forget(handle)
        self.stats.created += 1
        self._on_created(handle, task_id)

    def _fail(self, handle: JobHandle, error: Exception) -> None:
        self._forget(handle)
        self._on_failed(handle, error)

    def _refused(self, handle: JobHandle, exc: ChanjingError) -> None:
        """Nothing was created: put the job back at the head, unless it was refused too often."""
        if isinstance(exc, AuthenticationError):
            # The client refreshed the refused token before raising: one more try is enough.
            if handle.key in self._auth_retried:
                self._fail(handle, exc)
                return
            self._auth_retried.add(handle.key)
        else:
            attempts = self._attempts.get(handle.key, 0) + 1
            if attempts >= self._max_attempts:
                self._fail(handle, exc)
                return
            self._attempts[handle.key] = attempts
            if isinstance(exc, RateLimitError):
                # The client has pushed the limiter back by a window: that is the wait.
                self.stats.rate_limited += 1
            else:
                # No connection: back off (growing) before the next create, whichever job.
                self._not_before = time.monotonic() + self._backoff(attempts)
        self.stats.requeued += 1
        logger.info("job %s: create refused (%s), first in line again", handle.key, exc)
        self._push_back(handle)

    async def _reconcile(self) -> None:
        """Resolve every ambiguous create, then let creates go on (see the module doc)."""
        try:
            await self._quiet()
            pending, self._unknown = self._unknown, []
            # create_time is whole server seconds: round the window's start down.
            start = math.floor(min(exc.sent_at for _, exc in pending) - self._margin)
            end = max(exc.gave_up_at for _, exc in pending) + self._margin
            found = await self._unowned(start, end)
            if found == []:
                await anyio.sleep(self._settle)
                # A create the server handled late (up to the settle time after we gave up)
                # has a later create_time; the window grows by that much, no further (a
                # create from a crashed run must not reach into the downtime).
                found = await self._unowned(start, end + self._settle)
            self._resolve(pending, found)
        finally:
            if self._unknown:
                # Unexplained creates handed over meanwhile (resumed from a journal): their
                # turn now, before anything else is sent.
                self._group.start_soon(self._reconcile)
            else:
                self._paused = False
                self._changed.set()

    async def _quiet(self) -> None:
        """Wait until no create of this client is in flight (any manager's, or a direct one).

        Polled rather than signalled: creates are at most ten a minute.
        """
        while True:
            if not self._lip_sync.creates_in_flight:
                return
            await anyio.sleep(_QUIET_POLL)

    def _resolve(
        self, pending: list[tuple[JobHandle, CreateOutcomeUnknown]], found: list[str] | None
    ) -> None:
        if found is not None and len(pending) == 1 and len(found) == 1:
            handle, _ = pending[0]
            self.stats.adopted += 1
            logger.warning(
                "job %s: adopted task %s created by the ambiguous create", handle.key, found[0]
            )
            self._created(handle, found[0])
            return
        if found == []:
            # Nothing was created: back to the head, in their original order.
            for handle, _ in pending:
                self.stats.resent += not handle.done
                self._push_back(handle)
            return
        self._disowned.update(found or ())
        for handle, exc in pending:
            self.stats.unresolved += 1
            self._fail(
                handle,
                CreateOutcomeUnknown(
                    exc.reason if found is not None else "the task list could not be read",
                    endpoint=exc.endpoint,
                    sent_at=exc.sent_at,
                    gave_up_at=exc.gave_up_at,
                    request=exc.request,
                    candidates=tuple(found or ()),
                ),
            )

    async def _unowned(self, start: float, end: float) -> list[str] | None:
        """Ids of tasks created in [start, end] that nobody here owns; None if unsure.

        Only a complete reading counts: every page, as many distinct tasks as the list says it
        holds, and no create of this client started meanwhile (its task could be on a page
        before its id came back). The list's order plays no part. After a few incomplete
        readings (an unstable order, tasks created elsewhere meanwhile, errors) the answer is
        None, and the job fails with CreateOutcomeUnknown rather than risk a duplicate.
        """
        for attempt in range(_RECONCILE_ATTEMPTS):
            await self._quiet()
            started = self._lip_sync.creates_started
            try:
                found, complete = await self._scan(start, end)
            except ChanjingError as exc:
                logger.warning("reconciliation: listing tasks failed (%s)", exc)
            else:
                if complete and self._lip_sync.creates_started == started:
                    return found
            await anyio.sleep(self._settle * (attempt + 1) / _RECONCILE_ATTEMPTS)
        return None

    async def _scan(self, start: float, end: float) -> tuple[list[str], bool]:
        """Read every page: the unowned tasks in the window, and whether the reading was whole."""
        found: dict[str, None] = {}
        seen: set[str] = set()
        page = 1
        while True:
            result = await self._lip_sync.list(page=page, page_size=MAX_PAGE_SIZE)
            for task in result.items:
                seen.add(task.id)
                if (
                    start <= task.create_time <= end
                    and not self._owned(task.id)
                    and task.id not in self._disowned
                ):
                    found[task.id] = None
            if not result.items or page >= result.page_info.total_page:
                return list(found), len(seen) >= result.page_info.total_count
            page += 1
