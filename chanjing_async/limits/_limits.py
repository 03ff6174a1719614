"""Client-side rate limiters that keep every request within the Chanjing limits.

The API allows 10 creates per minute and 10 detail/list calls per second, and answers
``code 40001`` beyond that (``reference/chanjing-api.md`` §6). The default
:class:`SlidingWindowLimiter` is a completion-anchored sliding-window log: it is never rejected,
whatever the latency and whether the server counts in sliding or fixed windows, and it admits
each request at the earliest moment that guarantee allows (``reference/rate-limits.md`` §2–3).
:class:`TokenBucketLimiter` is the classic aiolimiter option, strict only with ``burst=1``.

Example::

    limiters = RateLimits().build()
    async with limiters.create.slot() as slot:
        try:
            task_id = await send_create(request)
        except TimeoutError:
            slot.hold(60.0)  # the create may still reach the server late
            raise
"""

from __future__ import annotations

import asyncio
import math
import time
from bisect import insort
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, Protocol, get_args, runtime_checkable

import anyio
from aiolimiter import AsyncLimiter

from .._checks import check_setting
from ..errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
    from contextlib import AbstractAsyncContextManager

__all__ = [
    "LimiterKind",
    "Limiters",
    "Rate",
    "RateLimiter",
    "RateLimits",
    "SlidingWindowLimiter",
    "Slot",
    "TokenBucketLimiter",
]

LimiterKind = Literal["sliding", "token_bucket"]


def check_rate(limit: object, window: object, margin: object) -> None:
    check_setting("limit", limit, integer=True, minimum=1)
    check_setting("window", window, above=True)
    check_setting("margin", margin)


class Slot:
    """A slot held from just before a request is sent until the caller stops waiting for it.

    Attributes:
        admitted_at: the limiter's clock when the slot was granted (the send time).
    """

    __slots__ = ("_discarded", "_fence", "_held", "admitted_at")

    def __init__(
        self, admitted_at: float, *, fence: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self.admitted_at = admitted_at
        self._held = 0.0
        self._discarded = False
        self._fence = fence

    async def fence(self) -> None:
        """Make sure the reservation is still live, right before the request is sent.

        An in-process limiter's slot cannot lapse, so this does nothing. A shared limiter's
        reservation can (its lease ran out while this process was paused: SIGSTOP, a VM
        freeze, a debugger): then this waits for a new reservation instead of sending on one
        that other processes already count as released.
        """
        if self._fence is not None:
            await self._fence()

    @property
    def discarded(self) -> bool:
        """True when :meth:`discard` was called: the slot was given back unused."""
        return self._discarded

    @property
    def held(self) -> float:
        """Seconds the slot stays counted after the ``async with`` block is left."""
        return self._held

    def hold(self, seconds: float) -> None:
        """Keep the slot counted for ``seconds`` after the block is left.

        Use it when the outcome is unknown (a create that timed out may still reach the server
        late). Repeated calls keep the longest hold; a call after the block has no effect.

        Raises:
            ValueError: if ``seconds`` is negative or not finite.
        """
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"seconds={seconds!r}: must be a finite number >= 0")
        self._held = max(self._held, seconds)

    def discard(self) -> None:
        """Give the slot back unused: nothing was sent, so it need not count in the window.

        Only valid if no request was sent in the slot. A sliding-window limiter then frees it
        at once; a token bucket cannot return its token, so there it only marks the slot.
        """
        self._discarded = True


@runtime_checkable
class RateLimiter(Protocol):
    """What the client needs from a limiter: slots, a 40001 hook and observability."""

    @property
    def limit(self) -> int:
        """Requests allowed per window."""

    @property
    def window(self) -> float:
        """Window length in seconds."""

    @property
    def queue_depth(self) -> int:
        """Callers waiting in :meth:`slot` that have not been admitted yet."""

    def slot(self) -> AbstractAsyncContextManager[Slot]:
        """Wait for admission, then hold a slot until the block is left (even by an exception)."""

    def penalize(self, until: float | None = None) -> None:
        """Block every waiter until ``until`` (limiter clock) after a 40001 was received."""

    def next_free(self) -> float:
        """Clock time at which a new request could be admitted; ``now`` if one could go now."""


