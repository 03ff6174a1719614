"""The HTTP front ends of a callback receiver: an aiohttp sub-application and an ASGI app.

Both read a request's body, up to ``max_body + 1`` bytes and within ``body_timeout`` seconds
of its head (else 408, the connection closed: a client dripping a body holds nothing for
long), then hand its key, signature, method, content type and body to the receiver's one
decision (``CallbackReceiver.receive``) and answer the status it returns. A body the client
breaks (a bad chunk, a dropped connection) is 400 ``malformed``, never a traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qs, unquote_to_bytes

import anyio
from aiohttp import web

from ._guard import CLIENT_FAULTS, judging

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    Scope: TypeAlias = MutableMapping[str, Any]
    AsgiApp: TypeAlias = Callable[
        [Scope, Callable[[], Awaitable[Scope]], Callable[[Scope], Awaitable[None]]],
        Awaitable[None],
    ]
    """An ASGI 3 application: (scope, receive, send)."""

__all__ = ["CallbackHttp"]


class CallbackHttp:
    """The aiohttp and ASGI faces of one receiver.

    Args:
        judge: the receiver's decision: (key, sig, method, content type, body) -> status.
        count: counts an outcome and returns the status given with it.
        max_body: largest accepted body, bytes (one more is read, to tell it is too large).
        body_timeout: seconds a body may take to arrive after its head.
    """

    def __init__(
        self,
        judge: Callable[[str, str, str, str, bytes], Awaitable[int]],
        count: Callable[[str, int], int],
        *,
        max_body: int,
        body_timeout: float,
    ) -> None:
        self._judge = judge
        self._count = count
        self._max_body = max_body
        self._body_timeout = body_timeout

    def aiohttp_app(self) -> web.Application:
        """An aiohttp sub-application with the route ``/{key}`` (see the receiver's)."""
        app = web.Application(client_max_size=self._max_body)
        app.router.add_route("*", "/{key:.+}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        declared = request.content_length
        body: bytes | None = None
        if declared is not None and declared > self._max_body:
            body = b"\0" * (self._max_body + 1)  # judged too large without reading it
        else:
            with anyio.move_on_after(self._body_timeout):
                try:
                    body = await self._read(request)
                except CLIENT_FAULTS:  # a broken chunked body, a client gone
                    return web.Response(status=self._count("malformed", 400))
        if body is None:
            response = web.Response(status=self._count("slow_body", 408))
            response.force_close()
            return response
        judging(request)
        status = await self._judge(
            request.match_info["key"],
            request.query.get("sig", ""),
            request.method,
            request.headers.get("Content-Type", ""),
            body,
        )
        return web.Response(status=status)

    async def _read(self, request: web.Request) -> bytes:
        """The body of ``request``, or its first ``max_body + 1`` bytes."""
        # read(n) returns what has arrived so far: keep reading until the end or the cap.
        chunks = bytearray()
        while len(chunks) <= self._max_body:
            chunk = await request.content.read(self._max_body + 1 - len(chunks))
            if not chunk:
                break
            chunks += chunk
        return bytes(chunks)

    async def asgi(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        """An ASGI 3 application (see the receiver's)."""
        if scope["type"] != "http":
            return
        headers = {name.decode("latin-1").lower(): value for name, value in scope["headers"]}
        body = b""
        more = True
        with anyio.move_on_after(self._body_timeout) as waited:
            while more and len(body) <= self._max_body:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
        if waited.cancelled_caught:
            status = self._count("slow_body", 408)
        else:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            status = await self._judge(
                _last_segment(scope),
                query.get("sig", [""])[0],
                scope["method"],
                headers.get("content-type", b"").decode("latin-1"),
                body,
            )
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def _last_segment(scope: MutableMapping[str, Any]) -> str:
    """The job key of an ASGI request: the last segment of its path, percent-decoded.

    From ``raw_path`` (the path as sent) when the server gives it, so that an escaped ``/`` in
    a key is not taken for a separator; otherwise from the decoded ``path``, where a key with
    ``/`` cannot be told apart.
    """
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        segment = raw.split(b"?", 1)[0].rstrip(b"/").rsplit(b"/", 1)[-1]
        return unquote_to_bytes(segment).decode("utf-8", "surrogateescape")
    path: str = scope["path"]
    return path.rstrip("/").rsplit("/", 1)[-1]
