"""HTTP transport: token, limiter slot, envelope decoding, error mapping and retries of a call.

Every call goes through :meth:`Transport.call`, which in order: takes a token (if the endpoint
needs one), takes a slot of the endpoint's rate limiter (held from send to answer, so the
completion-anchored log of ``limits`` stays exact), sends, decodes the envelope once, maps a
non-zero code to its typed error, and decides whether to retry.

The retry rules:

* reads, the token call, the upload-URL call and file uploads are retried on transport errors,
  timeouts, gateway pages (502/503/504/524), 50000/51000 and 40001, with exponential backoff and
  jitter (40001 waits for the limiter's penalty instead of a backoff);
* a 10400 (token refused) refreshes the token once and retries once, then raises;
* **create is never retried blindly**: it is retried only when the request provably never
  reached the server (the connection was not established) or the server answered with a code
  that means "not created" (40001, 10400, 50000 other than a file problem). A timeout, a
  disconnect after sending or a gateway page leave the outcome unknown and raise
  :class:`~chanjing_async.errors.CreateOutcomeUnknown` (``_outcomes``).

Redirects are never followed (``_exchange``).

Logs go to ``logging.getLogger("chanjing_async")`` at DEBUG and never contain the token, the
secret key, request bodies or signed-URL query strings. For error trackers, the token and the
secret key stay SecretStr in every frame here (``_wire``), as does a signed upload URL; an
answer's body and its envelope's ``data`` stay out of every ``repr``; every error is raised
outside the ``except`` block of its cause: no ``__context__``, no aiohttp exception in any chain.
"""

from __future__ import annotations

import logging
import random
import time
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import anyio
from pydantic import SecretStr, ValidationError

from ..errors import (
    APIError,
    ChanjingError,
    HTTPStatusError,
    RateLimitError,
    RequestTimeoutError,
    ResponseValidationError,
    TransportError,
)
from ..models import Envelope
from ._exchange import Exchanger, excerpt
from ._outcomes import (
    AUTH_CODES,
    UNKNOWN_CODES,
    data_of,
    refused_in_front,
    refused_token,
    retryable,
    unknown,
)
from ._wire import redact_url

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from ..limits import Limiters, RateLimiter, Slot
    from ._clock import ServerClock
    from ._config import RetryPolicy, Timeouts
    from ._endpoints import Endpoint, EndpointKind

logger = logging.getLogger("chanjing_async")


class TokenSource(Protocol):
    """What the transport needs from the auth layer (implemented by ``_auth.TokenProvider``)."""

    async def token(self) -> SecretStr:
        """The current valid token, fetching one if needed."""
        ...

    async def invalidate(self, token: SecretStr) -> None:
        """Report ``token`` as refused; the next :meth:`token` returns a newer one."""
        ...


