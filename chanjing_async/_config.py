"""Defaults in one place, the one check every numeric setting goes through, and the
credential / base-URL resolution from the environment."""

from __future__ import annotations

import ipaddress
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict, TypeVar
from urllib.parse import urlsplit

from pydantic import SecretStr

from .errors import ConfigurationError

if TYPE_CHECKING:
    from typing_extensions import Unpack

DEFAULT_BASE_URL = "https://open-api.chanjing.cc"
ENV_APP_ID = "CHANJING_APP_ID"
ENV_SECRET_KEY = "CHANJING_SECRET_KEY"
ENV_BASE_URL = "CHANJING_BASE_URL"
ENV_ALLOW_INSECURE_HTTP = "CHANJING_ALLOW_INSECURE_HTTP"
_TRUE = ("1", "true", "yes", "on")

TOKEN_REFRESH_EARLY = 300.0
"""Seconds before ``expire_in`` at which a token is renewed (the vendor clients use 300 s)."""


class NumberRule(TypedDict, total=False):
    """What a number must be (every key optional).

    Attributes:
        integer: an ``int`` (default: an ``int`` or a finite ``float``).
        minimum: the lowest value allowed (default 0).
        above: greater than ``minimum``, not equal to it (default False).
        maximum: the highest value allowed (default: none).
        unit: a word for the message, e.g. ``"seconds"``.
    """

    integer: bool
    minimum: float
    above: bool
    maximum: float | None
    unit: str


def check_setting(field: str, value: object, **rule: Unpack[NumberRule]) -> None:
    """Refuse a numeric setting that is not what it must be, naming it, its value and the rule.

    Every numeric setting is checked here when it is made, so that a bad one fails at once
    rather than as a TypeError, an OverflowError or a hang on first use.

    Args:
        field: the name shown, e.g. ``Timeouts.total``.
        value: the value given.
        rule: what is allowed (:class:`NumberRule`); by default a finite number >= 0.

    Raises:
        ConfigurationError: e.g. ``Timeouts.total='5': must be a finite number of seconds > 0``.
    """
    problem = number_problem(value, **rule)
    if problem is not None:
        raise ConfigurationError(f"{field}={value!r}: {problem}")


_K = TypeVar("_K")


def conceal(field: str, value: object, kind: type[_K]) -> tuple[SecretStr | _K | None, str | None]:
    """A secret setting hidden at once, and what is wrong with it (None: nothing).

    A str becomes a SecretStr; a SecretStr, a ``kind`` or None stays. Anything else is
    refused by a message naming its type only (a bytes secret or a RedisDsn is still a
    secret), and comes back as None: the caller rebinds its local to the first element before
    it raises, so no frame an error tracker records holds the value.
    """
    if value is None or isinstance(value, (SecretStr, kind)):
        return value, None
    if isinstance(value, str):
        return SecretStr(value), None
    allowed = " or ".join(dict.fromkeys(("str", "SecretStr", kind.__name__)))
    return None, f"{field}: must be a {allowed}, or None, not {type(value).__name__}"


def check_type(field: str, value: object, *kinds: type, optional: bool = True) -> None:
    """Refuse a setting that is none of ``kinds`` (nor None, when ``optional``).

    Raises:
        ConfigurationError: e.g. ``timeouts={'total': 5}: must be a Timeouts, or None``.
    """
    if (value is None and optional) or isinstance(value, kinds):
        return
    allowed = " or ".join(kind.__name__ for kind in kinds)
    raise ConfigurationError(f"{field}={value!r}: must be a {allowed}{', or None' * optional}")


def number_problem(value: object, **rule: Unpack[NumberRule]) -> str | None:
    """What is wrong with a number given as a setting or an argument (None if nothing).

    ``True`` is no number here (``bool`` is an ``int`` subclass, but ``max_retries=True`` is a
    mistake, not 1), nor is a string, NaN or an infinity.

    Returns:
        None, or the rule broken: ``"must be a finite number of seconds > 0"``.
    """
    integer = rule.get("integer", False)
    minimum = rule.get("minimum", 0)
    above = rule.get("above", False)
    maximum = rule.get("maximum")
    unit = rule.get("unit", "")
    if not isinstance(value, bool) and isinstance(value, int if integer else (int, float)):
        if (
            (isinstance(value, int) or math.isfinite(value))  # isfinite(10**400) overflows
            and (value > minimum if above else value >= minimum)
            and (maximum is None or value <= maximum)
        ):
            return None
    kind = "an integer" if integer else "a finite number"
    allowed = f"must be {kind}{f' of {unit}' if unit else ''} {'>' if above else '>='} {minimum:g}"
    return allowed if maximum is None else f"{allowed} and <= {maximum:g}"


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