class _LimiterBase:
    # What both limiters share: the rate, a name for the repr and the 40001 penalty.

    def __init__(
        self, limit: int, window: float, penalty: float, clock: Callable[[], float], name: str
    ) -> None:
        self._limit = limit
        self._window = float(window)
        self._penalty = penalty  # default length of a block after a 40001
        self._clock = clock
        self._name = name
        self._blocked_until = -math.inf

    @property
    def limit(self) -> int:
        """Requests allowed per window."""
        return self._limit

    @property
    def window(self) -> float:
        """Window length in seconds."""
        return self._window

    def penalize(self, until: float | None = None) -> None:
        """Block every admission until ``until`` on the limiter's clock after a 40001.

        The default is one window (plus margin) from now. The rejected request already
        counts, as it held a slot. A later call never shortens an existing block.

        Raises:
            ValueError: if ``until`` is not finite.
        """
        target = self._clock() + self._penalty if until is None else until
        if not math.isfinite(target):
            raise ValueError(f"until={until!r}: must be a finite time on the limiter's clock")
        self._blocked_until = max(self._blocked_until, target)

    def _repr_blocked(self, now: float) -> str:
        blocked = self._blocked_until if self._blocked_until > now else None
        return f"blocked_until={blocked}"


class _Waiter:
    # The event the waiter currently sleeps on; anyio events cannot be reset, so each wait
    # gets a fresh one.
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = anyio.Event()


