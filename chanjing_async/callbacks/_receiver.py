"""Task callbacks: per-job capability URLs and a receiver for aiohttp or any ASGI server.

Each job gets a signed callback URL (``_urls``). A request with a wrong signature gets a bare
404, exactly like an unknown path. A valid callback is only a hint: it makes the manager read
the task through ``detail`` at once, and the handle resolves from that answer, so even a forged
body with a stolen URL cannot fake a result. At most one callback per job and task reaches the
manager per ``repeat_interval``: a repeat within it is answered 200 at once and held, and the
latest one held is handed on when the interval ends (``_repeats``): a leaked URL costs at most
one read per interval.

Status codes: 200 accepted, duplicate or repeat; 400 a body that is no task object (however
deeply nested: no input ends the manager or escapes the app), or a task that is not this
job's; 404 bad signature or unknown job; 405 not a POST; 408 a body slower than
``header_timeout``; 413 body over ``max_body``; 415 not ``application/json``. None of them
changes a job. Rejections are counted in ``outcomes`` and logged at a bounded rate
(``_bounded_log``); the standalone server also caps and times out connections (``_guard``).

Several replicas behind one callback URL share a Redis **relay** (``relay="redis://..."``,
``_relays``): a callback that passes every check but names a job the local manager does not
know is PUBLISHed on the relay channel as ``{"origin", "key", "task"}`` (the receiver's random
id, the job key, the task object; no signature, no secret) and answered 200, or 503 if Redis is
unreachable. Every receiver with a relay subscribes to the channel while its manager is open
and hands each message of another receiver to its own manager, exactly like a callback it
received itself: still only a hint, confirmed through ``detail``, so a message written into
Redis by anyone else can cost one read (per job and interval), never fake a result, and one
that is no relayed callback (or that fails in any way) is counted and dropped, never ends the
subscription. Pub/sub keeps nothing: a message sent while a replica is reconnecting is lost,
and that job ends by polling, as it would without callbacks. The replicas must share the
``secret``, since each verifies URLs the others minted.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import SecretBytes, SecretStr, ValidationError

from .._bounded_log import BoundedLog
from ..models import Envelope, LipSyncTask
from ._guard import HEADER_TIMEOUT, IDLE_TIMEOUT, MAX_CONNECTIONS, ReceiverGuard
from ._http import CallbackHttp
from ._relays import relay_backend
from ._repeats import MAX_TASK_ID, REPEAT_INTERVAL, RepeatGate
from ._settings import check_settings
from ._urls import UrlSigner, check_key

if TYPE_CHECKING:
    from collections.abc import Callable

    from aiohttp import web
    from anyio.abc import TaskGroup

    from ._http import AsgiApp

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

# What a relayed message was to this receiver's manager (counted in ``outcomes``).
_OUTCOME_OF_RELAYED: dict[Verdict, str] = {
    "accepted": "relay_accepted",
    "duplicate": "relay_duplicate",
    "unknown": "relay_ignored",
    "mismatch": "relay_ignored",
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

    Replicas behind one load-balanced URL share the ``secret`` and a Redis ``relay``: a valid
    callback of a job this manager does not know is published for the others (200 "relayed",
    503 "relay_down" if Redis is unreachable) instead of answered 404, and the messages the
    others publish reach this manager as if received here. The relay listens while the manager
    is open, reconnects after a Redis outage (one warning per outage) and subscribes again.

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
        relay: Redis URL of the relay between replicas (needs the ``redis`` extra and a
            ``secret``); None serves this manager's jobs only. Its password is never shown.
        relay_channel: the pub/sub channel of the relay, the same for every replica.
        max_connections: connections the standalone server keeps open at once (128); one more
            replaces the oldest that is still sending or idle.
        header_timeout: seconds a new connection of the standalone server has to send its
            request head (10); in every front end, a body must arrive as fast (else 408).
        idle_timeout: seconds a kept-alive connection of the standalone server may stay idle
            between an answer and the next request head (15).
        repeat_interval: seconds during which further callbacks naming the same job and task
            are repeats (10): answered 200 and held, the latest handed on when the interval
            ends. 0 hands every callback on at once.

    Attributes:
        outcomes: requests by outcome: a verdict (accepted, duplicate, unknown, mismatch),
            repeat (held, see ``repeat_interval``), forged, bad_method, too_large, bad_type,
            bad_body, slow_body (408); with a relay, relayed (published for the other
            replicas) and relay_down (Redis unreachable, HTTP 503). The standalone server's
            connections: slow_head and idle (closed by ``header_timeout``, ``idle_timeout``),
            evicted (closed for a newer one), refused (over ``max_connections``), malformed (a
            request aiohttp could not parse), server_error (a bug: HTTP 500). Messages of the
            other replicas by what this manager made of them: relay_accepted, relay_duplicate,
            relay_repeat, relay_ignored (not this manager's job), relay_bad (not a relayed
            callback), relay_error (failed in the manager: a bug); repeat_error (a held
            callback failed when handed on: a bug).

    Raises:
        ConfigurationError: a bad URL, port, secret, size, timeout, interval or relay; a relay
            without a secret; a relay without redis-py installed.
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
        relay: str | None = None,
        relay_channel: str = "chanjing:callbacks",
        max_connections: int = MAX_CONNECTIONS,
        header_timeout: float = HEADER_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        repeat_interval: float = REPEAT_INTERVAL,
    ) -> None:
        # The relay's password and the HMAC secret are hidden before anything can fail: an
        # error tracker records this frame's locals.
        # Other types stay as given, for the checks below to name.
        hidden_relay = SecretStr(relay) if isinstance(relay, str) else relay
        hidden_secret = SecretBytes(secret) if isinstance(secret, bytes) else secret
        del relay, secret
        check_settings(
            public_url,
            serve=serve,
            port=port,
            secret=hidden_secret,
            max_body=max_body,
            max_connections=max_connections,
            timeouts={"header_timeout": header_timeout, "idle_timeout": idle_timeout},
            repeat_interval=repeat_interval,
            relay=hidden_relay,
            relay_channel=relay_channel,
        )
        self._public_url = public_url.rstrip("/") if public_url else None
        self._host = host
        self._port = port
        self.serve = serve
        self._signer = UrlSigner(hidden_secret)
        self._max_body = max_body
        self._http = CallbackHttp(
            self.receive, self._count, max_body=max_body, body_timeout=header_timeout
        )
        self._deliver: Callable[[str, LipSyncTask], Verdict] | None = None
        self._runner: web.AppRunner | None = None
        self._log = BoundedLog(logger)
        self._repeats = RepeatGate(repeat_interval, self._note)
        self._guard = ReceiverGuard(
            max_connections=max_connections,
            header_timeout=header_timeout,
            idle_timeout=idle_timeout,
            note=self._note,
        )
        self._relay = (
            None
            if hidden_relay is None
            else relay_backend().connect(hidden_relay, relay_channel, self._note)
        )
        self.outcomes: Counter[str] = Counter()

    def __repr__(self) -> str:
        where = self._public_url or f"http://{self._host}:{self._port} (not started)"
        relay = "" if self._relay is None else f" relay={self._relay.where}"
        return f"<CallbackReceiver {where} serve={self.serve}{relay}>"

    @property
    def public_url(self) -> str:
        """The base URL of job callback URLs (known once a standalone receiver is started)."""
        if self._public_url is None:
            raise RuntimeError("the receiver's URL is known once its server has started")
        return self._public_url

    def url_for(self, key: str) -> str:
        """The callback URL of the job ``key``: ``<public_url>/<key>?sig=<hmac>``.

        The key is percent-encoded (every character but ASCII letters, digits and ``_.-~``),
        the signature is over the key itself.

        Raises:
            InvalidInputError: a key no URL can carry (see :meth:`check_key`), whether or
                not the server has started: the key is checked first.
            RuntimeError: a standalone receiver whose server has not started.
        """
        check_key(key)
        return self._signer.url(self.public_url, key)

    @staticmethod
    def check_key(key: str) -> None:
        """Refuse a job key that no callback URL can carry: ``.``, ``..`` or one over 512
        characters (``_urls.check_key``); a manager checks it at submit.

        Raises:
            InvalidInputError: naming the key and why.
        """
        check_key(key)

    def bind(self, deliver: Callable[[str, LipSyncTask], Verdict]) -> None:
        """Route verified callbacks to ``deliver`` (done by the JobManager that uses it)."""
        if self._deliver is not None and self._deliver != deliver:
            raise RuntimeError("a CallbackReceiver serves one JobManager")
        self._deliver = deliver

    def unbind(self) -> None:
        """Stop routing callbacks (the JobManager closed); they get 404 from then on."""
        self._deliver = None

    async def open(self, deliver: Callable[[str, LipSyncTask], Verdict], group: TaskGroup) -> None:
        """Route callbacks to ``deliver`` until :meth:`close` (the JobManager does both).

        Binds the receiver, starts the standalone server (``serve=True``) and, with a relay,
        subscribes to its channel in ``group``. A Redis that is down does not stop the opening:
        the subscription is retried in the background.

        Args:
            deliver: the manager's judge of a verified callback.
            group: the manager's task group, which runs the relay's subscription.

        Raises:
            RuntimeError: the receiver already serves another manager.
            OSError: the standalone server cannot listen on ``host:port``.
        """
        self.bind(deliver)
        self._repeats.open(group)
        try:
            if self.serve:
                await self.start()
            if self._relay is not None:
                await group.start(self._relay.listen, self._take_relayed)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Unbind, stop the standalone server and close the relay's connections (idempotent).

        The manager cancels the relay's subscription (its task group) before calling this.
        """
        self.unbind()
        self._repeats.close()
        try:
            await self.stop()
        finally:
            if self._relay is not None:
                await self._relay.close()

    # -- the one decision, shared by the aiohttp and ASGI front ends -------------------------

    async def receive(self, key: str, sig: str, method: str, content_type: str, body: bytes) -> int:
        """Judge one callback request and return the HTTP status to answer.

        A valid callback repeating one handed on within ``repeat_interval`` is held (200). With
        a relay, a valid callback of a job the manager does not know is published for the
        other replicas (awaited here, so the answer tells whether it was).
        """
        if not self._signer.verify(key, sig):
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
        except (ValueError, TypeError, ValidationError, RecursionError):
            # RecursionError: JSON nested deeper than the parser's stack ('[' * 50_000).
            return self._count("bad_body", 400)
        if len(task.id) > MAX_TASK_ID:
            return self._count("bad_body", 400)
        if not self._repeats.admit(key, task.id, lambda: self._judge(key, task)):
            return self._count("repeat", 200)
        return await self._judge(key, task)

    async def _judge(self, key: str, task: LipSyncTask) -> int:
        """Hand a verified callback to the manager, or to the other replicas; the status."""
        if self._deliver is None:  # no manager: the receiver is closed
            return self._count("unknown", 404)
        verdict = self._deliver(key, task)
        if verdict == "unknown" and self._relay is not None:
            if await self._relay.publish(key, task):
                return self._count("relayed", 200)
            return self._count("relay_down", 503)
        return self._count(verdict, _STATUS_OF_VERDICT[verdict])

    def _count(self, outcome: str, status: int) -> int:
        self.outcomes[outcome] += 1
        if status != 200:
            self._log.note(
                outcome, logging.INFO, "callback rejected: %s (HTTP %d)", outcome, status
            )
        return status

    def _note(self, outcome: str, exc: Exception | None = None) -> None:
        """Count an event that is no answer (a connection the guard closed, a relay message,
        aiohttp's report of a request); log it at a bounded rate, with ``exc`` at ERROR."""
        self.outcomes[outcome] += 1
        if outcome != "idle":  # an idle keep-alive connection closed: nothing to report
            level = logging.INFO if exc is None else logging.ERROR
            self._log.note(outcome, level, "callback receiver: %s", outcome, exc_info=exc)

    async def _take_relayed(self, key: str, task: LipSyncTask) -> None:
        """Hand the callback another replica relayed to the manager, like one received here."""
        if self._repeats.admit(key, task.id, lambda: self._judge_relayed(key, task)):
            await self._judge_relayed(key, task)
        else:
            self.outcomes["relay_repeat"] += 1

    async def _judge_relayed(self, key: str, task: LipSyncTask) -> None:
        if self._deliver is not None:
            self.outcomes[_OUTCOME_OF_RELAYED[self._deliver(key, task)]] += 1

    def aiohttp_app(self) -> web.Application:
        """An aiohttp sub-application with the route ``/{key}``, to mount under a prefix.

        The key is the rest of the path, percent-decoded: escaped (``a%2Fb``) or, as URLs
        minted before keys were escaped carry it, not (``a/b``).
        """
        return self._http.aiohttp_app()

    async def start(self) -> None:
        """Start the standalone server (the JobManager does this when it opens)."""
        prefix = urlsplit(self._public_url).path.rstrip("/") if self._public_url else ""
        prefix = prefix or _DEFAULT_PREFIX
        self._runner = await self._guard.serve(self.aiohttp_app(), prefix, self._host, self._port)
        port = self._runner.addresses[0][1]
        if self._public_url is None:
            self._public_url = f"http://{self._host}:{port}{_DEFAULT_PREFIX}"
        self._port = port

    async def stop(self) -> None:
        """Stop the standalone server (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def asgi(self) -> AsgiApp:
        """An ASGI 3 application: mount it at the prefix of ``public_url``."""
        return self._http.asgi
