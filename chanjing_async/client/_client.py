"""``AsyncChanjingClient``: the typed asyncio client of the Chanjing lip-sync Open API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import SecretStr

from .._checks import check_setting, check_type, conceal
from ..errors import AuthenticationError, ConfigurationError, InvalidRequestError
from ..limits import Limiters, RateLimits
from ..models import AccessToken
from . import _endpoints as ep
from ._attempts import CreateLedger
from ._auth import TokenProvider
from ._clock import ServerClock
from ._config import (
    TOKEN_REFRESH_EARLY,
    RetryPolicy,
    Timeouts,
    resolve_base_url,
    resolve_credentials,
)
from ._downloads import DownloadPolicy
from ._files import Files
from ._lip_sync import LipSync
from ._resources import Api, parse
from ._shared import SharedState, shared_kind, shared_state
from ._transport import Transport
from ._voices import Voices

if TYPE_CHECKING:
    from types import TracebackType

    import aiohttp

__all__ = ["AsyncChanjingClient"]

_State = Literal["unopened", "open", "closed"]


class AsyncChanjingClient:
    """Asyncio client of the Chanjing lip-sync Open API.

    Use it as an async context manager; it cannot be reopened once closed::

        async with AsyncChanjingClient() as client:       # CHANJING_APP_ID / _SECRET_KEY
            video = await client.files.upload("talk.mp4", service="lip_sync_video")
            task_id = await client.lip_sync.create(
                LipSyncRequest.tts(video.id, text="你好", audio_man_id="C-...")
            )
            task = await client.lip_sync.wait(task_id, timeout=1800)

    Every call respects the documented limits on its own (create 10 per 60 s, detail and list
    10 per second, the other endpoints 10 per second by default) through completion-anchored
    sliding-window limiters, so it is never answered 40001 by a server counting arrivals.

    Args:
        app_id: the app id; defaults to ``CHANJING_APP_ID``.
        secret_key: the secret key; defaults to ``CHANJING_SECRET_KEY``. Never logged or shown.
        base_url: defaults to ``CHANJING_BASE_URL``, then ``https://open-api.chanjing.cc``.
            A plain ``http://`` URL is refused unless its host is loopback (the emulator).
        allow_insecure_http: accept a plain ``http://`` base URL to a host that is not
            loopback (the secret key and tokens then cross the network in clear). None
            reads ``CHANJING_ALLOW_INSECURE_HTTP`` (``1`` allows).
        timeouts: per-request HTTP timeouts.
        retry: backoff for retryable calls (create is never retried blindly).
        limits: rate limits; ``RateLimits().scaled(k)`` for an emulator running k times faster.
        rate_limiter: share ``limits``, the access token and the create attempts with every
            process of the account through Redis: a Redis URL (a str or a SecretStr) or a
            :class:`~chanjing_async.RedisRateLimiter` (any ``_shared.SharedState``).
            None (the default) keeps them in this client.
        session: an aiohttp session to use; it stays open when the client closes.
        token_refresh_early: seconds before expiry at which the token is renewed (never
            later than half-way through the token's life).
        downloads: size cap, redirects and allowed targets of result downloads.

    Raises:
        ConfigurationError: missing credentials, an invalid base URL (or a plain http one
            to a host that is not loopback, unless allowed) or Redis URL, a Redis
            URL without redis-py installed, or a setting of the wrong type or out of range
            (``timeouts`` that is no :class:`Timeouts`, ``token_refresh_early=inf``, ...).
    """

    def __init__(
        self,
        app_id: str | None = None,
        secret_key: str | SecretStr | None = None,
        *,
        base_url: str | None = None,
        allow_insecure_http: bool | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        limits: RateLimits | None = None,
        rate_limiter: str | SecretStr | SharedState | None = None,
        session: aiohttp.ClientSession | None = None,
        token_refresh_early: float = TOKEN_REFRESH_EARLY,
        downloads: DownloadPolicy | None = None,
    ) -> None:
        # Hidden before anything can fail: a tracker records this frame's locals.
        secret, key_problem = conceal("secret_key", secret_key, SecretStr)
        hidden, url_problem = conceal("rate_limiter", rate_limiter, shared_kind())
        del secret_key, rate_limiter  # only the hidden forms stay in this frame
        if key_problem or url_problem:
            raise ConfigurationError(key_problem or url_problem)
        shared = shared_state(hidden)  # a URL becomes the registered backend (``_shared``)
        check_type("allow_insecure_http", allow_insecure_http, bool)
        check_setting("token_refresh_early", token_refresh_early, unit="seconds")
        check_type("timeouts", timeouts, Timeouts)
        check_type("retry", retry, RetryPolicy)
        check_type("limits", limits, RateLimits)
        check_type("downloads", downloads, DownloadPolicy)
        self.app_id, self._secret_key = resolve_credentials(app_id, secret)
        self.base_url = resolve_base_url(base_url, allow_insecure_http=allow_insecure_http)
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self.downloads = downloads or DownloadPolicy()
        self.limits = limits or RateLimits()
        self.rate_limiter = shared
        if self.rate_limiter is not None and self.limits.kind != "sliding":
            raise ConfigurationError(
                f"kind={self.limits.kind!r}: a Redis rate limiter keeps the sliding-window log;"
                " use RateLimits(kind='sliding') with it"
            )
        self._session = session
        self._token_refresh_early = token_refresh_early
        self._state: _State = "unopened"
        self._api: Api | None = None
        self.files = Files(self._require_api)
        self._server_clock = ServerClock()
        self.lip_sync = LipSync(
            self._require_api,
            CreateLedger(
                self._server_clock,
                horizon=self.timeouts.create_horizon,
                flight=self.timeouts.total,
            ),
        )
        self.voices = Voices(self._require_api)

    def __repr__(self) -> str:
        return (
            f"<AsyncChanjingClient app_id={self.app_id!r} base_url={self.base_url!r} {self._state}>"
        )

    @property
    def limiters(self) -> Limiters:
        """The live limiters (create, read, other) of an open client."""
        return self._require_api().transport.limiters

    @property
    def token_refreshes(self) -> int:
        """How many access tokens this client has requested."""
        return self._require_api().auth.refreshes

    def _require_api(self) -> Api:
        if self._api is None:
            state = "closed" if self._state == "closed" else "not open yet"
            raise RuntimeError(f"AsyncChanjingClient is {state}: use 'async with client:'")
        return self._api

    async def __aenter__(self) -> AsyncChanjingClient:
        if self._state != "unopened":
            raise RuntimeError(f"AsyncChanjingClient cannot be reopened (it is {self._state})")
        # The session and the limiters bind to the running loop: create them here, not in
        # __init__.
        limiters = (
            self.limits.build()
            if self.rate_limiter is None
            else await self.rate_limiter.open(self.limits, self.app_id)
        )
        transport = Transport(
            self.base_url,
            timeouts=self.timeouts,
            retry=self.retry,
            limiters=limiters,
            session=self._session,
            server_clock=self._server_clock,
        )
        store = None if self.rate_limiter is None else self.rate_limiter.token_store(self.app_id)
        if self.rate_limiter is not None:
            # Processes sharing the limits share their creates too: none adopts another's.
            self.lip_sync.ledger.store = self.rate_limiter.attempt_store(self.app_id)
        self._api = Api(
            transport,
            TokenProvider(
                self._fetch_token,
                refresh_early=self._token_refresh_early,
                store=store,
                skew=self._server_clock.skew,
            ),
            self.downloads.for_base_url(self.base_url),
        )
        self._state = "open"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client (idempotent); a caller-supplied session is left open."""
        api, self._api = self._api, None
        self._state = "closed"
        if api is not None:
            await api.transport.close()
            if self.rate_limiter is not None:
                await self.rate_limiter.aclose()

    async def _fetch_token(self) -> AccessToken:
        """A new token. The secret key stays a SecretStr here: the transport reveals it only
        while encoding the body (see ``_transport``)."""
        body = {"app_id": self.app_id, "secret_key": self._secret_key}
        try:
            return parse(
                ep.ACCESS_TOKEN,
                AccessToken,
                await self._require_api().transport.call(ep.ACCESS_TOKEN, json=body),
            )
        except InvalidRequestError as exc:
            # The token call answers 400/40000 when the credentials are wrong.
            refused = AuthenticationError(
                exc.code,
                f"credentials refused: {exc.msg}",
                trace_id=exc.trace_id,
                endpoint=exc.endpoint,
            )
        raise refused  # after the except block: nothing chained
