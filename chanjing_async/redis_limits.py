"""Kept for imports written before the layout of subpackages: see :mod:`chanjing_async.scaleout`."""

from __future__ import annotations

from .scaleout import RedisRateLimiter as RedisRateLimiter
from .scaleout import RedisSlidingWindowLimiter as RedisSlidingWindowLimiter

__all__ = ["RedisRateLimiter", "RedisSlidingWindowLimiter"]
