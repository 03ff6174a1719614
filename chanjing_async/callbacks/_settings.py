"""The checks of a :class:`~chanjing_async.callbacks.CallbackReceiver`'s settings, in order.

Secrets arrive hidden (the relay URL a SecretStr, the HMAC secret SecretBytes): no message
shows them, and no frame an error tracker records holds them in clear.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .._checks import check_setting
from ..errors import ConfigurationError
from ._relays import relay_backend
from ._urls import strong

if TYPE_CHECKING:
    from pydantic import SecretBytes, SecretStr

__all__ = ["check_settings"]


def check_settings(
    public_url: str | None,
    *,
    serve: bool,
    port: object,
    secret: SecretBytes | None,
    max_body: object,
    max_connections: object,
    timeouts: dict[str, object],
    repeat_interval: object,
    relay: SecretStr | None,
    relay_channel: object,
) -> None:
    """Refuse the first bad setting, naming it, its value (never a secret's) and the rule.

    ``timeouts`` maps ``header_timeout`` and ``idle_timeout`` to their values.

    Raises:
        ConfigurationError: a bad URL, port, secret, size, timeout, interval or relay; a relay
            without a secret; a relay without its backend (redis-py) installed.
    """
    if public_url is not None:
        parts = urlsplit(public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ConfigurationError(
                f"public_url={public_url!r}: must be an http(s) URL without a query"
            )
    elif not serve:
        raise ConfigurationError("public_url is required when serve=False (mounted receiver)")
    check_setting("port", port, integer=True, maximum=65535)
    if secret is not None and not strong(secret):
        raise ConfigurationError("secret: must be bytes, at least 16 of them")
    check_setting("max_body", max_body, integer=True, minimum=1024)
    check_setting("max_connections", max_connections, integer=True, minimum=1)
    for field, seconds in timeouts.items():
        check_setting(field, seconds, above=True, unit="seconds")
    check_setting("repeat_interval", repeat_interval, unit="seconds")
    if relay is None:
        return
    relay_backend().check_url(relay, "relay")
    if secret is None:
        raise ConfigurationError(
            "secret: required with a relay (each replica verifies the URLs of the others)"
        )
    if type(relay_channel) is not str or not relay_channel:
        raise ConfigurationError(f"relay_channel={relay_channel!r}: must be a non-empty string")
