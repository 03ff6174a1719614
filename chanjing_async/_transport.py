"""HTTP transport: one aiohttp session, envelope decoding, error mapping, retries, redaction.

Every call goes through :meth:`Transport.call`, which in order: takes a token (if the endpoint
needs one), takes a slot of the endpoint's rate limiter (held from send to answer, so the
completion-anchored log of ``limits`` stays exact), sends, decodes the envelope once, maps a
non-zero code to its typed error, and decides whether to retry.

The retry rules (reference §6, design §5):

* reads, the token call, the upload-URL call and file uploads are retried on transport errors,
  timeouts, gateway pages (502/503/504/524), 50000/51000 and 40001, with exponential backoff and
  jitter (40001 waits for the limiter's penalty instead of a backoff);
* a 10400 (token refused) refreshes the token once and retries once, then raises;
* **create is never retried blindly**: it is retried only when the request provably never
  reached the server (the connection was not established) or the server answered with a code
  that means "not created" (40001, 10400, 50000 other than a file problem). A timeout, a
  disconnect after sending or a gateway page leave the outcome unknown and raise
  :class:`~chanjing_async.errors.CreateOutcomeUnknown`.

Logs go to ``logging.getLogger("chanjing_async")`` at DEBUG and never contain the token, the
secret key, request bodies or signed-URL query strings.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, Protocol
from urllib.parse import urlsplit

import aiohttp
import anyio
import yarl
from pydantic import ValidationError

from .errors import (
    APIError,
    AuthenticationError,
    CreateOutcomeUnknown,
    FileNotReadyError,
    HTTPStatusError,
    RateLimitError,
    RequestTimeoutError,
    ResponseValidationError,
    ServerError,
    TransportError,
    error_for_code,
)
from .models import Envelope

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from ._clock import ServerClock
    from ._config import RetryPolicy, Timeouts
    from .limits import Limiters, RateLimiter, Slot

logger = logging.getLogger("chanjing_async")

EndpointKind = Literal["create", "read", "other"]
_AUTH_CODES = frozenset({10400, 10401})
# Codes on a create that do not prove nothing was created ("系统内部错误").
_UNKNOWN_CODES = frozenset({50000, 51000})


@dataclass(frozen=True)
class Endpoint:
    """One API endpoint: method, path and the kind that selects its limiter and retry rule."""

    method: Literal["GET", "POST"]
    path: str
    kind: EndpointKind


ACCESS_TOKEN = Endpoint("POST", "/open/v1/access_token", "other")
UPLOAD_URL = Endpoint("GET", "/open/v1/common/create_upload_url", "other")
FILE_DETAIL = Endpoint("GET", "/open/v1/common/file_detail", "other")
LIP_SYNC_CREATE = Endpoint("POST", "/open/v1/video_lip_sync/create", "create")
LIP_SYNC_DETAIL = Endpoint("GET", "/open/v1/video_lip_sync/detail", "read")
LIP_SYNC_LIST = Endpoint("POST", "/open/v1/video_lip_sync/list", "read")
VOICES = Endpoint("GET", "/open/v1/list_common_audio", "other")


class TokenSource(Protocol):
    """What the transport needs from the auth layer (implemented by ``_auth.TokenProvider``)."""

    async def token(self) -> str:
        """The current valid token, fetching one if needed."""
        ...

    async def invalidate(self, token: str) -> None:
        """Report ``token`` as refused; the next :meth:`token` returns a newer one."""
        ...


def redact_url(url: str) -> str:
    """The URL without its query string (signed URLs carry their signature there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?<redacted>" if parts.query else "")


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
            except APIError as exc:
                if exc.code in _AUTH_CODES and auth is not None and token is not None:
                    if refreshed:
                        raise AuthenticationError(
                            exc.code, exc.msg, trace_id=exc.trace_id, endpoint=exc.endpoint
                        ) from None
                    # One forced refresh, then one retry (reference §3.2). Not counted as a
                    # retry: the request was refused before it could do anything.
                    refreshed = True
                    await auth.invalidate(token)
                    if slot is not None:
                        raise AuthenticationError(
                            exc.code, exc.msg, trace_id=exc.trace_id, endpoint=exc.endpoint
                        ) from None
                    continue
                if slot is not None or not _code_retryable(exc):
                    raise
                error: Exception = exc
            except (TransportError, HTTPStatusError) as exc:
                if slot is not None or (isinstance(exc, HTTPStatusError) and not exc.is_gateway):
                    raise
                error = exc
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
        token: str | None,
        slot: Slot | None,
        on_send: Callable[[], Awaitable[None]] | None,
    ) -> Any:
        """One attempt: limiter slot, exchange, envelope. A create in doubt raises Unknown.

        A create whose outcome is not an answer (a timeout, a dropped connection, a gateway
        page, a garbled body, 50000, or its caller cancelled) keeps its slot until the
        processing horizon (``Timeouts.create_horizon``): the server may count it until then.
        """
        limiter = self._limiter(endpoint.kind)
        headers = {"access_token": token} if token is not None else {}
        create = endpoint.kind == "create"
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
            sent_at, sent = time.time(), time.monotonic()  # after admission: for reconciliation
            answered = False
            try:
                status, date, body = await self._exchange(
                    endpoint.method,
                    self._base_url + endpoint.path,
                    label=endpoint.path,
                    params=params,
                    json=json,
                    headers=headers,
                    fresh_connection=create,
                )
                envelope = _decode(endpoint.path, status, body)
                # An envelope: the API answered (a gateway page's Date says nothing of it).
                self.server_clock.observe_date(date, sent, time.monotonic())
                answered = envelope.code not in _UNKNOWN_CODES or not create
            except TransportError as exc:
                if not exc.sent:
                    held.discard()  # nothing left this machine: the server counted nothing
                    raise
                if create:
                    raise _unknown(exc, endpoint, sent_at, json) from None
                if isinstance(exc, RequestTimeoutError):
                    # The request may still reach the server after we gave up: keep counting it.
                    held.hold(self._timeouts.total)
                raise
            except (HTTPStatusError, ResponseValidationError) as exc:
                # A gateway page or a garbled body says nothing about what the origin did, but a
                # 4xx page without an envelope was refused in front of it.
                if create and not (isinstance(exc, HTTPStatusError) and 400 <= exc.status < 500):
                    raise _unknown(exc, endpoint, sent_at, json) from None
                answered = True
                raise
            finally:
                if create and not answered:
                    # Also when the caller cancelled: the create may be counted until then.
                    held.hold(max(0.0, sent + self._timeouts.create_horizon - time.monotonic()))
        if logger.isEnabledFor(logging.DEBUG):  # a hot path: no arguments built for nothing
            logger.debug(
                "%s %s -> code %d in %.0f ms (trace_id=%s)",
                endpoint.method,
                endpoint.path,
                envelope.code,
                (time.time() - sent_at) * 1000,
                envelope.trace_id,
            )
        if envelope.code != 0:
            error = error_for_code(
                envelope.code, envelope.msg, trace_id=envelope.trace_id, endpoint=endpoint.path
            )
            if isinstance(error, RateLimitError):
                limiter.penalize()
            if create and type(error) is ServerError:
                # "系统内部错误" does not prove that nothing was created: reconcile, never resend.
                raise _unknown(error, endpoint, sent_at, json)
            raise error
        if create and (not isinstance(envelope.data, str) or not envelope.data):
            # Success without a task id: the task exists but we cannot name it.
            raise _unknown(
                ResponseValidationError(endpoint.path, "code 0 without a task id"),
                endpoint,
                sent_at,
                json,
            )
        return envelope.data

    async def _exchange(
        self,
        method: str,
        url: str | yarl.URL,
        *,
        label: str,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        data: BinaryIO | None = None,
        headers: dict[str, str],
        timeout: aiohttp.ClientTimeout | None = None,
        fresh_connection: bool = False,
    ) -> tuple[int, str | None, bytes]:
        """One HTTP exchange: status, ``Date`` header and body; aiohttp failures become
        TransportError with ``sent`` set.

        aiohttp's messages embed the full URL, signed query included, so the cause is not
        chained (``from None``); its class name is kept in the message.
        """
        session = self._create_session if fresh_connection else self._session
        try:
            async with session.request(
                method,
                url,
                params=params,
                json=json,
                data=data,
                headers=headers,
                timeout=timeout or self._client_timeout,
            ) as response:
                return response.status, response.headers.get("Date"), await response.read()
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # The connection was never established: nothing left this machine.
            message = f"cannot connect ({type(exc).__name__})"
            raise TransportError(message, endpoint=label, sent=False) from None
        except asyncio.TimeoutError:  # also aiohttp's read timeouts; builtin on 3.11+
            raise RequestTimeoutError("request timed out", endpoint=label, sent=True) from None
        except aiohttp.ClientError as exc:
            message = f"connection failed ({type(exc).__name__})"
            raise TransportError(message, endpoint=label, sent=True) from None

    async def put(self, url: str, path: Path, content_type: str) -> None:
        """PUT the file at ``path`` to a signed URL, streamed from disk (never held whole).

        aiohttp reads the file in chunks in a worker thread and sets ``Content-Length`` from
        its size (a signed PUT URL may require it; no chunked encoding). Transport and gateway
        failures are retried (the PUT is idempotent), each attempt on the file opened afresh,
        so a retry sends every byte from the start.

        Raises:
            OSError: the file cannot be opened.
            TransportError, HTTPStatusError: the PUT failed, after the retries.
        """
        shown = redact_url(url)
        attempt = 0
        while True:
            stream = await anyio.to_thread.run_sync(path.open, "rb")
            try:
                status, _, body = await self._exchange(
                    "PUT",
                    # encoded=True: the signature covers the query exactly as the server wrote it.
                    yarl.URL(url, encoded=True),
                    label=shown,
                    data=stream,
                    headers={"Content-Type": content_type},
                    timeout=aiohttp.ClientTimeout(
                        total=self._timeouts.upload, connect=self._timeouts.connect
                    ),
                )
                if status in (200, 204):
                    return
                raise HTTPStatusError(status, endpoint=shown, body_excerpt=_excerpt(body))
            except (TransportError, HTTPStatusError) as exc:
                retryable = not isinstance(exc, HTTPStatusError) or exc.is_gateway
                attempt += 1
                if not retryable or attempt > self._retry.max_retries:
                    raise
            finally:
                stream.close()
            await anyio.sleep(self._retry.delay(attempt, random.random()))

    async def download(self, url: str) -> bytes:
        """GET a result file (video or preview) in one piece."""
        status, _, body = await self._exchange(
            "GET",
            yarl.URL(url, encoded=True),
            label=redact_url(url),
            headers={},
            timeout=aiohttp.ClientTimeout(
                total=self._timeouts.upload, connect=self._timeouts.connect
            ),
        )
        if status != 200:
            raise HTTPStatusError(status, endpoint=redact_url(url), body_excerpt=_excerpt(body))
        return body


