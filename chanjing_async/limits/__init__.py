"""Rate limits: Rate, RateLimits, the RateLimiter protocol, sliding-window and token-bucket."""

from __future__ import annotations

from ._limits import LimiterKind as LimiterKind
from ._limits import Limiters as Limiters
from ._limits import Rate as Rate
from ._limits import RateLimiter as RateLimiter
from ._limits import RateLimits as RateLimits
from ._limits import SlidingWindowLimiter as SlidingWindowLimiter
from ._limits import Slot as Slot
from ._limits import TokenBucketLimiter as TokenBucketLimiter

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
