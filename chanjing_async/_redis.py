"""Connecting to Redis (the optional ``redis`` extra), shared by the limiter and the relay.

redis-py is imported only when a Redis URL is actually used, so the SDK works without it. A
URL may carry a password: it is never logged or shown, only :func:`redacted` forms are.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .errors import ConfigurationError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["check_url", "connect", "ping", "redacted", "redis_errors"]

_SCHEMES = ("redis", "rediss", "unix")

# Seconds: a Redis that does not answer is treated as down rather than waited on.
SOCKET_TIMEOUT = 5.0


def check_url(url: object, *, field: str) -> str:
    """Return ``url`` if it is a Redis URL; raise ConfigurationError naming ``field`` if not."""
    if not isinstance(url, str):
        raise ConfigurationError(
            f"{field}={url!r}: must be a Redis URL such as redis://host:6379/0"
        )
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES or not (parts.netloc or parts.path):
        raise ConfigurationError(
            f"{field}={redacted(url)!r}: must be a redis://, rediss:// or unix:// URL"
        )
    return url


def redacted(url: str) -> str:
    """``url`` without its user and password (for reprs, logs and errors)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()


def _module() -> object:
    try:
        return importlib.import_module("redis.asyncio")
    except ImportError:
        raise ConfigurationError(
            "a Redis URL needs redis-py: pip install 'chanjing-async[redis]'"
        ) from None


def connect(url: str) -> Redis:
    """A redis-py asyncio client for ``url`` (connects lazily, on its first command).

    Raises:
        ConfigurationError: redis-py is not installed, or redis-py refuses the URL.
    """
    module = _module()
    try:
        client: Redis = module.Redis.from_url(  # type: ignore[attr-defined]
            url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT
        )
    except ValueError as exc:
        raise ConfigurationError(f"redis url {redacted(url)!r}: {exc}") from None
    return client


def redis_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "Redis is unreachable or failing": wait and try again.

    Every redis-py error counts, refusals included: a replica answering READONLY during a
    failover, or a password changed mid-run, heals without us, and waiting loses no job. A
    Redis that refuses from the start is caught by :func:`ping` when the client opens.
    """
    _module()
    from redis.exceptions import RedisError

    return (RedisError, OSError)


async def ping(redis: Redis, url: str, *, field: str) -> None:
    """Check that Redis answers, so a wrong URL or password fails at once, not as a stall.

    Raises:
        ConfigurationError: Redis is unreachable or refuses us (names ``field``, never a
            password).
    """
    try:
        await redis.ping()
    except redis_errors() as exc:
        raise ConfigurationError(
            f"{field}={redacted(url)!r}: Redis did not answer PING ({type(exc).__name__})"
        ) from None
