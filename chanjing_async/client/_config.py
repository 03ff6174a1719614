"""Defaults in one place, the timeouts and retry policy, and the credential / base-URL
resolution from the environment."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import SecretStr

from .._checks import check_setting
from ..errors import ConfigurationError

DEFAULT_BASE_URL = "https://open-api.chanjing.cc"
ENV_APP_ID = "CHANJING_APP_ID"
ENV_SECRET_KEY = "CHANJING_SECRET_KEY"
ENV_BASE_URL = "CHANJING_BASE_URL"
ENV_ALLOW_INSECURE_HTTP = "CHANJING_ALLOW_INSECURE_HTTP"
_TRUE = ("1", "true", "yes", "on")

TOKEN_REFRESH_EARLY = 300.0
"""Seconds before ``expire_in`` at which a token is renewed (the vendor clients use 300 s)."""


@dataclass(frozen=True)
class Timeouts:
    """Per-request HTTP timeouts in seconds (never a job deadline).

    Attributes:
        total: whole request, connection to last byte.
        connect: establishing the connection (a failure here means nothing was sent).
        upload: whole PUT of a file to its signed URL (files can be large).
        create_horizon: the **processing horizon**: seconds after its send during which the
            server may still handle a create whose answer was lost (a timeout, a dropped
            connection, a gateway page). Gateways let the origin go on after they gave up:
            Cloudflare waits 100 s for an origin before answering 524, and the origin may go on
            after that. Until the horizon an unknown create keeps its limiter slot and its job
            is not sent again; a task appearing later still is reported as a possible
            duplicate, never adopted. 300 s is three CDN origin timeouts. Scale it with the
            time scale like every other duration when testing against the emulator.
    """

    total: float = 30.0
    connect: float = 5.0
    upload: float = 600.0
    create_horizon: float = 300.0

    def __post_init__(self) -> None:
        for name in ("total", "connect", "upload", "create_horizon"):
            check_setting(f"Timeouts.{name}", getattr(self, name), above=True, unit="seconds")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter for retryable calls (never a blind create retry).

    Attributes:
        max_retries: retries after the first attempt (0 disables retrying).
        initial: delay before the first retry, seconds.
        maximum: cap of one delay, seconds (at least ``initial``).

    Raises:
        ConfigurationError: a value that is not a finite number in range (or not an integer).
    """

    max_retries: int = 2
    initial: float = 0.5
    maximum: float = 8.0

    def __post_init__(self) -> None:
        check_setting("RetryPolicy.max_retries", self.max_retries, integer=True)
        check_setting("RetryPolicy.initial", self.initial, above=True, unit="seconds")
        check_setting("RetryPolicy.maximum", self.maximum, minimum=self.initial, unit="seconds")

    def delay(self, attempt: int, draw: float) -> float:
        """Delay before retry number ``attempt`` (1-based), given a uniform draw in [0, 1)."""
        # 2.0 ** 1024 overflows; long before that the delay has reached ``maximum``.
        ceiling = min(self.maximum, self.initial * 2.0 ** min(attempt - 1, 1023))
        # Half fixed, half jittered: spreads retries out yet never retries at once.
        return ceiling / 2 + ceiling / 2 * draw


def resolve_credentials(app_id: str | None, secret_key: SecretStr | None) -> tuple[str, SecretStr]:
    """Explicit values first, then ``CHANJING_APP_ID`` / ``CHANJING_SECRET_KEY``.

    The secret key comes and goes as a SecretStr: no frame of a traceback holds it plain.
    """
    app_id = app_id or os.environ.get(ENV_APP_ID) or ""
    if not (secret_key and secret_key.get_secret_value()):
        secret_key = SecretStr(os.environ.get(ENV_SECRET_KEY, ""))
    missing = [
        name
        for name, value in (
            (f"app_id ({ENV_APP_ID})", app_id),
            (f"secret_key ({ENV_SECRET_KEY})", secret_key.get_secret_value()),
        )
        if not value
    ]
    if missing:
        raise ConfigurationError(
            f"missing credentials: {', '.join(missing)}; pass them to the client "
            "or set the environment variables"
        )
    return app_id, secret_key


def resolve_base_url(base_url: str | None, *, allow_insecure_http: bool | None = None) -> str:
    """Explicit value first, then ``CHANJING_BASE_URL``, then the public API.

    A plain ``http://`` URL would carry the secret key and every token in clear: it is refused
    unless its host is loopback (``localhost``, ``127.0.0.0/8``, ``::1``: the emulator) or
    ``allow_insecure_http`` is True (None: ``CHANJING_ALLOW_INSECURE_HTTP=1`` in the
    environment), e.g. for a TLS-terminating sidecar on a private network.

    Raises:
        ConfigurationError: not an http(s) URL, or plain http to a host that is not loopback.
    """
    url = (base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL).rstrip("/")
    try:
        parts = urlsplit(url)
        problem = "names no host" if not parts.hostname else None
        problem = "port 0 is no port to connect to" if parts.port == 0 else problem
    except ValueError as exc:  # '[::1' without its bracket, a port out of range or no number
        parts, problem = None, str(exc).lower()
    if parts is None or parts.scheme not in ("http", "https") or problem is not None:
        why = f" ({problem})" if problem else ""
        raise ConfigurationError(f"base_url={url!r}: must be an http:// or https:// URL{why}")
    if allow_insecure_http is None:
        allow_insecure_http = os.environ.get(ENV_ALLOW_INSECURE_HTTP, "").lower() in _TRUE
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback(parts.hostname):
        raise ConfigurationError(
            f"base_url={url!r}: plain http:// would send the secret key and the access token "
            "in clear to a host that is not loopback; use https://, or pass "
            f"allow_insecure_http=True (or set {ENV_ALLOW_INSECURE_HTTP}=1) if the network "
            "in between is yours"
        )
    return url


def is_loopback(host: str | None) -> bool:
    """``localhost``, or an address in ``127.0.0.0/8`` or ``::1`` (never resolved by DNS)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
