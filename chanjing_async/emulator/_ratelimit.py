"""Per-endpoint arrival logs and the server-side window limits that answer 40001."""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from .settings import RateWindow

# Arrivals kept per endpoint for inspection; enough for any test or benchmark, bounded so a
# long-running demo emulator does not grow without limit.
ARRIVAL_LOG_SIZE = 100_000


class Arrival(NamedTuple):
    """One request as the limiter saw it.

    Attributes:
        at: ``time.monotonic()`` of the arrival (after any injected latency, which models time
            in flight; for a ``gateway_late`` request, when the origin handles it).
        accepted: False when the request was rejected with 40001.
    """

    at: float
    accepted: bool


class WindowLimiter:
    """At most ``limit`` counted arrivals per window, by an exact sliding log or fixed buckets.

    The docs give only "RPM 10/min" and "QPS 10/s"; window type and whether a rejected call
    counts are not documented, so both are settings. A sliding window rejects when ``limit``
    counted arrivals lie in ``(now - window, now]``. Fixed windows are ``floor(now / window)``
    buckets of the monotonic clock, whose phase is arbitrary, as the live server's phase is
    unknown to a client.
    """

    def __init__(
        self, limit: int, window: float, *, mode: RateWindow, count_rejected: bool
    ) -> None:
        """Create a limiter.

        Args:
            limit: Arrivals admitted per window.
            window: Window length in emulator seconds (already divided by the time scale).
            mode: ``"sliding"`` or ``"fixed"``.
            count_rejected: Whether rejected arrivals use up the window too.
        """
        self.limit = limit
        self.window = window
        self.mode = mode
        self.count_rejected = count_rejected
        # Sliding: the latest `limit` counted arrival times are all the rule needs.
        self._recent: deque[float] = deque(maxlen=limit)
        self._bucket = -1
        self._bucket_count = 0

    def admit(self, now: float) -> bool:
        """Decide whether an arrival at ``now`` is within the limit, and count it.

        Args:
            now: Monotonic arrival time.

        Returns:
            True when admitted, False when it must be answered with 40001.
        """
        if self.mode == "sliding":
            admitted = len(self._recent) < self.limit or self._recent[0] <= now - self.window
            if admitted or self.count_rejected:
                self._recent.append(now)
            return admitted
        bucket = math.floor(now / self.window)
        if bucket != self._bucket:
            self._bucket, self._bucket_count = bucket, 0
        admitted = self._bucket_count < self.limit
        if admitted or self.count_rejected:
            self._bucket_count += 1
        return admitted


class ArrivalLog:
    """Arrivals at one endpoint, with the limiter deciding them when the endpoint has one."""

    def __init__(self, limiter: WindowLimiter | None) -> None:
        """Create an empty log.

        Args:
            limiter: The endpoint's limit, or None for an endpoint without a documented limit.
        """
        self.limiter = limiter
        self.arrivals: deque[Arrival] = deque(maxlen=ARRIVAL_LOG_SIZE)

    def record(self, now: float) -> bool:
        """Log an arrival at ``now`` and return whether it is admitted."""
        accepted = self.limiter is None or self.limiter.admit(now)
        self.arrivals.append(Arrival(now, accepted))
        return accepted