class SlidingWindowLimiter(_LimiterBase):
    """Completion-anchored sliding-window log: the default, never-rejected limiter.

    A request holds its slot from just before it is sent until its response arrives or the
    caller gives up (its *release*; +inf while in flight). Invariant: a request is admitted at
    time t only if fewer than ``limit`` earlier requests are in flight or were released after
    ``t - (window + margin)``, and t >= the blocked-until time set by :meth:`penalize`.

    Why this is safe whatever the latency (``reference/rate-limits.md`` §3): every request j
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


class TokenBucketLimiter(_LimiterBase):
    """The classic option: ``aiolimiter.AsyncLimiter(burst, window * burst / limit)``.

    A token bucket admits up to ``burst + limit - 1`` requests in a window
    (``reference/rate-limits.md`` §1.1), so only ``burst=1`` (one request every
    ``window / limit``) is strict; it gives up the initial burst (10 creates: 54 s instead of
    0 s). It anchors on send times, so :meth:`Slot.hold` is recorded on the slot but delays
    nothing, and latency jitter can still cause a 40001. Waiters blocked by :meth:`penalize`
    are not strictly FIFO. The clock is ``time.monotonic``, the clock of asyncio's loop.

    Args:
        limit: requests allowed per window.
        window: window length in seconds (fold any margin in here).
        burst: bucket capacity; anything above 1 exceeds the limit after an idle period.
        name: label shown in the repr.

    Raises:
        ConfigurationError: (a ValueError) if an argument is out of range.
    """

    def __init__(self, limit: int, window: float, *, burst: int = 1, name: str = "") -> None:
        check_rate(limit, window, 0.0)
        check_setting("burst", burst, integer=True, minimum=1)
        super().__init__(limit, window, float(window), time.monotonic, name)
        self._burst = burst
        self._period = self._window * burst / limit
        self._rate = limit / self._window  # tokens per second
        # aiolimiter binds to the loop that first uses it, so it is made inside the loop.
        self._bucket: tuple[asyncio.AbstractEventLoop, AsyncLimiter] | None = None
        # A mirror of the bucket level, so next_free needs no aiolimiter internals.
        self._level = 0.0
        self._level_at = 0.0
        self._waiting = 0

    @property
    def burst(self) -> int:
        """Bucket capacity: requests that may go at once after an idle period."""
        return self._burst

    @property
    def queue_depth(self) -> int:
        """Callers waiting in :meth:`slot` that have not been admitted yet."""
        return self._waiting

    def _get_bucket(self) -> AsyncLimiter:
        loop = asyncio.get_running_loop()
        if self._bucket is None or self._bucket[0] is not loop:
            # aiolimiter warns when reused on another loop, so each loop gets a bucket; a new
            # one starts full, so it waits until the old one would have had a token.
            self._blocked_until = max(self._blocked_until, self.next_free())
            self._bucket = (loop, AsyncLimiter(self._burst, self._period))
        return self._bucket[1]

    def _drained_level(self, now: float) -> float:
        return max(0.0, self._level - (now - self._level_at) * self._rate)

    def next_free(self) -> float:
        """Approximate clock time at which the bucket admits a new request (``now`` if free)."""
        now = self._clock()
        excess = self._drained_level(now) - (self._burst - 1)
        return max(now + max(0.0, excess) / self._rate, self._blocked_until)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        """Wait for a token and for any penalty to pass, then yield a slot."""
        self._waiting += 1
        try:
            admitted_at = await self._admit(self._get_bucket())
        finally:
            self._waiting -= 1
        yield Slot(admitted_at)

    async def _admit(self, bucket: AsyncLimiter) -> float:
        while True:
            delay = self._blocked_until - self._clock()
            if delay > 0:
                await anyio.sleep(delay)  # then re-check: the penalty may have been extended
                continue
            await bucket.acquire()
            now = self._clock()
            self._level = self._drained_level(now) + 1.0
            self._level_at = now
            # A 40001 may have arrived while we queued in the bucket: wait again and spend
            # another token (conservative), rather than go out during the penalty.
            if now >= self._blocked_until:
                return now

    def __repr__(self) -> str:
        return (
            f"<TokenBucketLimiter {self._name!r} limit={self._limit} window={self._window}"
            f" burst={self._burst} queue_depth={self._waiting} {self._repr_blocked(self._clock())}>"
        )


@dataclass(frozen=True)
class Rate:
    """A limit of ``limit`` requests per ``window`` seconds, plus a safety ``margin``.

    Raises:
        ConfigurationError: (a ValueError) if limit < 1, window <= 0 or margin < 0.
    """

    limit: int
    window: float
    margin: float = 0.0

    def __post_init__(self) -> None:
        check_rate(self.limit, self.window, self.margin)


@dataclass(frozen=True)
class Limiters:
    """One limiter per endpoint group, as made by :meth:`RateLimits.build`."""

    create: RateLimiter
    read: RateLimiter
    other: RateLimiter


@dataclass(frozen=True)
class RateLimits:
    """Rates per endpoint group and the limiter kind that enforces them.

    Attributes:
        create: ``video_lip_sync/create``; documented 10 per minute, 1 s margin for the
            server's whole-second ``create_time``.
        read: ``detail`` and ``list``; documented 10 per second each. Whether they share a
            budget is undocumented, so one shared budget is the conservative default.
        other: undocumented endpoints (token, upload URL, file detail, voices).
        kind: ``"sliding"`` (default, never rejected) or ``"token_bucket"`` (burst 1).

    Raises:
        ConfigurationError: (a ValueError) if ``kind`` is unknown.
    """

    create: Rate = Rate(10, 60.0, 1.0)
    read: Rate = Rate(10, 1.0, 0.05)
    other: Rate = Rate(10, 1.0, 0.05)
    kind: LimiterKind = "sliding"

    def __post_init__(self) -> None:
        if self.kind not in get_args(LimiterKind):
            raise ConfigurationError(f"kind={self.kind!r}: must be 'sliding' or 'token_bucket'")

    def scaled(self, time_scale: float) -> RateLimits:
        """The same limits on a clock running ``time_scale`` times faster (for emulator tests).

        Raises:
            ConfigurationError: if ``time_scale`` is not a finite number > 0.
        """
        check_setting("time_scale", time_scale, above=True)

        def shrink(rate: Rate) -> Rate:
            return Rate(rate.limit, rate.window / time_scale, rate.margin / time_scale)

        return replace(
            self, create=shrink(self.create), read=shrink(self.read), other=shrink(self.other)
        )

    def build(self) -> Limiters:
        """Fresh limiters of the configured kind: one set per client, shared by its requests."""
        return Limiters(
            create=self._make("create", self.create),
            read=self._make("read", self.read),
            other=self._make("other", self.other),
        )

    def _make(self, name: str, rate: Rate) -> RateLimiter:
        if self.kind == "token_bucket":
            # No completion anchoring to add the margin to: widen the spacing instead,
            # one request every (window + margin) / limit.
            return TokenBucketLimiter(rate.limit, rate.window + rate.margin, name=name)
        return SlidingWindowLimiter(rate.limit, rate.window, margin=rate.margin, name=name)
