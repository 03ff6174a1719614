"""The standalone callback server, defended against clients that hold it or flood its log.

aiohttp's server (3.14.3, our floor) waits forever for a request head that never ends, and
keeps any number of connections: a few hundred clients sending a byte a second hold as many
descriptors, which the process shares with its API client, its downloads and its journal. So
the standalone receiver listens through a :class:`ReceiverGuard`, which wraps each
connection's aiohttp protocol (asyncio's ``Protocol`` interface: stable and public) and

* closes a connection whose first request head is not complete ``header_timeout`` seconds
  after it opened (the receiver gives a body as long: see ``_http``), and a
  kept-alive one whose next request head is not complete ``idle_timeout`` seconds after its
  last answer;
* keeps at most ``max_connections`` open: one more takes the place of the oldest that is not
  being judged (a client still sending its head or its body, or an idle one), which is
  closed; if every one is being judged, the new one is closed at once. A flood or a slow
  attack thus recycles the attacker's own connections, and a callback, sent at once, is
  answered meanwhile.

The guard learns that a request head is complete from a middleware of the server's
application (it sees the request's transport, whose protocol is the guard's), and that the
body has arrived from the front end (:func:`judging`).

aiohttp's own log records go through :class:`ServerLog`: a request the client garbled (a parse
error, a broken body, a dropped connection) is counted as ``malformed`` and never logged with
a traceback; anything else (a bug of ours) as ``server_error``, with its traceback. The
receiver logs both at a bounded rate.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

if TYPE_CHECKING:
    from collections.abc import Callable

    from aiohttp.web_protocol import RequestHandler

__all__ = [
    "CLIENT_FAULTS",
    "HEADER_TIMEOUT",
    "IDLE_TIMEOUT",
    "MAX_CONNECTIONS",
    "ReceiverGuard",
    "judging",
]

MAX_CONNECTIONS = 128
"""Connections the standalone receiver keeps open at once."""
HEADER_TIMEOUT = 10.0
"""Seconds a new connection has to send a complete request head (a body, as long again)."""
IDLE_TIMEOUT = 15.0
"""Seconds a kept-alive connection may wait before its next request head is complete."""

CLIENT_FAULTS = (HttpProcessingError, web.RequestPayloadError, ConnectionError)
"""What a client causes by garbling a request or leaving: no bug of ours."""


class ReceiverGuard:
    """Connection cap and timeouts of one standalone receiver (see the module docstring).

    Args:
        max_connections: open connections at most.
        header_timeout: seconds to the end of a new connection's first request head.
        idle_timeout: seconds from an answer to the end of the next request head.
        note: told of each event: ``slow_head``, ``idle``, ``evicted``, ``refused`` (a
            connection closed), ``malformed``, ``server_error`` (from aiohttp's log; the
            exception of a server error).
    """

    def __init__(
        self,
        *,
        max_connections: int,
        header_timeout: float,
        idle_timeout: float,
        note: Callable[[str, Exception | None], None],
    ) -> None:
        self._max = max_connections
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.note = note
        self.connections: dict[_Connection, None] = {}
        """Open connections, oldest first."""

    async def serve(self, app: web.Application, prefix: str, host: str, port: int) -> web.AppRunner:
        """Serve ``app`` at ``prefix`` on ``host:port``, guarded; the runner to clean up."""
        root = web.Application(middlewares=[self._middleware])
        root.add_subapp(prefix, app)
        # No access log: its request lines would carry each URL's signature.
        runner = web.AppRunner(root, access_log=None, logger=_ServerLog(self.note))
        await runner.setup()
        await _GuardedSite(runner, self, host, port).start()
        return runner

    def protocol(self, server: web.Server) -> asyncio.Protocol:
        """The protocol of a new connection to ``server``."""
        if len(self.connections) >= self._max:
            oldest = next((conn for conn in self.connections if not conn.judging), None)
            if oldest is None:
                self.note("refused", None)
                return _Refused()
            oldest.close("evicted")
        return _Connection(self, server())

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        """Tell the connection of ``request`` that a request has begun, then has been answered."""
        conn = _connection_of(request)
        if conn is not None:
            conn.begin()
        try:
            response: web.StreamResponse = await handler(request)
        finally:
            if conn is not None:
                conn.end()
        return response


def judging(request: web.Request) -> None:
    """The body of ``request`` has arrived: its connection is no longer one to drop first."""
    conn = _connection_of(request)
    if conn is not None:
        conn.judging = True


def _connection_of(request: web.Request) -> _Connection | None:
    transport = request.transport
    conn = transport.get_protocol() if transport is not None else None
    return conn if isinstance(conn, _Connection) else None


class _GuardedSite(web.BaseSite):
    """A TCP site whose connections go through the guard's protocol."""

    def __init__(self, runner: web.BaseRunner, guard: ReceiverGuard, host: str, port: int) -> None:
        super().__init__(runner)
        self._guard = guard
        self._host = host
        self._port = port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None  # BaseSite refuses a runner that is not set up
        guard = self._guard
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: guard.protocol(server), self._host, self._port, backlog=BACKLOG
        )


