"""The access token of an app id, shared by its processes through Redis.

A new token invalidates the previous one, so processes sharing an app id must
not each fetch their own: they would refresh each other's token away in a loop. The current
token and its renewal time live under ``{<prefix>:<app id>}:token``; a process that finds it
missing, due or refused takes the lock ``{...}:token:lock`` (``SET NX PX``), looks again, and
only then fetches one. The others wait for it and read the new token.

The token is stored in Redis in the clear (it must be usable by every process): protect that
Redis as you would the token, with a password or TLS (``rediss://``). The secret key is never
stored. While Redis is unreachable, callers wait, as the shared limiter's admissions do.

The token stays a :class:`~pydantic.SecretStr` in every frame here: the stored JSON is built
and read in the call expression (:func:`_encode`, :func:`_decode`), never held as a local.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from typing import TYPE_CHECKING

import anyio
from pydantic import SecretStr

from ._redis import Outages, redis_call, redis_errors

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from redis.asyncio import Redis

__all__ = ["RedisTokenStore"]


# Longer than any token request with its retries; a holder that died frees it after this.
LOCK_SECONDS = 60.0
POLL_SECONDS = 0.05

# Deletes the lock only if this process still holds it.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisTokenStore:
    """A :class:`~chanjing_async._auth.TokenStore` in Redis (made by ``RedisRateLimiter``).

    Args:
        redis: a redis-py asyncio client.
        key: the token's key (the lock is ``<key>:lock``).
    """

    def __init__(self, redis: Redis, key: str) -> None:
        self._redis = redis
        self._key = key
        self._lock_key = f"{key}:lock"
        self._owner = secrets.token_hex(8)
        self._unlock = redis.register_script(_UNLOCK)
        self._errors = redis_errors()
        self._outages = Outages("access token")

    def __repr__(self) -> str:
        return f"<RedisTokenStore key={self._key!r}>"

    async def share(
        self, issue: Callable[[], Awaitable[tuple[SecretStr, float]]], stale: SecretStr | None
    ) -> tuple[SecretStr, float]:
        """The stored token unless it is ``stale`` or due; else one from ``issue``, stored."""
        while True:
            try:
                found = await self._usable(stale)
                if found is not None:
                    return found
                if await redis_call(
                    self._redis.set(
                        self._lock_key, self._owner, nx=True, px=int(LOCK_SECONDS * 1000)
                    )
                ):
                    return await self._issue_locked(issue, stale)
            except self._outages.catch as exc:
                self._outages.failed(exc)
            else:
                self._outages.ok()
            await anyio.sleep(POLL_SECONDS)  # another process is fetching, or Redis is down

    async def _issue_locked(
        self, issue: Callable[[], Awaitable[tuple[SecretStr, float]]], stale: SecretStr | None
    ) -> tuple[SecretStr, float]:
        try:
            found = await self._usable(stale)  # fetched by another process meanwhile?
            if found is not None:
                return found
            token, renew_at = await issue()
            expires = max(int(renew_at), int(time.time())) + 1
            # If Redis fails now the token is still good here; the others fetch their own
            # and a 10400 brings everyone back to the stored one.
            with contextlib.suppress(*self._errors):
                await redis_call(self._redis.set(self._key, _encode(token, renew_at), exat=expires))
            return token, renew_at
        finally:
            # The lock expires on its own if Redis cannot take the release.
            with anyio.CancelScope(shield=True), contextlib.suppress(*self._errors):
                await redis_call(self._unlock(keys=[self._lock_key], args=[self._owner]))

    async def _usable(self, stale: SecretStr | None) -> tuple[SecretStr, float] | None:
        found = _decode(await redis_call(self._redis.get(self._key)))
        if found is None or found[0] == stale or time.time() >= found[1]:
            return None
        return found


def _encode(token: SecretStr, renew_at: float) -> str:
    """The stored form of a token and its renewal time."""
    return json.dumps({"token": token.get_secret_value(), "renew_at": renew_at})


def _decode(raw: bytes | str | None) -> tuple[SecretStr, float] | None:
    """The token and renewal time stored in ``raw``; None if missing, not ours or damaged."""
    if raw is None:
        return None
    try:
        stored = json.loads(raw)
        return SecretStr(str(stored["token"])), float(stored["renew_at"])
    except (ValueError, TypeError, KeyError):
        return None  # not ours or damaged: fetch a new one
