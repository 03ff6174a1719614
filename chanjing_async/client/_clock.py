"""What this process knows of the server's clock: bounds on its offset from ours.

Reconciliation matches a task's ``create_time`` (the server's clock, whole seconds) against the
moments this process sent its creates (``time.monotonic``). The two clocks are never assumed to
agree: the offset ``server - monotonic`` is bounded by what the server says, each statement
read at some moment between the send of a request and the arrival of its answer:

* the ``create_time`` of a task this process created (the origin's own clock, read while it
  handled our create), and
* the HTTP ``Date`` header of an API answer (possibly a proxy's clock: it bounds the offset,
  widened by ``DATE_SLACK``, only until a ``create_time`` of ours is known, and then reveals
  clock steps).

A server reading ``r`` of whole-second resolution says the server time lay in ``[r, r + 1)``;
made between monotonic ``sent`` and ``answered``, it bounds the offset to
``(r - answered, r + 1 - sent)``. Every sample holds the true offset, so their intersection
does too, and it narrows as samples accumulate. Only the latest samples count, and if they
disagree (a clock was stepped) the newest consistent run wins.
"""

from __future__ import annotations

import math
import time
from collections import deque
from email.utils import parsedate_to_datetime

# Samples kept per source: enough to narrow the bounds, few enough to follow a stepped clock.
_SAMPLES = 32
DATE_SLACK = 2.0
"""Seconds a ``Date`` header's clock may differ from the one that writes ``create_time``."""


class ServerClock:
    """Bounds on ``server time - time.monotonic()`` learnt from the server's own statements."""

    def __init__(self) -> None:
        self._tasks: deque[tuple[float, float]] = deque(maxlen=_SAMPLES)
        self._dates: deque[tuple[float, float]] = deque(maxlen=_SAMPLES)
        # Bounds on (Date clock - create_time clock): constant unless one of them steps.
        self._gap = (-math.inf, math.inf)
        self.steps = 0
        """Clock steps noticed (the create_time samples were dropped each time)."""

    def __repr__(self) -> str:
        low, high = self.offset()
        return f"<ServerClock offset in [{low:.3f}, {high:.3f}] s steps={self.steps}>"

    def observe_date(self, header: str | None, sent: float, answered: float) -> None:
        """Learn from the ``Date`` header (RFC 7231, whole seconds) of an API answer.

        A ``Date`` may come from a proxy's clock, so it never bounds the offset used to match
        tasks. It serves to estimate the skew of ``expire_in`` when nothing better is known,
        and to notice a clock step: the difference between the ``Date`` clock and the
        ``create_time`` clock is constant, so samples that contradict each other mean that one
        of them stepped, and the ``create_time`` samples are dropped until new ones come.
        """
        if not header:
            return
        try:
            stamp = parsedate_to_datetime(header).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return  # a header we cannot read says nothing
        if not math.isfinite(stamp):
            return
        low, high = stamp - answered, stamp + 1 - sent
        self._dates.append((low, high))
        task_low, task_high = self.offset()
        if not math.isfinite(task_low - task_high):
            return
        gap = (max(self._gap[0], low - task_high), min(self._gap[1], high - task_low))
        if gap[0] > gap[1]:
            self.steps += 1
            self._tasks.clear()
            self._gap = (-math.inf, math.inf)
        else:
            self._gap = gap

    def observe_task(self, create_time: int, sent: float, answered: float) -> None:
        """Learn from the ``create_time`` of a task whose create was sent and answered then."""
        self._tasks.append((create_time - answered, create_time + 1 - sent))

    def offset(self) -> tuple[float, float]:
        """``(low, high)`` bounds on the offset of the clock that writes ``create_time``.

        From the ``create_time`` of our own tasks once one has been read back. Until then (and
        after a step) from ``Date`` headers, widened by ``DATE_SLACK`` on each side: the header
        may be written by a proxy in front of the origin, from its own clock (a documented
        limit: a proxy clock further off than that shifts the window). Infinite when the
        server has said nothing.
        """
        if self._tasks:
            return _newest_consistent(self._tasks)
        low, high = _newest_consistent(self._dates)
        return low - DATE_SLACK, high + DATE_SLACK

    @property
    def bounded(self) -> bool:
        """True once the server has said what time it is (see :meth:`offset`)."""
        low, high = self.offset()
        return math.isfinite(low) and math.isfinite(high)

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