class Transport:
    """Owns the aiohttp session and sends every request of one client."""

    def __init__(
        self,
        base_url: str,
        *,
        timeouts: Timeouts,
        retry: RetryPolicy,
        limiters: Limiters,
        session: aiohttp.ClientSession | None,
        server_clock: ServerClock,
    ) -> None:
        self._base_url = base_url
        self.server_clock = server_clock
        self._timeouts = timeouts
        self._retry = retry
        self.limiters = limiters
        self._http = Exchanger(timeouts, session)

    async def close(self) -> None:
        """Close the sessions if we created them; a caller's session stays open."""
        await self._http.close()

    def _limiter(self, kind: EndpointKind) -> RateLimiter:
        if kind == "create":
            return self.limiters.create
        if kind == "read":
            return self.limiters.read
        return self.limiters.other

    async def call(
        self,
        endpoint: Endpoint,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        auth: TokenSource | None = None,
        slot: Slot | None = None,
        on_send: Callable[[], Awaitable[None]] | None = None,
    ) -> Any:
        """Send one API call with the retry rules above; return the envelope's ``data``.

        ``slot``, a slot the caller already holds from the endpoint's limiter, makes this
        exactly one attempt in that slot: the caller decides about any resend (a job manager
        puts a refused create back at the head of its own queue). A refused token is still
        replaced before the AuthenticationError is raised, so a resend gets a fresh one.
        ``on_send`` is called right before each time the request may leave this process.
        """
        attempt = 0
        refreshed = False
        while True:
            token = await auth.token() if auth is not None else None
            try:
                return await self._send(
                    endpoint, params=params, json=json, token=token, slot=slot, on_send=on_send
                )
            except (APIError, TransportError, HTTPStatusError) as exc:
                error: ChanjingError = exc
            # Decided outside the except block: whatever is raised chains nothing.
            if isinstance(error, APIError) and error.code in AUTH_CODES and token is not None:
                assert auth is not None
                if refreshed:
                    raise refused_token(error)
                # One forced refresh, then one retry. Not counted as a
                # retry: the request was refused before it could do anything.
                refreshed = True
                await auth.invalidate(token)
                if slot is not None:
                    raise refused_token(error)
                continue
            if slot is not None or not retryable(error):
                raise error
            attempt += 1
            if attempt > self._retry.max_retries:
                raise error
            logger.debug("%s %s: retry %d after %s", endpoint.method, endpoint.path, attempt, error)
            if not isinstance(error, RateLimitError):
                # After a 40001 the limiter itself holds us back until its penalty has passed.
                await anyio.sleep(self._retry.delay(attempt, random.random()))

    async def _send(
        self,
        endpoint: Endpoint,
        *,
        params: dict[str, str] | None,
        json: dict[str, Any] | None,
        token: SecretStr | None,
        slot: Slot | None,
        on_send: Callable[[], Awaitable[None]] | None,
    ) -> Any:
        """One attempt: limiter slot, exchange, envelope. A create in doubt raises Unknown.

        The body (the token call's holds a token) stays inside an :class:`_Answer`, and the
        envelope's ``data`` out of its ``repr``: a Redis refusal raised by the slot's exit
        crosses this frame.

        A create whose outcome is not an answer (a timeout, a dropped connection, a gateway
        page, a garbled body, 50000, or its caller cancelled) keeps its slot until the
        processing horizon (``Timeouts.create_horizon``): the server may count it until then.
        """
        limiter = self._limiter(endpoint.kind)
        admission = nullcontext(slot) if slot is not None else limiter.slot()
        async with admission as held:
            # A shared reservation may have lapsed while this process was paused.
            await held.fence()
            if on_send is not None:
                try:
                    await on_send()
                except BaseException:
                    held.discard()  # nothing was sent
                    raise
            sent_at = time.time()  # after admission: for reconciliation
            envelope = await self._in_slot(
                endpoint, held, sent_at, params=params, json=json, token=token
            )
        if logger.isEnabledFor(logging.DEBUG):  # a hot path: no arguments built for nothing
            logger.debug(
                "%s %s -> code %d in %.0f ms (trace_id=%s)",
                endpoint.method,
                endpoint.path,
                envelope.code,
                (time.time() - sent_at) * 1000,
                envelope.trace_id,
            )
        return data_of(envelope, endpoint, sent_at, json, penalize=limiter.penalize)

    async def _in_slot(
        self,
        endpoint: Endpoint,
        held: Slot,
        sent_at: float,
        *,
        params: dict[str, str] | None,
        json: dict[str, Any] | None,
        token: SecretStr | None,
    ) -> Envelope:
        """The exchange in ``held``, and how long the slot stays counted after it."""
        create = endpoint.kind == "create"
        sent = time.monotonic()
        answered = False
        envelope: Envelope | None = None
        try:
            answer = await self._http.exchange(
                endpoint.method,
                self._base_url + endpoint.path,
                label=endpoint.path,
                params=params,
                json=json,
                token=token,
                fresh_connection=create,
            )
            envelope = _decode(endpoint.path, answer.status, answer.body)
            # An envelope: the API answered (a gateway page's Date says nothing of it).
            self.server_clock.observe_date(answer.date, sent, time.monotonic())
            answered = envelope.code not in UNKNOWN_CODES or not create
        except TransportError as exc:
            failure: ChanjingError | None = exc
            if not exc.sent:
                held.discard()  # nothing left this machine: the server counted nothing
            elif create:
                failure = unknown(exc, endpoint, sent_at, json)
            elif isinstance(exc, RequestTimeoutError):
                # The request may still reach the server after we gave up: keep counting it.
                held.hold(self._timeouts.total)
        except (HTTPStatusError, ResponseValidationError) as exc:
            # A gateway page or a garbled body says nothing about what the origin did, but a
            # 3xx or 4xx page without an envelope was refused in front of it.
            failure = exc
            if create and not refused_in_front(exc):
                failure = unknown(exc, endpoint, sent_at, json)
            else:
                answered = True
        else:
            failure = None
        finally:
            if create and not answered:
                # Also when the caller cancelled: the create may be counted until then.
                held.hold(max(0.0, sent + self._timeouts.create_horizon - time.monotonic()))
        if envelope is None:
            assert failure is not None
            raise failure  # outside the except blocks: it chains nothing
        return envelope

    async def put(self, url: SecretStr, path: Path, content_type: str) -> None:
        """PUT the file at ``path`` to a signed URL, streamed from disk (never held whole).

        The URL (its signature is a capability) is held as a SecretStr here and revealed in the
        call expression that hands it to aiohttp.

        aiohttp reads the file in chunks in a worker thread and sets ``Content-Length`` from
        its size (a signed PUT URL may require it; no chunked encoding). Transport and gateway
        failures are retried (the PUT is idempotent), each attempt on the file opened afresh,
        so a retry sends every byte from the start.

        Raises:
            OSError: the file cannot be opened.
            TransportError, HTTPStatusError: the PUT failed, after the retries.
        """
        shown = redact_url(url.get_secret_value())
        attempt = 0
        while True:
            stream = await anyio.to_thread.run_sync(path.open, "rb")
            try:
                answer = await self._http.exchange(
                    "PUT",
                    url,
                    label=shown,
                    data=stream,
                    content_type=content_type,
                    timeout=aiohttp.ClientTimeout(
                        total=self._timeouts.upload, connect=self._timeouts.connect
                    ),
                )
                if answer.status in (200, 204):
                    return
                raise HTTPStatusError(
                    answer.status, endpoint=shown, body_excerpt=excerpt(answer.body)
                )
            except (TransportError, HTTPStatusError) as exc:
                failure = exc
            finally:
                stream.close()
            attempt += 1
            if not retryable(failure) or attempt > self._retry.max_retries:
                raise failure  # outside the except block: it chains nothing
            await anyio.sleep(self._retry.delay(attempt, random.random()))


def _decode(path: str, status: int, body: bytes) -> Envelope:
    """Decode the envelope once, whatever the HTTP status (a 429 may carry code 40001).

    A body that is no envelope becomes HTTPStatusError (non-2xx, or an HTML page served with
    200) or ResponseValidationError. Neither quotes a JSON body, nor keeps it in this frame,
    which its traceback holds: a truncated token answer is no envelope and holds a token.
    """
    try:
        return Envelope.model_validate_json(body)
    except ValidationError:
        pass
    page = body.lstrip()[:1] == b"<"
    shown = excerpt(body) if page else ""
    del body
    if not 200 <= status < 300 or page:
        raise HTTPStatusError(status, endpoint=path, body_excerpt=shown)
    raise ResponseValidationError(path, f"HTTP {status} body is not a JSON envelope")
