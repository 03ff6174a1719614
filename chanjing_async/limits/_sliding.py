"""The default limiter: a completion-anchored sliding-window log, never answered 40001.

It admits each request at the earliest moment that guarantee allows, whatever the latency and
whether the server counts in sliding or fixed windows (the proof is on the class).
"""

from __future__ import annotations

import math
import time
from bisect import insort
from collections import deque
from typing import TYPE_CHECKING

import anyio

from ._base import LimiterBase, Slot, check_rate

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from contextlib import AbstractAsyncContextManager

__all__ = ["SlidingWindowLimiter"]


class _Waiter:
    # The event the waiter currently sleeps on; anyio events cannot be reset, so each wait
    # gets a fresh one.
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = anyio.Event()


class SlidingWindowLimiter(LimiterBase):
    """Completion-anchored sliding-window log: the default, never-rejected limiter.

    A request holds its slot from just before it is sent until its response arrives or the
    caller gives up (its *release*; +inf while in flight). Invariant: a request is admitted at
    time t only if fewer than ``limit`` earlier requests are in flight or were released after
    ``t - (window + margin)``, and t >= the blocked-until time set by :meth:`penalize`.

    Why this is safe whatever the latency: every request j
    reaches the server at some a_j between its send s_j and its release r_j. If ``limit + 1``
    arrivals shared one window of length T, take m, the one sent last: when m was admitted at
    most ``limit - 1`` others were unreleased or released after s_m - T, so some j in the window
    had a_j <= r_j <= s_m - T <= a_m - T, so a_j and a_m cannot share the window. This holds for
    sliding and fixed (calendar) server windows alike, and no earlier admission is safe under
    every latency consistent with what the client has seen.

    Waiters are admitted in FIFO order; one cancelled before admission leaves no trace, one
    cancelled after admission records its release. Memory is O(limit): only the ``limit``
    latest releases can ever delay an admission.

    Args:
        limit: requests allowed per window.
        window: window length in seconds.
        margin: seconds added to the window (server clock granularity; 1 s for create).
        clock: monotonic clock in seconds; waits sleep on the event loop, then re-check it.
        name: label shown in the repr.

    Raises:
        ConfigurationError: (a ValueError) if an argument is out of range.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        margin: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "",
    ) -> None:
        check_rate(limit, window, margin)
        self._span = float(window) + margin
        super().__init__(limit, window, self._span, clock, name)
        self._margin = float(margin)
        self._in_flight = 0
        self._releases: list[float] = []  # ascending, at most `limit` entries
        self._waiters: deque[_Waiter] = deque()  # only the head may be admitted

    @property
    def margin(self) -> float:
        """Seconds added to the window before a release stops counting."""
        return self._margin

    @property
    def in_flight(self) -> int:
        """Admitted requests whose slot has not been released yet."""
        return self._in_flight

    @property
    def queue_depth(self) -> int:
        """Callers waiting in :meth:`slot` that have not been admitted yet."""
        return len(self._waiters)

    def next_free(self) -> float:
        """Clock time at which the log admits a new request (``now`` if free, inf if all in flight).

        Callers already queued go first; the log itself is all this looks at.
        """
        return self._next_free(self._clock())

    def _next_free(self, now: float) -> float:
        room = self._limit - self._in_flight
        if room <= 0:
            return math.inf  # only a release can free a slot
        free = max(now, self._blocked_until)
        if len(self._releases) >= room:
            # The room-th latest release must be window + margin old; then at most room - 1
            # releases are recent, and with the in-flight ones fewer than `limit` count.
            free = max(free, self._releases[-room] + self._span)
        return free

    def slot(self) -> AbstractAsyncContextManager[Slot]:
        """Wait (FIFO) for admission, then hold a slot until the block is left.

        The release is recorded on exit, whether by return, exception or cancellation, at the
        exit time plus :meth:`Slot.hold`.
        """
        return _Admission(self)

    def _admit_now(self, now: float) -> bool:
        """Admit at once if nobody waits and the log allows it (no checkpoint)."""
        if not self._waiters and self._next_free(now) <= now:
            self._in_flight += 1
            return True
        return False

    def _leave(self, slot: Slot) -> None:
        if slot.discarded:
            # Nothing was sent: the slot frees without leaving a release in the log.
            self._in_flight -= 1
            self._wake_head()
        else:
            self._release(self._clock() + slot.held)

    async def _admit(self) -> float:
        now = self._clock()
        if self._admit_now(now):
            return now
        waiter = _Waiter()
        self._waiters.append(waiter)
        try:
            while True:
                waiter.event = anyio.Event()
                now = self._clock()
                head = self._waiters[0] is waiter
                delay = self._next_free(now) - now if head else math.inf
                if delay <= 0:
                    self._in_flight += 1
                    return now
                # Woken early by a release or by becoming head; otherwise re-check at the
                # computed time (the sleep may end a little early, hence the loop).
                with anyio.move_on_after(delay):
                    await waiter.event.wait()
        finally:
            # Admitted or cancelled, the waiter leaves; whoever is head next must re-check.
            self._waiters.remove(waiter)
            self._wake_head()

    def _release(self, at: float) -> None:
        self._in_flight -= 1
        insort(self._releases, at)
        del self._releases[: -self._limit]
        self._wake_head()

    def _wake_head(self) -> None:
        if self._waiters:
            self._waiters[0].event.set()

    def seed(self, release_times: Iterable[float]) -> None:
        """Preload release times (limiter clock), e.g. from a journal after a restart.

        The server still counts the previous run's requests, which a fresh log does not know.

        Raises:
            ValueError: if a time is not finite; nothing is recorded then.
        """
        times = [float(t) for t in release_times]
        if not all(map(math.isfinite, times)):
            raise ValueError(f"release_times={times!r}: every time must be finite")
        self._releases = sorted(self._releases + times)[-self._limit :]

    def __repr__(self) -> str:
        now = self._clock()
        recent = sum(r > now - self._span for r in self._releases)
        return (
            f"<SlidingWindowLimiter {self._name!r} limit={self._limit} window={self._window}"
            f" margin={self._margin} in_flight={self._in_flight} recent_releases={recent}"
            f" queue_depth={len(self._waiters)} {self._repr_blocked(now)}>"
        )


class _Admission:
    """``async with limiter.slot()`` of a SlidingWindowLimiter.

    A class rather than a generator context manager: a slot is taken for every request, and
    the free path (admitted at once) then costs no coroutine at all. Entering either admits
    (and the exit releases) or raises having taken nothing, so no slot can leak.
    """

    __slots__ = ("_limiter", "_slot")

    def __init__(self, limiter: SlidingWindowLimiter) -> None:
        self._limiter = limiter
        self._slot: Slot | None = None

    async def __aenter__(self) -> Slot:
        limiter = self._limiter
        now = limiter._clock()
        admitted = now if limiter._admit_now(now) else await limiter._admit()
        self._slot = Slot(admitted)
        return self._slot

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._slot is not None
        self._limiter._leave(self._slot)
