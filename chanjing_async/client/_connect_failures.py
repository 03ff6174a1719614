"""Why a connection could not be made, in words a user can act on.

aiohttp's own messages quote the whole URL (a signed URL's query is its signature) and its
class names (``ClientConnectorError``) say nothing to a user. ``cannot_connect`` names the
host and port that were tried and the reason, and nothing else of the URL: no user, no
password, no path, no query.
"""

from __future__ import annotations

import os
import socket

import aiohttp
import yarl

__all__ = ["cannot_connect"]


def cannot_connect(url: str | yarl.URL, exc: aiohttp.ClientError) -> str:
    """``cannot connect to 127.0.0.1:8080 (connection refused)`` for a connection to ``url``
    that failed with ``exc`` (a ``ClientConnectorError`` or ``ConnectionTimeoutError``)."""
    return f"cannot connect to {_authority(yarl.URL(url))} ({_reason(exc)})"


def _authority(url: yarl.URL) -> str:
    """``host:port`` (the scheme's port when the URL names none)."""
    return f"{url.host}:{url.port}" if url.port is not None else str(url.host)


def _reason(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate not trusted"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if not isinstance(exc, aiohttp.ClientConnectorError):
        return type(exc).__name__
    if isinstance(exc.os_error, socket.gaierror):
        return "host name not resolved"
    code = exc.os_error.errno
    if code is not None and code > 0:
        text = os.strerror(code)  # "Connection refused", "Network is unreachable"
        return text[:1].lower() + text[1:]
    return type(exc.os_error).__name__
