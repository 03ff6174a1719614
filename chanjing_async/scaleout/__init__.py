"""Scaling out through Redis: shared limits, the shared access token, the callback relay."""

from __future__ import annotations

from ._limits import RedisRateLimiter as RedisRateLimiter
from ._limits import RedisSlidingWindowLimiter as RedisSlidingWindowLimiter

__all__ = ["RedisRateLimiter", "RedisSlidingWindowLimiter"]
