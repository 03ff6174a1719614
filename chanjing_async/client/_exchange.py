"""One HTTP exchange: the aiohttp sessions of a client, redirects never followed.

**Redirects are never followed**: a redirect would carry the ``access_token`` header, or the
token call's secret key, to the host it names. A 3xx raises ``RedirectError`` (``Location``
without its query), is not retried, and counts as refused in front of the API (a create so
answered created nothing). Signed-URL PUTs follow none either: the URL names the storage host
the API chose, which answers a PUT itself; a redirect would send the file and its signature on.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

import aiohttp

from ..errors import RedirectError, RequestTimeoutError, TransportError
from . import _wire
from ._connect_failures import cannot_connect
from ._wire import redact_url

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pydantic import SecretStr

    from ._config import Timeouts

__all__ = ["Answer", "Exchanger", "excerpt"]


class Exchanger:
    """The aiohttp sessions of one client, and one exchange at a time through them.

    Args:
        timeouts: the total and connect timeouts of an exchange.
        session: a caller's session, used for every exchange and left open; None makes ours.
    """

    def __init__(self, timeouts: Timeouts, session: aiohttp.ClientSession | None) -> None:
        self._own_session = session is None
        self._client_timeout = aiohttp.ClientTimeout(total=timeouts.total, connect=timeouts.connect)
        self._session = session or aiohttp.ClientSession(timeout=self._client_timeout)
        # Creates get a connection of their own, never a pooled keep-alive one: a pooled
        # connection the server closed while idle fails *after* the request was written, which
        # would make an innocent create ambiguous. Ten creates a minute cost nothing to connect.
        # A caller-supplied session is used for creates too (its pooling is the caller's).
        self._create_session = session or aiohttp.ClientSession(
            timeout=self._client_timeout, connector=aiohttp.TCPConnector(force_close=True)
        )

    async def close(self) -> None:
        """Close the sessions if we created them; a caller's session stays open."""
        if self._own_session:
            await self._session.close()
            await self._create_session.close()

    async def exchange(
        self,
        method: str,
        url: str | SecretStr,
        *,
        label: str,
        params: dict[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        data: BinaryIO | None = None,
        token: SecretStr | None = None,
        content_type: str | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        fresh_connection: bool = False,
    ) -> Answer:
        """One HTTP exchange, redirects not followed: status, ``Date`` header and body.

        ``json`` may hold SecretStr values, ``token`` is one and ``url`` may be one (a signed
        URL, sent as written): all are revealed in the call expression only (``_wire``).
        aiohttp failures become TransportError with ``sent`` set, and a 3xx RedirectError,
        raised after the ``except`` block: aiohttp's exception (its message embeds the full URL,
        signed query included, its ``request_info`` the headers) is not chained; the message
        keeps its class name, or for a connection never made, the host and port tried and why
        (``cannot connect to 127.0.0.1:8080 (connection refused)``).
        """
        session = self._create_session if fresh_connection else self._session
        try:
            async with session.request(
                method,
                _wire.url(url),
                params=params,
                data=data if json is None else _wire.json_body(json),
                headers=_wire.headers(token, content_type),
                timeout=timeout or self._client_timeout,
                allow_redirects=False,
            ) as response:
                if 300 <= response.status < 400:
                    # Not followed; read nothing more (the body would only be a link).
                    location = response.headers.get("Location", "")
                    failure: TransportError | RedirectError = RedirectError(
                        response.status, endpoint=label, location=redact_url(location)
                    )
                else:
                    return Answer(
                        response.status, response.headers.get("Date"), await response.read()
                    )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # The connection was never established: nothing left this machine.
            message = cannot_connect(_wire.url(url), exc)
            failure = TransportError(message, endpoint=label, sent=False)
        except asyncio.TimeoutError:  # also aiohttp's read timeouts; builtin on 3.11+
            failure = RequestTimeoutError("request timed out", endpoint=label, sent=True)
        except aiohttp.ClientError as exc:
            message = f"connection failed ({type(exc).__name__})"
            failure = TransportError(message, endpoint=label, sent=True)
        except asyncio.CancelledError as exc:
            # The caller's deadline or cancel: it goes on, without the frames of aiohttp that
            # it passed through, which hold the revealed headers and body.
            raise exc.with_traceback(None)  # noqa: B904 - the same exception, nothing chained
        raise failure


@dataclass(frozen=True)
class Answer:
    """An HTTP answer; its ``repr`` leaves the body out (a token call's body holds a token)."""

    status: int
    date: str | None
    body: bytes = field(repr=False)


def excerpt(body: bytes) -> str:
    """The first 200 bytes of a body, as text (for an error about a page, never a JSON body)."""
    return body[:200].decode("utf-8", "replace").strip()
