"""Task callbacks: per-job capability URLs and a receiver for aiohttp or any ASGI server.

Chanjing POSTs the task object to a task's ``callback`` URL when it ends, unsigned and with no
documented retry (reference §5.6). So the URL itself carries the proof: each job gets
``<public_url>/<job key>?sig=<HMAC-SHA256(secret, job key)>``, minted before the create is sent.
A request with a wrong signature gets a bare 404, exactly like an unknown path. A valid callback
is only a hint: it makes the manager read the task through ``detail`` at once, and the handle
resolves from that answer, so even a forged body with a stolen URL cannot fake a result.
Repeats of the same (task, status) are acknowledged and ignored.

Status codes: 200 accepted or duplicate; 400 a body that is no task object, or a task that is
not this job's; 404 bad signature or unknown job; 405 not a POST; 413 body over ``max_body``;
415 not ``application/json``. None of them changes a job.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections import Counter
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, urlsplit

from aiohttp import web
from pydantic import ValidationError

from .errors import ConfigurationError
from .models import Envelope, LipSyncTask

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

__all__ = ["CallbackReceiver", "Verdict"]

logger = logging.getLogger("chanjing_async")

Verdict = Literal["accepted", "duplicate", "unknown", "mismatch"]
"""What a manager made of a callback: acted on, repeat, no such job, another task's id."""

_DEFAULT_PREFIX = "/chanjing/callbacks"

_STATUS_OF_VERDICT: dict[Verdict, int] = {
    "accepted": 200,
    "duplicate": 200,
    "unknown": 404,
    "mismatch": 400,
}


