"""Scaling out through Redis: shared limits, the shared access token, the callback relay.

Importing this package registers its Redis implementations with the layers that define them:
the client's shared state (``rate_limiter="redis://..."``) and the callback receiver's relay
(``relay="redis://..."``). The lower layers never import this one; the package root imports
it, so a Redis URL works wherever the SDK is imported.
"""

from __future__ import annotations

from ..callbacks import RelayBackend, register_relay
from ..client import SharedBackend, register_backend
from ._limits import RedisRateLimiter as RedisRateLimiter
from ._redis import check_url
from ._relay import Relay
from ._window import RedisSlidingWindowLimiter as RedisSlidingWindowLimiter

__all__ = ["RedisRateLimiter", "RedisSlidingWindowLimiter"]

register_backend(SharedBackend(RedisRateLimiter, RedisRateLimiter))
register_relay(RelayBackend(lambda url, field: check_url(url, field=field), Relay))
