"""Rate limits: Rate, RateLimits, the RateLimiter protocol, sliding-window and token-bucket.

The limiters know nothing of HTTP: a caller takes a :class:`Slot` before it sends and leaves
it when it stops waiting for the answer. :class:`LimiterBase` is the base of limiters kept
elsewhere (the Redis one in :mod:`chanjing_async.scaleout`).
"""

from __future__ import annotations

from ._base import LimiterBase as LimiterBase
from ._base import RateLimiter as RateLimiter
from ._base import Slot as Slot
from ._limits import LimiterKind as LimiterKind
from ._limits import Limiters as Limiters
from ._limits import Rate as Rate
from ._limits import RateLimits as RateLimits
from ._sliding import SlidingWindowLimiter as SlidingWindowLimiter
from ._token_bucket import TokenBucketLimiter as TokenBucketLimiter

__all__ = [
    "LimiterBase",
    "LimiterKind",
    "Limiters",
    "Rate",
    "RateLimiter",
    "RateLimits",
    "SlidingWindowLimiter",
    "Slot",
    "TokenBucketLimiter",
]
