"""One account of every create attempt of a client: what was sent, and what became of it.

Every create, a JobManager's or a direct ``client.lip_sync.create``, is an :class:`Attempt`:

* ``queued``: waiting for its slot; nothing has left this process.
* ``in_flight``: the request may have left (``sent`` is when it could first have).
* ``answered`` (a task id), ``refused`` (provably nothing was created: no connection, 40001, a
  refused token, a business error): closed.
* ``unknown``: the answer never came or says nothing (a timeout, a dropped connection, a gateway
  page, 50000, the caller cancelled). The server may still handle the request until its
  **processing horizon** (``Timeouts.create_horizon`` after the send): gateways let the origin
  go on after they or the client gave up. Cancellation never erases an attempt.
* ``adopted`` (its task was found), ``empty`` (the horizon passed and nothing appeared: the job
  may be sent again), ``contested`` (tasks appeared that several attempts could have made, and
  nothing can tell which): decided.

**Attribution** of tasks nobody owns to open attempts is the business of ``_attribution``.

Ownership (the ids of tasks this client created or adopted) is kept for an hour: only tasks
created around an open attempt ever matter.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from ._attribution import Attribution

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AbstractAsyncContextManager

    from ._clock import ServerClock


AttemptState = Literal[
    "queued", "in_flight", "answered", "refused", "unknown", "adopted", "empty", "contested"
]
# Decided attempts and owned ids are kept this long (seconds), for late reports and matching.
_RETENTION = 3600.0


class AttemptStore(Protocol):
    """Where the processes of one app id share their create attempts and owned tasks.

    Implemented in Redis (``scaleout._attempts``) for clients with ``rate_limiter=``.
    """

    async def sending(
        self, number: int, window: tuple[float, float], flight: float, keep: float
    ) -> None:
        """Publish an attempt right before it is sent (waits while another process reads)."""

    async def ended(self, number: int, *, closed: bool, task_id: str | None = None) -> None:
        """The attempt is off the wire: closed (answered, refused) or unknown."""

    async def own(self, task_id: str) -> None:
        """A task this process adopted."""

    async def rivals(self) -> tuple[list[tuple[float, float]], frozenset[str]]:
        """Other processes' attempt windows (server time) and every owned task id."""

    def reading(self) -> AbstractAsyncContextManager[None]:
        """Hold off every process's creates while the task list is read."""


@dataclass(eq=False)
class Attempt:
    """One create request and what is known of its outcome (see the module doc).

    Attributes:
        id: a number unique within the client.
        key: the job key of a JobManager's create; None for a direct create.
        sent: monotonic time at which the request could first have left (nan while queued).
        horizon: monotonic time after which the server no longer handles it (nan while queued).
        state: see the module doc.
        task_id: the task it made, once answered or adopted.
        candidates: the tasks it may have made, when contested.
        answered_at: monotonic time of the answer, once answered.
        rival: adopted on a callback's proof while an earlier attempt of the same job, sent
            again after its horizon, may have made the task instead: watched like a settled
            attempt, since whichever did not make it may still make one.
        late: tasks that appeared past its horizon and that it may have made (duplicates).
        resumed: an earlier process's attempt, found in a journal.
    """

    id: int
    key: str | None
    sent: float = math.nan
    horizon: float = math.nan
    state: AttemptState = "queued"
    task_id: str | None = None
    candidates: tuple[str, ...] = ()
    answered_at: float = math.nan
    rival: bool = False
    late: list[str] = field(default_factory=list)
    resumed: bool = False

    @property
    def open(self) -> bool:
        """True while the attempt may still explain a task nobody owns."""
        return self.state in ("in_flight", "unknown")

    @property
    def decided(self) -> bool:
        """True once reconciliation has settled an unknown outcome."""
        return self.state in ("adopted", "empty", "contested")


