"""The request pipeline every API endpoint shares: trips, faults, latency, auth, limits, counts."""

from __future__ import annotations

import asyncio
import functools
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ._faults import ENDPOINTS, GATEWAY_REASONS, Fault, gateway_page
from ._late import LATE_KEY
from ._protocol import CODE_OK, CODE_RATE, ApiError, envelope
from .state import EmulatorState

if TYPE_CHECKING:
    from aiohttp.typedefs import Handler

STATE_KEY = web.AppKey("chanjing_emulator_state", EmulatorState)
# Endpoints reached without an access_token: the token endpoint itself, and the PUT, which is
# authorised by its URL signature instead.
UNAUTHENTICATED = frozenset({"access_token", "upload"})
# Name of the result download route: no endpoint, but it takes the network trips.
RESULT_ROUTE = "result_download"

dumps = functools.partial(json.dumps, ensure_ascii=False)


def api_response(data: Any, code: int = CODE_OK, msg: str = "success") -> web.Response:
    """An HTTP 200 answer carrying the envelope; business errors are in ``code``, not the status."""
    return web.json_response(envelope(data, code, msg), dumps=dumps)


def oss_error(status: int, code: str, message: str) -> web.Response:
    """An object-storage style XML error, as the signed-URL host answers a refused PUT."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n'
        f"  <Code>{code}</Code>\n  <Message>{message}</Message>\n"
        "  <RequestId>emulator</RequestId>\n  <HostId>emulator</HostId>\n</Error>\n"
    )
    return web.Response(status=status, text=body, content_type="application/xml")


@web.middleware
async def pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run an API request through trip in → faults → latency → auth → limit → handler → trip out.

    Every request is counted. The trips are the random network latency (``latency_base_seconds``
    and friends), one independent draw each way, so the server sees the request arrive late and
    the client sees the answer later still. Result downloads take the two trips but nothing
    else; the other routes that are not endpoints (the ``/_emulator`` control routes) pass
    through untouched and uncounted. A ``"gateway_late"`` fault answers its page like
    ``"gateway"`` and leaves auth, limit and handler to a background task (see ``_late``).
    """
    endpoint = request.match_info.route.name
    if endpoint not in ENDPOINTS:
        if endpoint != RESULT_ROUTE:
            return await handler(request)
        network = request.app[STATE_KEY].network
        await network.trip()
        result = await handler(request)
        await network.trip()
        return result
    state = request.app[STATE_KEY]
    if endpoint != "upload":
        # The whole request has arrived before any delay (aiohttp caches the body for the
        # handler), so one whose client gives up during the delay is still handled, as a
        # real server would: this is what makes a timed-out create ambiguous.
        await request.read()
    await state.network.trip()
    stats = state.endpoint_stats(endpoint)
    stats.requests += 1
    fault = state.take_fault(endpoint)
    code = CODE_OK
    if fault is None or fault.kind in ("latency", "drop_after"):
        if fault is not None:
            await asyncio.sleep(fault.seconds)
        code, response = await _handle(request, handler, endpoint, state)
    elif fault.kind == "code":
        code, response = fault.code, _code_fault(endpoint, fault)
    elif fault.kind in ("gateway", "gateway_late"):
        if fault.kind == "gateway_late":
            # The handler runs after this answer was sent, when the connection may be gone:
            # the body must be in memory first (the PUT's, not yet read, too; see _upload).
            await request.read()
            late = _handle_late(request, handler, endpoint, state, fault.seconds)
            request.app[LATE_KEY].start(late)
        response = web.Response(
            status=fault.status,
            reason=GATEWAY_REASONS[fault.status],
            text=gateway_page(fault.status),
            content_type="text/html",
        )
    else:  # drop_before: nothing is handled, and nothing will be sent
        response = web.Response()
    dropped = fault is not None and fault.kind in ("drop_before", "drop_after")
    if dropped and request.transport is not None:
        # Abort rather than close: the client sees the connection die with no response.
        request.transport.abort()
    if code == CODE_RATE:
        stats.rejected_40001 += 1
    elif code != CODE_OK or response.status >= 400 or dropped:
        stats.errors += 1
    if not dropped:
        await state.network.trip()
    return response


async def _handle(
    request: web.Request, handler: Handler, endpoint: str, state: EmulatorState
) -> tuple[int, web.StreamResponse]:
    settings = state.settings
    # Latency models the API server; the PUT goes to object storage.
    if settings.latency_seconds and endpoint != "upload":
        await asyncio.sleep(settings.scaled(settings.latency_seconds))
    try:
        if endpoint not in UNAUTHENTICATED:
            state.check_token(request.headers.get("access_token"))
        state.admit(endpoint)
        return CODE_OK, await handler(request)
    except ApiError as exc:
        return exc.code, api_response(None, exc.code, exc.msg)


async def _handle_late(
    request: web.Request, handler: Handler, endpoint: str, state: EmulatorState, delay: float
) -> None:
    """Handle a request the gateway already answered, ``delay`` wall seconds after its arrival.

    Token, limit and handler all see this later moment, as the origin would; the response is
    thrown away (its client has its gateway page). The stats count the handling as it ends.
    """
    await asyncio.sleep(delay)
    code, _ = await _handle(request, handler, endpoint, state)
    stats = state.endpoint_stats(endpoint)
    stats.handled_late += 1
    if code == CODE_RATE:
        stats.rejected_40001 += 1


def _code_fault(endpoint: str, fault: Fault) -> web.Response:
    if endpoint == "upload":
        # Object storage knows no envelope; it answers a server error in XML.
        return oss_error(500, "InternalError", fault.msg)
    return api_response(None, fault.code, fault.msg)
