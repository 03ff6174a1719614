"""Defaults in one place, and the credential / base-URL resolution from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import ConfigurationError

DEFAULT_BASE_URL = "https://open-api.chanjing.cc"
ENV_APP_ID = "CHANJING_APP_ID"
ENV_SECRET_KEY = "CHANJING_SECRET_KEY"
ENV_BASE_URL = "CHANJING_BASE_URL"

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
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0 and value != float("inf")):
                raise ConfigurationError(f"Timeouts.{name}={value!r}: must be > 0 seconds")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter for retryable calls (never a blind create retry).

    Attributes:
        max_retries: retries after the first attempt (0 disables retrying).
        initial: delay before the first retry, seconds.
        maximum: cap of one delay, seconds.
    """

    max_retries: int = 2
    initial: float = 0.5
    maximum: float = 8.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ConfigurationError(f"RetryPolicy.max_retries={self.max_retries}: must be >= 0")
        if not 0 < self.initial <= self.maximum:
            raise ConfigurationError(
                f"RetryPolicy.initial={self.initial}, maximum={self.maximum}: "
                "must satisfy 0 < initial <= maximum"
            )

    def delay(self, attempt: int, draw: float) -> float:
        """Delay before retry number ``attempt`` (1-based), given a uniform draw in [0, 1)."""
        ceiling = min(self.maximum, self.initial * 2.0 ** (attempt - 1))
        # Half fixed, half jittered: spreads retries out yet never retries at once.
        return ceiling / 2 + ceiling / 2 * draw


def resolve_credentials(app_id: str | None, secret_key: str | None) -> tuple[str, str]:
    """Explicit values first, then ``CHANJING_APP_ID`` / ``CHANJING_SECRET_KEY``."""
    app_id = app_id or os.environ.get(ENV_APP_ID) or ""
    secret_key = secret_key or os.environ.get(ENV_SECRET_KEY) or ""
    missing = [
        name
        for name, value in (
            (f"app_id ({ENV_APP_ID})", app_id),
            (f"secret_key ({ENV_SECRET_KEY})", secret_key),
        )
        if not value
    ]
    if missing:
        raise ConfigurationError(
            f"missing credentials: {', '.join(missing)}; pass them to the client "
            "or set the environment variables"
        )
    return app_id, secret_key


def resolve_base_url(base_url: str | None) -> str:
    """Explicit value first, then ``CHANJING_BASE_URL``, then the public API."""
    url = (base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"base_url={url!r}: must be an http:// or https:// URL")
    return url