class CallbackReceiver:
    """Receives Chanjing task callbacks for one :class:`~chanjing_async.JobManager`.

    Standalone (``serve=True``, the default), the manager starts an aiohttp server on
    ``host:port`` when it opens and stops it when it closes::

        receiver = CallbackReceiver("https://jobs.example.com/chanjing", port=8080)
        async with JobManager(client, callbacks=receiver) as jobs:
            ...

    Mounted (``serve=False``), your own server routes the requests: aiohttp with
    ``app.add_subapp("/chanjing", receiver.aiohttp_app())``, or any ASGI framework by mounting
    ``receiver.asgi`` at that path. ``public_url`` is then required: the URL Chanjing can reach
    that prefix at. Your server's access log then records each URL with its signature; keep
    that log private, or drop the query from it (the standalone server logs no access).

    Args:
        public_url: base URL the callbacks are sent to; job URLs are ``<public_url>/<key>``.
            Standalone, the server serves the path of ``public_url`` (``/chanjing/callbacks``
            if it has none), and it defaults to ``http://<host>:<bound port>/chanjing/callbacks``.
        host: interface of the standalone server.
        port: port of the standalone server (0 picks a free one).
        serve: run the standalone server; False when mounted in your app.
        secret: HMAC key of the URLs; random per receiver by default. Give the same secret to
            every replica that may receive another one's callbacks.
        max_body: largest accepted body, bytes.

    Raises:
        ConfigurationError: a bad URL, port, secret or size.
    """

    def __init__(
        self,
        public_url: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        serve: bool = True,
        secret: bytes | None = None,
        max_body: int = 64 * 1024,
    ) -> None:
        if public_url is not None:
            parts = urlsplit(public_url)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
                raise ConfigurationError(
                    f"public_url={public_url!r}: must be an http(s) URL without a query"
                )
        elif not serve:
            raise ConfigurationError("public_url is required when serve=False (mounted receiver)")
        if type(port) is not int or not 0 <= port <= 65535:
            raise ConfigurationError(f"port={port!r}: must be an integer 0..65535")
        if secret is not None and not _strong(secret):
            raise ConfigurationError("secret: must be bytes, at least 16 of them")
        if type(max_body) is not int or max_body < 1024:
            raise ConfigurationError(f"max_body={max_body!r}: must be an integer >= 1024")
        self._public_url = public_url.rstrip("/") if public_url else None
        self._host = host
        self._port = port
        self.serve = serve
        self._secret = secret or secrets.token_bytes(32)
        self._max_body = max_body
        self._deliver: Callable[[str, LipSyncTask], Verdict] | None = None
        self._runner: web.AppRunner | None = None
        self.outcomes: Counter[str] = Counter()
        """Requests by outcome: a verdict, or forged, bad_method, too_large, bad_type, bad_body."""

    def __repr__(self) -> str:
        where = self._public_url or f"http://{self._host}:{self._port} (not started)"
        return f"<CallbackReceiver {where} serve={self.serve}>"

    @property
    def public_url(self) -> str:
        """The base URL of job callback URLs (known once a standalone receiver is started)."""
        if self._public_url is None:
            raise RuntimeError("the receiver's URL is known once its server has started")
        return self._public_url

    def url_for(self, key: str) -> str:
        """The callback URL of the job ``key``: ``<public_url>/<key>?sig=<hmac>``."""
        return f"{self.public_url}/{key}?sig={self._sign(key)}"

    def bind(self, deliver: Callable[[str, LipSyncTask], Verdict]) -> None:
        """Route verified callbacks to ``deliver`` (done by the JobManager that uses it)."""
        if self._deliver is not None and self._deliver != deliver:
            raise RuntimeError("a CallbackReceiver serves one JobManager")
        self._deliver = deliver

    def unbind(self) -> None:
        """Stop routing callbacks (the JobManager closed); they get 404 from then on."""
        self._deliver = None

    def _sign(self, key: str) -> str:
        return hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()

    # -- the one decision, shared by the aiohttp and ASGI front ends -------------------------

    def receive(self, key: str, sig: str, method: str, content_type: str, body: bytes) -> int:
        """Judge one callback request and return the HTTP status to answer."""
        # Bytes, not str: compare_digest refuses non-ASCII str, which anyone could send.
        if not hmac.compare_digest(self._sign(key).encode(), sig.encode("utf-8", "replace")):
            return self._count("forged", 404)
        if method != "POST":
            return self._count("bad_method", 405)
        if len(body) > self._max_body:
            return self._count("too_large", 413)
        if content_type.split(";")[0].strip().lower() != "application/json":
            return self._count("bad_type", 415)
        try:
            payload = json.loads(body)
            data = Envelope.model_validate(payload).data if "data" in payload else payload
            task = LipSyncTask.model_validate(data)
        except (ValueError, TypeError, ValidationError):
            return self._count("bad_body", 400)
        if self._deliver is None:
            return self._count("unknown", 404)
        verdict = self._deliver(key, task)
        return self._count(verdict, _STATUS_OF_VERDICT[verdict])

    def _count(self, outcome: str, status: int) -> int:
        self.outcomes[outcome] += 1
        if status != 200:
            logger.info("callback rejected: %s (HTTP %d)", outcome, status)
        return status

    # -- aiohttp -----------------------------------------------------------------------------

    def aiohttp_app(self) -> web.Application:
        """An aiohttp sub-application with the route ``/{key}``, to mount under a prefix."""
        app = web.Application(client_max_size=self._max_body)
        app.router.add_route("*", "/{key}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        declared = request.content_length
        if declared is not None and declared > self._max_body:
            body = b"\0" * (self._max_body + 1)  # judged too large without reading it
        else:
            # read(n) returns what has arrived so far: keep reading until the end or the cap.
            chunks = bytearray()
            while len(chunks) <= self._max_body:
                chunk = await request.content.read(self._max_body + 1 - len(chunks))
                if not chunk:
                    break
                chunks += chunk
            body = bytes(chunks)
        status = self.receive(
            request.match_info["key"],
            request.query.get("sig", ""),
            request.method,
            request.headers.get("Content-Type", ""),
            body,
        )
        return web.Response(status=status)

    async def start(self) -> None:
        """Start the standalone server (the JobManager does this when it opens)."""
        prefix = urlsplit(self._public_url).path.rstrip("/") if self._public_url else ""
        prefix = prefix or _DEFAULT_PREFIX
        root = web.Application()
        root.add_subapp(prefix, self.aiohttp_app())
        # No access log: its request lines would carry each URL's signature.
        self._runner = web.AppRunner(root, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        port = self._runner.addresses[0][1]
        if self._public_url is None:
            self._public_url = f"http://{self._host}:{port}{_DEFAULT_PREFIX}"
        self._port = port

    async def stop(self) -> None:
        """Stop the standalone server (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- ASGI --------------------------------------------------------------------------------

    async def asgi(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        """An ASGI 3 application: mount it at the prefix of ``public_url``."""
        if scope["type"] != "http":
            return
        headers = {name.decode("latin-1").lower(): value for name, value in scope["headers"]}
        body = b""
        more = True
        while more and len(body) <= self._max_body:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        status = self.receive(
            scope["path"].rstrip("/").rsplit("/", 1)[-1],
            query.get("sig", [""])[0],
            scope["method"],
            headers.get("content-type", b"").decode("latin-1"),
            body,
        )
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def _strong(secret: object) -> bool:
    return isinstance(secret, bytes) and len(secret) >= 16