class CreateLedger(Attribution):
    """Every create attempt of one client, and the tasks it owns.

    The life of an attempt is kept here; which attempt made a task nobody owns is decided by
    the methods of :class:`~._attribution.Attribution` (``judge``, ``prove``, ...).

    Args:
        clock: what is known of the server's clock.
        horizon: seconds after its send during which the server may still handle a create.
        flight: seconds a create may stay on the wire (the request timeout).
    """

    def __init__(self, clock: ServerClock, *, horizon: float, flight: float) -> None:
        super().__init__(clock, horizon=horizon)
        self.flight = flight
        self.store: AttemptStore | None = None  # shared with other processes, when set
        self._ids = itertools.count(1)
        self._sampling: dict[str, Attempt] = {}  # answered, create_time not seen yet
        self._pruned_at = -math.inf

    def __repr__(self) -> str:
        states: dict[str, int] = defaultdict(int)
        for attempt in self._attempts.values():
            states[attempt.state] += 1
        return f"<CreateLedger horizon={self.horizon:g} {dict(states)} owned={len(self._owned)}>"

    # -- one attempt's life --------------------------------------------------------------------

    def begin(self, key: str | None) -> Attempt:
        """A new queued attempt (nothing has been sent yet)."""
        self._prune(time.monotonic())
        attempt = Attempt(next(self._ids), key)
        self._attempts[attempt.id] = attempt
        return attempt

    async def sending(
        self, attempt: Attempt, then: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """The request is about to leave (again, after a connection that was never made).

        With a shared store the attempt is published first, as a window of server time wide
        enough for its horizon and the watch after it (waiting while another process reads
        the task list); ``then`` runs next (a journal's write); the send time is taken last,
        right before the request leaves.
        """
        if self.store is not None:
            keep = 2 * self.horizon + self.flight + 1.0
            earliest, latest = self.clock.to_server(time.monotonic())
            await self.store.sending(attempt.id, (earliest, latest + keep), self.flight, keep)
        if then is not None:
            await then()
        now = time.monotonic()
        attempt.sent, attempt.horizon, attempt.state = now, now + self.horizon, "in_flight"

    def answered(self, attempt: Attempt, task_id: str) -> None:
        """The server named the task it created."""
        attempt.state, attempt.task_id = "answered", task_id
        attempt.answered_at = time.monotonic()
        self.own(task_id)
        self._sampling[task_id] = attempt

    def refused(self, attempt: Attempt) -> None:
        """Nothing was created (or the request never left)."""
        attempt.state = "refused"
        self._attempts.pop(attempt.id, None)

    def unknown(self, attempt: Attempt) -> None:
        """The outcome cannot be told now; a request that never left is simply refused."""
        if attempt.state == "queued":
            self.refused(attempt)
        elif attempt.state == "in_flight":
            attempt.state = "unknown"

    async def ended_with_task(self, attempt: Attempt, task_id: str) -> None:
        """:meth:`answered`, and published to the shared store (if any)."""
        self.answered(attempt, task_id)
        if self.store is not None:
            await self.store.ended(attempt.id, closed=True, task_id=task_id)

    async def ended_without_task(self, attempt: Attempt, *, closed: bool) -> None:
        """A create that got no task id: :meth:`refused` (``closed``) or :meth:`unknown`, and
        published to the shared store (if any) even if what came next failed."""
        sent = attempt.state != "queued"
        if closed:
            self.refused(attempt)
        else:
            self.unknown(attempt)
        if self.store is not None:
            await self.store.ended(attempt.id, closed=closed or not sent)

    def resumed(self, key: str, sent: float, horizon: float) -> Attempt:
        """An attempt of an earlier process found in a journal, outcome unknown."""
        attempt = Attempt(
            next(self._ids), key, sent=sent, horizon=horizon, state="unknown", resumed=True
        )
        self._attempts[attempt.id] = attempt
        return attempt

    def attempt(self, number: int | None) -> Attempt | None:
        """The attempt with this number, while the ledger keeps it."""
        return None if number is None else self._attempts.get(number)

    def observe(self, task_id: str, create_time: int) -> None:
        """A task was read: if this client created it, its ``create_time`` dates our clock."""
        attempt = self._sampling.pop(task_id, None)
        if attempt is not None and create_time > 0:
            self.clock.observe_task(create_time, attempt.sent, attempt.answered_at)

    def expect(self, task_id: str, sent: float, answered: float) -> None:
        """A task an earlier run created, sent and answered then (monotonic): when it is read,
        its ``create_time`` dates our clock as if this process had created it."""
        self._sampling[task_id] = Attempt(0, None, sent=sent, answered_at=answered)

    @property
    def in_flight(self) -> int:
        """Attempts whose request may be on the wire now."""
        return sum(attempt.state == "in_flight" for attempt in self._attempts.values())

    def _prune(self, now: float) -> None:
        """Forget what is older than the retention, at most once a second (a scan of every
        attempt on every create would make N creates cost N squared)."""
        if now - self._pruned_at < 1.0:
            return
        self._pruned_at = now
        old = now - _RETENTION
        while self._owned and next(iter(self._owned.values())) < old:
            task_id, _ = self._owned.popitem(last=False)
            self._sampling.pop(task_id, None)
        for attempt in list(self._attempts.values()):
            if not attempt.open and attempt.horizon < old:
                del self._attempts[attempt.id]
