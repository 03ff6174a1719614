"""The classic option: a token bucket over aiolimiter, strict only with ``burst=1``."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
from aiolimiter import AsyncLimiter

from .._checks import check_setting
from ._base import LimiterBase, Slot, check_rate

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["TokenBucketLimiter"]


class TokenBucketLimiter(LimiterBase):
    """The classic option: ``aiolimiter.AsyncLimiter(burst, window * burst / limit)``.

    A token bucket admits up to ``burst + limit - 1`` requests in a window (a full bucket
    at its start, then ``limit - 1`` refills), so only ``burst=1`` (one request every
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
