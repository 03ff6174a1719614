"""FIFO create submission for a JobManager, and the reconciliation of ambiguous creates.

**Order.** One loop starts creates one at a time: each waits (FIFO) for a slot of the client's
create limiter, and only once it holds the slot does it take the job at the head of the queue.
So jobs are created in submission order, a job put back at the head goes next, and at most
one create waits for a slot at any time while up to ``limit`` may be in flight. The create is
sent in that slot exactly once (``lip_sync.create(..., slot=...)``) and shielded from
cancellation: a create cut off mid-flight would make its outcome unknown.

**With a durable store** the manager's ``before_send`` commits "this create is going out" right
before each create leaves (inside its slot, after the token and any shared reservation), and
creates go out one at a time (``serial``): a crash then leaves at most one create in flight,
which the next run hands to :meth:`Submitter.unexplained` and reconciles like any other.

**Refusals that prove nothing was created** put the job back at the head of the queue:
40001 (the client has already pushed the limiter back by a window), a connection that was
never established (creates then pause for the client's retry backoff, growing with the job's
refusals) and a refused token (refreshed by the client; once per job).

**Ambiguous creates** (``CreateOutcomeUnknown``: a timeout, a dropped connection, a gateway
page, 50000) go to the reconciler (``_reconcile``), which keeps the job until the task list
explains its create: adopted, sent again once its processing horizon has passed with nothing
to show for it, or failed with its candidates. Every other job goes on being created
meanwhile; the create's limiter slot stays counted until the horizon (``_transport``).
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import anyio

from ..errors import (
    AuthenticationError,
    ChanjingError,
    CreateOutcomeUnknown,
    RateLimitError,
    TransportError,
)
from ._reconcile import Outcomes, Reconciler

if TYPE_CHECKING:
    from collections.abc import Callable

    from anyio.abc import TaskGroup

    from ..client._attempts import Attempt
    from ..client._lip_sync import LipSync
    from ..limits import RateLimiter, Slot
    from ..models import LipSyncRequest
    from ._handle import JobHandle

logger = logging.getLogger("chanjing_async")


class SubmitHost(Protocol):
    """What the submitter needs of the manager that owns the jobs it creates."""

    def request_of(self, handle: JobHandle) -> LipSyncRequest:
        """The create request of a queued job."""

    async def before_send(self, handle: JobHandle) -> None:
        """Right before its create leaves: commit that it is going out (with a durable store).

        Raises:
            JournalError: it could not be; the create is not sent.
        """

    def created(self, handle: JobHandle, task_id: str) -> None:
        """A create (or a reconciliation) gave the job its task."""

    def failed(self, handle: JobHandle, error: Exception) -> None:
        """The job failed before it had a task."""

    def requeued(self, handle: JobHandle) -> None:
        """Its create was refused, or created nothing: no create of it is pending."""

    def duplicate(self, key: str, task_id: str) -> None:
        """Task ``task_id`` may have been made by job ``key``'s create as well as its own."""

    def owns(self, task_id: str) -> bool:
        """Whether task ``task_id`` belongs to a job outside the client's ledger (an earlier
        run's)."""


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
        resent: ambiguous creates whose horizon passed with nothing created, queued again.
        unresolved: ambiguous creates failed with CreateOutcomeUnknown (contested).
        proven: adoptions settled by a callback naming the job (counted in ``adopted`` too).
        late: tasks that appeared past a resent or failed create's horizon: possible
            duplicates, reported on the job's handle and adopted by no job.
    """

    sent: int = 0
    created: int = 0
    requeued: int = 0
    rate_limited: int = 0
    ambiguous: int = 0
    adopted: int = 0
    resent: int = 0
    unresolved: int = 0
    proven: int = 0
    late: int = 0


class Submitter:
    """Creates queued jobs in FIFO order through the create limiter (see the module doc)."""

    def __init__(
        self,
        lip_sync: LipSync,
        limiter: RateLimiter,
        host: SubmitHost,
        *,
        group: TaskGroup,
        serial: bool,
        proof: bool,
        settle: float,
        margin: float,
        max_attempts: int,
        backoff: Callable[[int], float],
    ) -> None:
        self._lip_sync = lip_sync
        self._host = host
        self._group = group
        self._serial = serial
        self._limiter = limiter
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._queue: deque[JobHandle] = deque()
        self._jobs: dict[str, _Place] = {}  # the jobs waiting for (or in) a create, by key
        self._counter = itertools.count()
        self._changed = anyio.Event()
        self._not_before = 0.0  # monotonic time before which no create starts (backoff)
        self.stats = SubmitStats()
        self.reconciler = Reconciler(
            lip_sync,
            Outcomes(
                adopted=self._created,
                resend=self._push_back,
                failed=self._fail,
                duplicate=host.duplicate,
            ),
            owned=host.owns,
            settle=settle,
            margin=margin,
            stats=self.stats,
            group=group,
            proof=proof,
        )

    def push(self, handle: JobHandle) -> None:
        """Queue a job for creation, behind every job queued before it."""
        self._jobs[handle.key] = _Place(handle, next(self._counter))
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
        self._host.requeued(handle)
        order = self._jobs[handle.key].order
        index = 0
        while index < len(self._queue) and self._jobs[self._queue[index].key].order < order:
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
        # Only its own entry: a job cancelled in flight may have had its key submitted again.
        place = self._jobs.get(handle.key)
        if place is not None and place.handle is handle:
            del self._jobs[handle.key]

    async def run(self) -> None:
        """Start creates one after another, until cancelled."""
        while True:
            while not self._queue:
                self._changed = anyio.Event()
                await self._changed.wait()
            await anyio.sleep(max(0.0, self._not_before - time.monotonic()))
            admitted, finished = anyio.Event(), anyio.Event()
            self._group.start_soon(self._create_next, admitted, finished)
            await (finished if self._serial else admitted).wait()

    async def _create_next(self, admitted: anyio.Event, finished: anyio.Event) -> None:
        try:
            async with self._limiter.slot() as slot:
                if not self._queue:
                    slot.discard()  # the job was cancelled meanwhile: the slot was not used
                    return
                handle = self._queue.popleft()
                admitted.set()
                # Shielded: a create cancelled mid-flight would leave its outcome unknown.
                async with self.reconciler.sending():
                    with anyio.CancelScope(shield=True):
                        await self._send(handle, slot)
        finally:
            admitted.set()
            finished.set()

    async def _send(self, handle: JobHandle, slot: Slot) -> None:
        if handle.done:
            # Cancelled while its create waited to be sent: it has no request left to send.
            slot.discard()
            self._forget(handle)
            return
        self.stats.sent += 1
        try:
            task_id = await self._lip_sync.create(
                self._host.request_of(handle),
                slot=slot,
                key=handle.key,
                before_send=functools.partial(self._going_out, handle),
            )
        except _Withdrawn:
            # Cancelled while its intent was being written: nothing went out.
            self.stats.sent -= 1
            self._host.requeued(handle)
            self._forget(handle)
            return
        except CreateOutcomeUnknown as exc:
            self.stats.ambiguous += 1
            logger.warning("job %s: create outcome unknown, reconciling: %s", handle.key, exc)
            attempt = self._lip_sync.ledger.attempt(exc.attempt)
            assert attempt is not None  # the create recorded it
            self.unexplained(handle, attempt, exc)
        except (RateLimitError, AuthenticationError, TransportError) as exc:
            # A create that reached the wire surfaces as CreateOutcomeUnknown, so a
            # TransportError here means the connection was never established.
            self._refused(handle, exc)
        except ChanjingError as exc:
            self._fail(handle, exc)
        else:
            self._created(handle, task_id)

    async def _going_out(self, handle: JobHandle) -> None:
        """Right before the create leaves: the journal writes it down (with one)."""
        await self._host.before_send(handle)
        if handle.done:
            raise _Withdrawn

    def unexplained(self, handle: JobHandle, attempt: Attempt, error: CreateOutcomeUnknown) -> None:
        """Reconcile a create whose outcome is unknown (sent by this run or, from a journal,
        by one that stopped); its job waits, the others go on."""
        self._jobs.setdefault(handle.key, _Place(handle, next(self._counter)))
        self.reconciler.add(handle, attempt, error)

    def _created(self, handle: JobHandle, task_id: str) -> None:
        self._forget(handle)
        self.stats.created += 1
        self._host.created(handle, task_id)

    def _fail(self, handle: JobHandle, error: Exception) -> None:
        self._forget(handle)
        self._host.failed(handle, error)

    def _refused(self, handle: JobHandle, exc: ChanjingError) -> None:
        """Nothing was created: put the job back at the head, unless it was refused too often."""
        place = self._jobs.get(handle.key)
        if place is None or place.handle is not handle:  # cancelled in flight, key reused
            place = _Place(handle, next(self._counter))
        if isinstance(exc, AuthenticationError):
            # The client refreshed the refused token before raising: one more try is enough.
            if place.auth_retried:
                self._fail(handle, exc)
                return
            place.auth_retried = True
        else:
            attempts = place.refusals + 1
            if attempts >= self._max_attempts:
                self._fail(handle, exc)
                return
            place.refusals = attempts
            if isinstance(exc, RateLimitError):
                # The client has pushed the limiter back by a window: that is the wait.
                self.stats.rate_limited += 1
            else:
                # No connection: back off (growing) before the next create, whichever job.
                self._not_before = time.monotonic() + self._backoff(attempts)
        self.stats.requeued += 1
        logger.info("job %s: create refused (%s), first in line again", handle.key, exc)
        self._push_back(handle)


@dataclass
class _Place:
    """A job waiting for (or in) a create: its handle, its place in the queue (kept when put
    back) and its refusals so far."""

    handle: JobHandle
    order: int
    refusals: int = 0  # by 40001 or no connection
    auth_retried: bool = False  # its token was refused once


class _Withdrawn(Exception):
    """A job cancelled while its create was being written down: the create is not sent."""