def _code_retryable(exc: APIError) -> bool:
    """Codes that mean "nothing was done, try again later"."""
    if isinstance(exc, FileNotReadyError):
        return False
    return isinstance(exc, (RateLimitError, ServerError))


def _unknown(
    cause: Exception, endpoint: Endpoint, sent_at: float, request: dict[str, Any] | None
) -> CreateOutcomeUnknown:
    return CreateOutcomeUnknown(
        str(cause),
        endpoint=endpoint.path,
        sent_at=sent_at,
        gave_up_at=time.time(),
        request=_redacted(request or {}),
    )


def _redacted(request: dict[str, Any]) -> dict[str, Any]:
    """A copy of a create body safe to show: a callback URL may carry a signature."""
    shown = dict(request)
    if isinstance(shown.get("callback"), str):
        shown["callback"] = redact_url(shown["callback"])
    return shown


def _excerpt(body: bytes) -> str:
    return body[:200].decode("utf-8", "replace").strip()


def _decode(path: str, status: int, body: bytes) -> Envelope:
    """Decode the envelope once, whatever the HTTP status (a 429 may carry code 40001).

    A body that is no envelope becomes HTTPStatusError (non-2xx, or an HTML page served with
    200) or ResponseValidationError. Neither quotes a JSON body: it may hold a token.
    """
    try:
        return Envelope.model_validate_json(body)
    except ValidationError:
        pass
    if not 200 <= status < 300 or body.lstrip()[:1] == b"<":
        excerpt = _excerpt(body) if body.lstrip()[:1] == b"<" else ""
        raise HTTPStatusError(status, endpoint=path, body_excerpt=excerpt) from None
    raise ResponseValidationError(path, f"HTTP {status} body is not a JSON envelope") from None
