"""Access-token provider: cached token, early refresh, single-flight, one forced refresh.

Requesting a token invalidates the previous one (reference §3.1), so two concurrent refreshes
would kill each other's tokens. Every refresh therefore runs under one lock, and a refresh
triggered by a refused token (10400) only happens if that token is still the current one: the
coroutines that saw the same stale token share one new token instead of each fetching their own.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .models import AccessToken


class TokenProvider:
    """Hands out the current access token, refreshing it early and one fetch at a time.

    Args:
        fetch: coroutine that requests a new token from the API.
        refresh_early: seconds before ``expire_in`` at which the token is renewed.
        clock: wall clock in Unix seconds (``expire_in`` is an absolute Unix time).
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[AccessToken]],
        *,
        refresh_early: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetch = fetch
        self._refresh_early = refresh_early
        self._clock = clock
        self._lock = anyio.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self.refreshes = 0
        """How many tokens this provider has fetched (observable for tests and stats)."""

    def __repr__(self) -> str:
        state = "none" if self._token is None else f"refresh_at={self._refresh_at:.0f}"
        return f"<TokenProvider {state} refreshes={self.refreshes}>"

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._refresh_at

    async def token(self) -> str:
        """The current token, fetched (once, for all waiting coroutines) if missing or due."""
        if self._fresh():
            assert self._token is not None
            return self._token
        async with self._lock:
            # Another coroutine may have refreshed while we waited for the lock.
            if not self._fresh():
                await self._refresh()
            assert self._token is not None
            return self._token

    async def invalidate(self, token: str) -> None:
        """``token`` was refused (10400): replace it, unless someone already did."""
        async with self._lock:
            if token == self._token:
                await self._refresh()

    async def _refresh(self) -> None:
        issued = await self._fetch()
        now = self._clock()
        self._token = issued.access_token.get_secret_value()
        expires = float(issued.expire_in)
        if expires < now:
            # Documented as an absolute Unix time (reference §3.1); a value in the past can only
            # be a lifetime in seconds. Taken literally it would refresh on every call, and each
            # refresh invalidates the token other requests are using.
            expires += now
        # Renew `refresh_early` seconds ahead, but never later than half-way through a short
        # lifetime (a time-scaled emulator issues tokens that live for seconds).
        lifetime = expires - now
        self._refresh_at = expires - min(self._refresh_early, lifetime / 2)
        self.refreshes += 1