BACKLOG = 100
"""The listen backlog (asyncio's default, made explicit). asyncio accepts up to this many
connections at a time before any of them reaches the guard, so open descriptors can exceed
``max_connections`` by that much for a moment, until the guard closes the oldest."""


class _Connection(asyncio.Protocol):
    """An aiohttp server protocol, watched: timeouts, and a place in the guard's count."""

    def __init__(self, guard: ReceiverGuard, handler: RequestHandler) -> None:
        self._guard = guard
        self._handler = handler
        self._transport: asyncio.BaseTransport | None = None
        self._requests = 0
        self._closed = False  # by the guard, maybe before asyncio made the connection
        self._begun = False  # a request head is complete and not yet answered
        self.judging = False
        """A request of this connection has arrived whole and is being judged."""
        guard.connections[self] = None
        # Armed before the connection is made: if asyncio never makes it, this still frees it.
        self._timer: asyncio.TimerHandle | None = None
        self._arm(guard.header_timeout, "slow_head")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._handler.connection_made(transport)
        if self._closed:
            transport.abort()  # type: ignore[attr-defined]  # a socket transport

    def data_received(self, data: bytes) -> None:
        self._handler.data_received(data)

    def eof_received(self) -> None:
        self._handler.eof_received()

    def pause_writing(self) -> None:
        self._handler.pause_writing()

    def resume_writing(self) -> None:
        self._handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        self._handler.connection_lost(exc)

    def begin(self) -> None:
        """A request head is complete: its body (bounded by the front end) comes next."""
        self._begun = True
        self._requests += 1
        self._cancel_timer()

    def end(self) -> None:
        """The request is answered: the next head must be complete within ``idle_timeout``."""
        self._begun = self.judging = False
        self._arm(self._guard.idle_timeout, "idle")

    def close(self, outcome: str) -> None:
        """Drop the connection at once (reported as ``outcome``), whatever it was sending."""
        self._closed = True
        self._forget()
        self._guard.note(outcome, None)
        if self._transport is not None:
            self._transport.abort()  # type: ignore[attr-defined]  # a socket transport

    def _arm(self, seconds: float, outcome: str) -> None:
        self._cancel_timer()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(seconds, self._expire, self._requests, outcome)

    def _expire(self, requests: int, outcome: str) -> None:
        self._timer = None
        if not self._begun and self._requests == requests:
            self.close(outcome)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _forget(self) -> None:
        self._cancel_timer()
        self._guard.connections.pop(self, None)


class _Refused(asyncio.Protocol):
    """A connection over the cap while every other one is being judged: closed at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class _ServerLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The logger given to aiohttp's server: reports what it would log to ``note``."""

    def __init__(self, note: Callable[[str, Exception | None], None]) -> None:
        super().__init__(logging.getLogger("chanjing_async"))
        self._note = note

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if exc is True:
            exc = sys.exc_info()[1]
        if isinstance(exc, CLIENT_FAULTS):
            # Without the exception: a garbled request line may quote a URL and its signature.
            self._note("malformed", None)
        elif isinstance(exc, Exception):
            self._note("server_error", exc)
        elif level >= logging.WARNING:
            self.logger.log(level, msg, *args, **kwargs)
