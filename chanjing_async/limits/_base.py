"""What every limiter shares: the :class:`Slot` a request holds, the :class:`RateLimiter`
protocol the client needs, and :class:`LimiterBase` (the rate, the name and the 40001 penalty).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .._checks import check_setting

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AbstractAsyncContextManager

__all__ = ["LimiterBase", "RateLimiter", "Slot", "check_rate"]


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


class LimiterBase:
    """What the limiters share: the rate, a name for the repr and the 40001 penalty.

    A base for limiters in other packages too (the Redis one): a subclass implements
    :meth:`~RateLimiter.slot`, :meth:`~RateLimiter.next_free` and ``queue_depth``, and may
    extend :meth:`penalize`.

    Args:
        limit: requests allowed per window.
        window: window length in seconds.
        penalty: default length of a block after a 40001, in seconds.
        clock: the limiter's clock, in seconds.
        name: label shown in the repr.
    """

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
