"""One setting that shares a client's rate limits, token and creates through Redis."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pydantic import SecretStr

from .._checks import check_setting, conceal
from ..errors import ConfigurationError
from ..limits import Limiters, RateLimits
from ._attempts import RedisAttemptStore
from ._redis import check_url, connect, ping, redacted, redis_call, redis_errors
from ._tokens import RedisTokenStore
from ._window import DEFAULT_LEASE, RedisSlidingWindowLimiter

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from ..limits import Rate

__all__ = ["RedisRateLimiter"]

logger = logging.getLogger("chanjing_async")


class RedisRateLimiter:
    """One setting that shares a client's rate limits with every process of the account.

    Pass it (or just its URL) to the client; each endpoint group (create, read, other) then
    gets a :class:`RedisSlidingWindowLimiter` with the client's :class:`RateLimits`, under the
    keys ``{<prefix>:<app id>:<group>}:log`` and ``:meta``. The access token is shared under
    ``{<prefix>:<app id>}:token`` (see :meth:`token_store`)::

        AsyncChanjingClient(rate_limiter="redis://redis.internal:6379/0")
        AsyncChanjingClient(rate_limiter=RedisRateLimiter(redis=my_redis, lease=15))

    Args:
        url: a ``redis://``, ``rediss://`` or ``unix://`` URL (a str or a SecretStr); the
            connection is opened with the client and closed with it. A password in it is
            never shown, and the URL is kept as a SecretStr from the first line on, so no
            frame an error tracker records holds it.
        redis: an existing redis-py asyncio client instead of ``url``; left open.
        prefix: first part of every key, to keep apart accounts or environments.
        lease: seconds a reservation counts as in flight without a heartbeat from its holder:
            the longest a crashed process can hold a slot. Renewed every ``lease / 4``.

    Raises:
        ConfigurationError: not exactly one of ``url`` and ``redis``, a bad URL, lease or
            prefix, or redis-py is not installed.
    """

    def __init__(
        self,
        url: str | SecretStr | None = None,
        *,
        redis: Redis | None = None,
        prefix: str = "chanjing",
        lease: float = DEFAULT_LEASE,
    ) -> None:
        url, problem = conceal("rate_limiter", url, SecretStr)  # hidden before anything fails
        if problem is not None:
            raise ConfigurationError(problem)
        if (url is None) == (redis is None):
            raise ConfigurationError("RedisRateLimiter: give exactly one of url and redis")
        if url is not None:
            check_url(url, field="rate_limiter")
            redis_errors()  # redis-py missing: say so now, not when the client opens
        if type(prefix) is not str or not prefix or "{" in prefix or "}" in prefix:
            raise ConfigurationError(
                f"prefix={prefix!r}: must be a non-empty string without braces"
            )
        check_setting("lease", lease, above=True)
        self._url = url
        self._given = redis
        self._redis: Redis | None = None
        self._prefix = prefix
        self._lease = float(lease)
        self._limiters: list[RedisSlidingWindowLimiter] = []

    def __repr__(self) -> str:
        return f"<RedisRateLimiter {self._where()} prefix={self._prefix!r} lease={self._lease}>"

    def _where(self) -> str:
        return redacted(self._url) if self._url is not None else "a given client"

    @property
    def lease(self) -> float:
        """Seconds a reservation counts as in flight without a heartbeat."""
        return self._lease

    async def open(self, limits: RateLimits, app_id: str) -> Limiters:
        """Limiters for ``app_id`` with ``limits``' rates, all kept in Redis.

        ``limits.kind`` is not looked at: the log is always a sliding window.

        Raises:
            ConfigurationError: Redis does not answer PING (unreachable, wrong password).
            RuntimeError: already open (one client at a time per instance).
        """
        if self._limiters:
            raise RuntimeError("this RedisRateLimiter is already in use by an open client")
        redis, where = self._given, self._where()
        if redis is None:
            assert self._url is not None
            redis = connect(self._url)
        try:
            await ping(redis, where, field="rate_limiter")
        except ConfigurationError:
            if self._given is None:
                await redis_call(redis.aclose())
            raise
        self._redis = redis

        def make(group: str, rate: Rate) -> RedisSlidingWindowLimiter:
            limiter = RedisSlidingWindowLimiter(
                redis,
                f"{self._prefix}:{app_id}:{group}",
                rate.limit,
                rate.window,
                margin=rate.margin,
                lease=self._lease,
                name=group,
            )
            self._limiters.append(limiter)
            return limiter

        return Limiters(
            create=make("create", limits.create),
            read=make("read", limits.read),
            other=make("other", limits.other),
        )

    def token_store(self, app_id: str) -> RedisTokenStore:
        """Where the processes of ``app_id`` share its access token (after :meth:`open`).

        A new token invalidates the previous one, so processes that share the limits of an
        app id must share its token too, or they refresh each other's token away.
        """
        if self._redis is None:
            raise RuntimeError("RedisRateLimiter.token_store() needs open() first")
        return RedisTokenStore(self._redis, f"{{{self._prefix}:{app_id}}}:token")

    def attempt_store(self, app_id: str) -> RedisAttemptStore:
        """Where the processes of ``app_id`` share their create attempts (after :meth:`open`).

        So that a task one process created is never adopted by another's job, and a create of
        one counts as a rival when another explains a task by its time.
        """
        if self._redis is None:
            raise RuntimeError("RedisRateLimiter.attempt_store() needs open() first")
        return RedisAttemptStore(self._redis, f"{{{self._prefix}:{app_id}}}")

    async def aclose(self) -> None:
        """Stop the heartbeats, write what is pending, close a connection we opened.

        Never raises for Redis refusing the pending writes (full, a key of the wrong type):
        closing goes on, with one WARNING; the leases of what was not written lapse by
        themselves.
        """
        limiters, self._limiters = self._limiters, []
        refused_by: list[str] = []
        for limiter in limiters:
            try:
                await limiter.aclose()
            except ConfigurationError as exc:  # its message names the refusal, no secret
                refused_by.append(f"{limiter._name}: {exc}")
        if refused_by:
            logger.warning("rate limiter closed without its pending writes (%s)", refused_by)
        redis, self._redis = self._redis, None
        if redis is not None and self._given is None:
            await redis_call(redis.aclose())
