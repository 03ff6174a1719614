"""What this process knows of the server's clock: bounds on its offset from ours.

Reconciliation matches a task's ``create_time`` (the server's clock, whole seconds) against the
moments this process sent its creates (``time.monotonic``). The two clocks are never assumed to
agree: the offset ``server - monotonic`` is bounded by what the server says, each statement
read at some moment between the send of a request and the arrival of its answer:

* the ``create_time`` of a task this process created (the origin's own clock, read while it
  handled our create), and
* the HTTP ``Date`` header of any answer (possibly a gateway's clock, so it only counts until a
  ``create_time`` is known).

A server reading ``r`` of whole-second resolution says the server time lay in ``[r, r + 1)``;
made between monotonic ``sent`` and ``answered``, it bounds the offset to
``(r - answered, r + 1 - sent)``. Every sample holds the true offset, so their intersection
does too, and it narrows as samples accumulate. Only the latest samples count, and if they
disagree (a clock was stepped) the newest consistent run wins: a step is then taken up at once
instead of leaving an empty (or stale) interval.
"""

from __future__ import annotations

import math
import time
from collections import deque
from email.utils import parsedate_to_datetime

# Samples kept per source: enough to narrow the bounds, few enough to follow a stepped clock.
_SAMPLES = 32


class ServerClock:
    """Bounds on ``server time - time.monotonic()`` learnt from the server's own statements."""

    def __init__(self) -> None:
        self._tasks: deque[tuple[float, float]] = deque(maxlen=_SAMPLES)
        self._dates: deque[tuple[float, float]] = deque(maxlen=_SAMPLES)

    def __repr__(self) -> str:
        low, high = self.offset()
        return f"<ServerClock offset in [{low:.3f}, {high:.3f}] s>"

    def observe_date(self, header: str | None, sent: float, answered: float) -> None:
        """Learn from an answer's ``Date`` header (RFC 7231, whole seconds)."""
        if not header:
            return
        try:
            stamp = parsedate_to_datetime(header).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return  # a header we cannot read says nothing
        if math.isfinite(stamp):
            self._dates.append((stamp - answered, stamp + 1 - sent))

    def observe_task(self, create_time: int, sent: float, answered: float) -> None:
        """Learn from the ``create_time`` of a task whose create was sent and answered then."""
        self._tasks.append((create_time - answered, create_time + 1 - sent))

    def offset(self) -> tuple[float, float]:
        """``(low, high)`` bounds on the offset; infinite when the server has said nothing.

        The origin's ``create_time`` samples win over ``Date`` headers, which a gateway in front
        of it may write from another clock.
        """
        return _newest_consistent(self._tasks or self._dates)

    def skew(self) -> float:
        """Seconds the server's wall clock is ahead of ours (best estimate; 0 when unknown)."""
        low, high = self.offset()
        if not (math.isfinite(low) and math.isfinite(high)):
            return 0.0
        return (low + high) / 2 - (time.time() - time.monotonic())

    def to_server(self, monotonic: float) -> tuple[float, float]:
        """The server times a monotonic moment may correspond to, as ``(earliest, latest)``."""
        low, high = self.offset()
        return monotonic + low, monotonic + high


def _newest_consistent(samples: deque[tuple[float, float]]) -> tuple[float, float]:
    """The intersection of the newest samples, back to the first one that contradicts them."""
    low, high = -math.inf, math.inf
    for sample_low, sample_high in reversed(samples):
        if max(low, sample_low) > min(high, sample_high):
            break  # an older sample from before a clock step
        low, high = max(low, sample_low), min(high, sample_high)
    return low, high
