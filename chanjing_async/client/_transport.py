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

**Redirects are never followed**: a redirect would carry the ``access_token`` header, or the
token call's secret key, to the host it names. A 3xx raises ``RedirectError`` (``Location``
without its query), is not retried, and counts as refused in front of the API (a create so
answered created nothing). Signed-URL PUTs follow none either: the URL names the storage host
the API chose, which answers a PUT itself; a redirect would send the file and its signature on.

Logs go to ``logging.getLogger("chanjing_async")`` at DEBUG and never contain the token, the
secret key, request bodies or signed-URL query strings. For error trackers, the token and the
secret key stay SecretStr in every frame here (``_wire``), as does a signed upload URL; an
answer's body and its envelope's ``data`` stay out of every ``repr``; every error is raised
outside the ``except`` block of its cause: no ``__context__``, no aiohttp exception in any chain.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, Protocol
from urllib.parse import urlsplit

import aiohttp
import anyio
from pydantic import SecretStr, ValidationError

from ..errors import (
    APIError,
    AuthenticationError,
    ChanjingError,
    CreateOutcomeUnknown,
    FileNotReadyError,
    HTTPStatusError,
    RateLimitError,
    RedirectError,
    RequestTimeoutError,
    ResponseValidationError,
    ServerError,
    TransportError,
    error_for_code,
)
from ..models import Envelope
from . import _wire
from ._connect_failures import cannot_connect

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping
    from pathlib import Path

    from ..limits._limits import Limiters, RateLimiter, Slot
    from ._clock import ServerClock
    from ._config import RetryPolicy, Timeouts

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

    async def token(self) -> SecretStr:
        """The current valid token, fetching one if needed."""
        ...

    async def invalidate(self, token: SecretStr) -> None:
        """Report ``token`` as refused; the next :meth:`token` returns a newer one."""
        ...


def redact_url(url: str) -> str:
    """The URL without its query string (signed URLs carry their signature there) and without
    the ``user:password@`` of its authority."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    origin = f"{parts.scheme}://{host}" if parts.scheme or parts.netloc else ""
    return f"{origin}{parts.path}" + ("?<redacted>" if parts.query else "")


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
            except (APIError, TransportError, HTTPStatusError) as exc:
                error: ChanjingError = exc
            # Decided outside the except block: whatever is raised chains nothing.
            if isinstance(error, APIError) and error.code in _AUTH_CODES and token is not None:
                assert auth is not None
                if refreshed:
                    raise _refused_token(error)
                # One forced refresh, then one retry (reference §3.2). Not counted as a
                # retry: the request was refused before it could do anything.
                refreshed = True
                await auth.invalidate(token)
                if slot is not None:
                    raise _refused_token(error)
                continue
            if slot is not None or not _retryable(error):
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
            envelope: Envelope | None = None
            try:
                answer = await self._exchange(
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
                answered = envelope.code not in _UNKNOWN_CODES or not create
            except TransportError as exc:
                failure: ChanjingError | None = exc
                if not exc.sent:
                    held.discard()  # nothing left this machine: the server counted nothing
                elif create:
                    failure = _unknown(exc, endpoint, sent_at, json)
                elif isinstance(exc, RequestTimeoutError):
                    # The request may still reach the server after we gave up: keep counting it.
                    held.hold(self._timeouts.total)
            except (HTTPStatusError, ResponseValidationError) as exc:
                # A gateway page or a garbled body says nothing about what the origin did, but a
                # 3xx or 4xx page without an envelope was refused in front of it.
                failure = exc
                if create and not _refused_in_front(exc):
                    failure = _unknown(exc, endpoint, sent_at, json)
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
    ) -> _Answer:
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
                    return _Answer(
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
                answer = await self._exchange(
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
                    answer.status, endpoint=shown, body_excerpt=_excerpt(answer.body)
                )
            except (TransportError, HTTPStatusError) as exc:
                failure = exc
            finally:
                stream.close()
            attempt += 1
            if not _retryable(failure) or attempt > self._retry.max_retries:
                raise failure  # outside the except block: it chains nothing
            await anyio.sleep(self._retry.delay(attempt, random.random()))


def _retryable(error: ChanjingError) -> bool:
    """Worth another attempt: a transport failure, a gateway page, or a code that means
    "nothing was done, try again later"."""
    if isinstance(error, HTTPStatusError):
        return error.is_gateway
    if isinstance(error, APIError):
        return isinstance(error, (RateLimitError, ServerError)) and not isinstance(
            error, FileNotReadyError
        )
    return isinstance(error, TransportError)


def _refused_token(error: APIError) -> AuthenticationError:
    """A token refused again after one refresh, or refused while sending in a caller's slot."""
    return AuthenticationError(
        error.code, error.msg, trace_id=error.trace_id, endpoint=error.endpoint
    )


def _refused_in_front(error: ChanjingError) -> bool:
    """A page without an envelope that refused the request before the API saw it: a redirect
    (never followed) or a 4xx."""
    return isinstance(error, HTTPStatusError) and 300 <= error.status < 500


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


@dataclass(frozen=True)
class _Answer:
    """An HTTP answer; its ``repr`` leaves the body out (a token call's body holds a token)."""

    status: int
    date: str | None
    body: bytes = field(repr=False)


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
    excerpt = _excerpt(body) if page else ""
    del body
    if not 200 <= status < 300 or page:
        raise HTTPStatusError(status, endpoint=path, body_excerpt=excerpt)
    raise ResponseValidationError(path, f"HTTP {status} body is not a JSON envelope")
