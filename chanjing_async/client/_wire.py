"""What the transport hands aiohttp: request bodies and headers whose secrets it reveals there,
and URLs as they may be shown (:func:`redact_url`).

An error tracker (Sentry's default) records the ``repr`` of every local of every frame, along
the whole exception chain. The access token and the secret key therefore stay
:class:`~pydantic.SecretStr` in every frame of the SDK; :func:`json_body` and :func:`headers`
reveal them inside the call expression that hands them to aiohttp, so that only aiohttp's own
frames ever hold them, and the transport never keeps an aiohttp exception in a chain.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import yarl
from pydantic import SecretStr

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["headers", "json_body", "redact_url", "url"]


def _reveal(value: object) -> str:
    """``json.dumps``' fallback: a SecretStr goes on the wire as its value, nothing else does."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_body(body: Mapping[str, Any]) -> aiohttp.JsonPayload:
    """The JSON payload of ``body``, its SecretStr values revealed (to be called in the call
    expression of the request, never kept in a local)."""
    return aiohttp.JsonPayload(body, dumps=functools.partial(json.dumps, default=_reveal))


def headers(token: SecretStr | None, content_type: str | None) -> dict[str, str]:
    """The request headers, the token revealed (like :func:`json_body`, in the call only)."""
    sent = {"Content-Type": content_type} if content_type is not None else {}
    if token is not None:
        sent["access_token"] = token.get_secret_value()
    return sent


def url(target: str | SecretStr) -> str | yarl.URL:
    """The URL to request: a plain one as is, a SecretStr (a signed URL) revealed, sent as
    written (``encoded=True``: its signature covers the query exactly as the server wrote it)."""
    if isinstance(target, SecretStr):
        return yarl.URL(target.get_secret_value(), encoded=True)
    return target


def redact_url(url: str) -> str:
    """The URL without its query string (signed URLs carry their signature there) and without
    the ``user:password@`` of its authority."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    origin = f"{parts.scheme}://{host}" if parts.scheme or parts.netloc else ""
    return f"{origin}{parts.path}" + ("?<redacted>" if parts.query else "")
