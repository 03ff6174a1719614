"""Access-token provider: cached token, early refresh, single-flight, one forced refresh.

Requesting a token invalidates the previous one, so two concurrent refreshes
would kill each other's tokens. Every refresh therefore runs under one lock, and a refresh
triggered by a refused token (10400) only happens if that token is still the current one: the
coroutines that saw the same stale token share one new token instead of each fetching their own.

Processes that share an app id must share the token the same way, or each would refresh the
others' token away: a :class:`TokenStore` (the Redis one comes with a Redis rate limiter) keeps
the current token where every process finds it, and lets one process at a time fetch a new one.

The token is a :class:`~pydantic.SecretStr` everywhere here (and in the transport): a frame an
error tracker records shows ``SecretStr('**********')``, never the token.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol

import anyio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from pydantic import SecretStr

    from ..models import AccessToken


class TokenStore(Protocol):
    """Where processes sharing an app id keep its current token."""

    async def share(
        self, issue: Callable[[], Awaitable[tuple[SecretStr, float]]], stale: SecretStr | None
    ) -> tuple[SecretStr, float]:
        """The token to use and its renewal time (Unix): the stored one if it is not ``stale``
        and not due, otherwise one from ``issue``, called by one process at a time."""


class TokenProvider:
    """Hands out the current access token, refreshing it early and one fetch at a time.

    Args:
        fetch: coroutine that requests a new token from the API.
        refresh_early: seconds before ``expire_in`` at which the token is renewed.
        clock: wall clock in Unix seconds (``expire_in`` is an absolute Unix time).
        store: shares the token with other processes of the same app id; None keeps it here.
        skew: seconds the server's clock is ahead of ``clock`` (``expire_in`` is read on the
            server's clock); 0 when unknown.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[AccessToken]],
        *,
        refresh_early: float,
        clock: Callable[[], float] = time.time,
        store: TokenStore | None = None,
        skew: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self._fetch = fetch
        self._skew = skew
        self._store = store
        self._refresh_early = refresh_early
        self._clock = clock
        self._lock = anyio.Lock()
        self._token: SecretStr | None = None
        self._refresh_at = 0.0
        self.refreshes = 0
        """How many tokens this provider has fetched (observable for tests and stats)."""

    def __repr__(self) -> str:
        state = "none" if self._token is None else f"refresh_at={self._refresh_at:.0f}"
        return f"<TokenProvider {state} refreshes={self.refreshes}>"

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._refresh_at

    async def token(self) -> SecretStr:
        """The current token, fetched (once, for all waiting coroutines) if missing or due."""
        if self._fresh():
            assert self._token is not None
            return self._token
        async with self._lock:
            # Another coroutine may have refreshed while we waited for the lock.
            if not self._fresh():
                await self._refresh(stale=None)
            assert self._token is not None
            return self._token

    async def invalidate(self, token: SecretStr) -> None:
        """``token`` was refused (10400): replace it, unless someone already did."""
        async with self._lock:
            if token == self._token:
                await self._refresh(stale=token)

    async def _refresh(self, *, stale: SecretStr | None) -> None:
        if self._store is None:
            self._token, self._refresh_at = await self._issue()
        else:
            self._token, self._refresh_at = await self._store.share(self._issue, stale)

    async def _issue(self) -> tuple[SecretStr, float]:
        """Fetch a new token; return it with the Unix time at which to renew it."""
        issued = await self._fetch()
        now = self._clock()
        expires = float(issued.expire_in) - self._skew()  # on our clock
        if expires < now:
            # Documented as an absolute Unix time; a value in the past can only
            # be a lifetime in seconds. Taken literally it would refresh on every call, and each
            # refresh invalidates the token other requests are using.
            expires += now
        # Renew `refresh_early` seconds ahead, but never later than half-way through a short
        # lifetime (a time-scaled emulator issues tokens that live for seconds).
        renew_at = expires - min(self._refresh_early, (expires - now) / 2)
        self.refreshes += 1
        return issued.access_token, renew_at
