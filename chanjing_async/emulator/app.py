"""The aiohttp application: the Open API routes, the signed-upload PUT and control routes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from aiohttp import hdrs, web

from ._callbacks import CallbackSender
from ._clock import http_date
from ._faults import ENDPOINTS, Fault
from ._files import HEAD_BYTES
from ._late import LATE_KEY, LateHandling, run_late_handling
from ._pipeline import RESULT_ROUTE, STATE_KEY, api_response, dumps, oss_error, pipeline
from ._protocol import CODE_BAD_FORMAT, ApiError, UploadDenied, param_error
from ._results import result_path
from ._validation import MAX_PAGE_SIZE, optional_int, parse_create, query_int
from ._voices import voice_catalogue
from .settings import EmulatorSettings
from .state import EmulatorState

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["create_app"]

SENDER_KEY = web.AppKey("chanjing_emulator_callbacks", CallbackSender)
MAX_SEEDED = 1_000_000  # tasks one POST /_emulator/tasks/seed may make

# Tiny stand-ins for result media: enough for a download to succeed and be recognised by type.
_MEDIA = {
    "mp4": (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "video/mp4"),
    "jpg": (
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9",
        "image/jpeg",
    ),
    "mp3": (b"ID3\x03\x00\x00\x00\x00\x00\x00", "audio/mpeg"),
}


def create_app(settings: EmulatorSettings | None = None) -> web.Application:
    """Build the emulator application.

    The state is at ``app[STATE_KEY]``. The callback sender runs while the application is set
    up (``AppRunner.setup()`` to ``cleanup()``); background handlings of ``gateway_late``
    faults are cancelled at ``cleanup()``. Every response carries a ``Date`` header on the
    server's clock (``clock_offset_seconds``), not aiohttp's real-clock one.

    Args:
        settings: The emulator settings; defaults apply when None.

    Returns:
        The application, ready for an ``AppRunner`` or aiohttp's test server.
    """
    state = EmulatorState(settings or EmulatorSettings())
    app = web.Application(middlewares=[pipeline])
    app[STATE_KEY] = state
    app[SENDER_KEY] = CallbackSender(state)
    app[LATE_KEY] = LateHandling()
    app.cleanup_ctx.append(_run_callback_sender)
    # Cleaned up in reverse order: late handlings stop before the sender they may schedule on.
    app.cleanup_ctx.append(run_late_handling)
    app.on_response_prepare.append(_server_date)
    # Route names are endpoint names: the pipeline keys faults, limits and stats on them.
    api_routes = (
        ("POST", "/open/v1/access_token", _access_token, "access_token"),
        ("GET", "/open/v1/common/create_upload_url", _create_upload_url, "create_upload_url"),
        ("PUT", "/_emulator/upload/{file_id}", _upload, "upload"),
        ("GET", "/open/v1/common/file_detail", _file_detail, "file_detail"),
        ("POST", "/open/v1/video_lip_sync/create", _create, "create"),
        ("GET", "/open/v1/video_lip_sync/detail", _detail, "detail"),
        ("POST", "/open/v1/video_lip_sync/list", _list, "list"),
        ("GET", "/open/v1/list_common_audio", _voices, "voices"),
    )
    router = app.router
    for method, path, handler, name in api_routes:
        router.add_route(method, path, handler, name=name)
    router.add_get("/_emulator/results/{task_id}.{ext:mp4|jpg}", _result, name=RESULT_ROUTE)
    router.add_get("/_emulator/voices/{voice_id}.{ext:mp3}", _media)
    router.add_get("/_emulator/stats", _stats)
    router.add_get("/_emulator/arrivals/{endpoint}", _arrivals)
    router.add_post("/_emulator/faults", _inject_fault)
    router.add_delete("/_emulator/faults", _clear_faults)
    router.add_post("/_emulator/tokens/revoke", _revoke_tokens)
    router.add_post("/_emulator/files/{file_id}/status", _set_file_status)
    router.add_post("/_emulator/tasks/{task_id}/status", _set_task_status)
    router.add_post("/_emulator/tasks/forget", _forget_tasks)
    router.add_post("/_emulator/tasks/seed", _seed_tasks)
    return app


async def _run_callback_sender(app: web.Application) -> AsyncIterator[None]:
    sender = asyncio.create_task(app[SENDER_KEY].run())
    yield
    sender.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sender


async def _server_date(request: web.Request, response: web.StreamResponse) -> None:
    """Stamp ``Date`` from the server's clock on every response, whatever route or error.

    aiohttp has already set it from the real clock by now; a client comparing the two clocks
    must see the skewed one, as it would in front of a live server whose clock is off.
    """
    response.headers[hdrs.DATE] = http_date(request.app[STATE_KEY].settings)


def _origin(request: web.Request) -> str:
    """The scheme and host the client used, so returned URLs work from where it stands."""
    return str(request.url.origin())


def _required_query(request: web.Request, name: str) -> str:
    value = request.query.get(name)
    if not value:
        raise param_error(name, "is required")
    return value


async def _json_object(
    request: web.Request, invalid: ApiError, *, optional: bool = False
) -> dict[str, Any]:
    """The JSON object in the body; an empty body is ``{}`` when ``optional``."""
    raw = await request.read()
    if optional and not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise invalid from None
    if not isinstance(body, dict):
        raise invalid
    return body


def _page_info(page: int, size: int, total: int) -> dict[str, int]:
    total_page = math.ceil(total / size)
    return {"page": page, "size": size, "total_count": total, "total_page": total_page}


# -- Open API -------------------------------------------------------------------------------


async def _access_token(request: web.Request) -> web.Response:
    bad_format = ApiError(CODE_BAD_FORMAT, "传入参数格式错误")  # this endpoint's own code 400
    body = await _json_object(request, bad_format)
    app_id, secret_key = body.get("app_id"), body.get("secret_key")
    if not isinstance(app_id, str) or not isinstance(secret_key, str):
        raise bad_format
    token, expire_in = request.app[STATE_KEY].issue_token(app_id, secret_key)
    return api_response({"access_token": token, "expire_in": expire_in})


async def _create_upload_url(request: web.Request) -> web.Response:
    service = _required_query(request, "service")
    name = _required_query(request, "name")
    uploads = request.app[STATE_KEY].uploads
    record = uploads.announce(service, name, _origin(request))
    return api_response(
        {
            "sign_url": uploads.sign_url(record),
            "mime_type": record.mime_type,
            "file_id": record.id,
            "full_path": record.full_path,
            "key": record.key,
        }
    )


async def _upload(request: web.Request) -> web.Response:
    uploads = request.app[STATE_KEY].uploads
    try:
        record = uploads.accept_upload(
            request.match_info["file_id"],
            request.query.get("Expires", ""),
            request.query.get("Signature", ""),
            request.headers.get("Content-Type"),
        )
    except UploadDenied as exc:
        return oss_error(403, exc.oss_code, exc.message)
    size, head = 0, b""
    if request.content.at_eof():
        # Read already (a gateway_late fault reads it before answering; once the answer is
        # sent the stream refuses reads, but read() returns its cached copy), or empty.
        body = await request.read()
        size, head = len(body), body[:HEAD_BYTES]
    else:
        # Count the bytes and keep only the first few, for the decode check: the emulator never
        # serves uploaded content.
        async for chunk in request.content.iter_any():
            if len(head) < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - len(head)]
            size += len(chunk)
    uploads.store_upload(record, size, head)
    return web.Response()


async def _file_detail(request: web.Request) -> web.Response:
    file_id = _required_query(request, "id")
    return api_response(request.app[STATE_KEY].uploads.view(file_id))


async def _create(request: web.Request) -> web.Response:
    body = await _json_object(request, param_error("body", "must be a JSON object"))
    state = request.app[STATE_KEY]
    parsed = parse_create(body, state.settings.extra_voices)
    task = state.create_task(parsed, body, _origin(request))
    if task.callback is not None:
        request.app[SENDER_KEY].schedule(task)
    return api_response(task.id)


async def _detail(request: web.Request) -> web.Response:
    task_id = _required_query(request, "id")
    return api_response(request.app[STATE_KEY].task_object(task_id))


async def _list(request: web.Request) -> web.Response:
    invalid = param_error("body", "must be a JSON object")
    body = await _json_object(request, invalid, optional=True)
    page = optional_int(body, "page", 1, None)  # documented defaults: page 1, size 10
    size = optional_int(body, "page_size", 10, MAX_PAGE_SIZE)
    tasks, total = request.app[STATE_KEY].task_page(page, size)
    return api_response({"list": tasks, "page_info": _page_info(page, size, total)})


async def _voices(request: web.Request) -> web.Response:
    page = query_int(request.query, "page", 1, None)
    size = query_int(request.query, "size", 10, MAX_PAGE_SIZE)
    voices = voice_catalogue(_origin(request))
    start = (page - 1) * size
    page_info = _page_info(page, size, len(voices))
    return api_response({"list": voices[start : start + size], "page_info": page_info})


# -- media and control routes ---------------------------------------------------------------


async def _result(request: web.Request) -> web.Response:
    """A result file; with expiring URLs, a missing, wrong or expired signature gets 403."""
    state = request.app[STATE_KEY]
    try:
        path = result_path(request.match_info["task_id"], request.match_info["ext"])
        state.results.check(path, request.query.get("Expires"), request.query.get("Signature"))
    except UploadDenied as exc:
        state.count_result_download(served=False)
        return oss_error(403, exc.oss_code, exc.message)
    if not state.succeeded(request.match_info["task_id"]):
        state.count_result_download(served=False)
        raise web.HTTPNotFound
    state.count_result_download(served=True)
    return await _media(request)


async def _media(request: web.Request) -> web.Response:
    body, content_type = _MEDIA[request.match_info["ext"]]
    return web.Response(body=body, content_type=content_type)


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].stats())


async def _arrivals(request: web.Request) -> web.Response:
    """The arrival log of one endpoint: ``[[monotonic time, accepted], ...]``, oldest first.

    Times are the emulator process's ``time.monotonic()``, the clock the limiter decides on,
    untouched by ``clock_offset_seconds``; ``time_scale`` is returned too, so a test can turn
    differences into real-scale seconds. ``monotonic_now`` and ``server_time_now`` are read
    together at this answer, so ``server_time_now - (monotonic_now - at)`` is an arrival on
    the server's wall clock (Unix seconds, offset included), comparable with ``create_time``.
    A ``gateway_late`` request arrives here when it is handled, not when its client sent it.
    """
    state = request.app[STATE_KEY]
    endpoint = request.match_info["endpoint"]
    if endpoint not in ENDPOINTS:
        return web.json_response({"error": f"unknown endpoint {endpoint!r}"}, status=404)
    arrivals = [[arrival.at, arrival.accepted] for arrival in state.arrivals(endpoint)]
    return web.json_response(
        {
            "time_scale": state.settings.time_scale,
            "arrivals": arrivals,
            "monotonic_now": time.monotonic(),
            "server_time_now": state.server_time(),
        }
    )


async def _inject_fault(request: web.Request) -> web.Response:
    try:
        fault = Fault.from_json(await request.json())
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    state = request.app[STATE_KEY]
    state.inject(fault)
    return web.json_response({"faults": [asdict(pending) for pending in state.faults]})


async def _clear_faults(request: web.Request) -> web.Response:
    request.app[STATE_KEY].clear_faults()
    return web.json_response({"faults": []})


async def _revoke_tokens(request: web.Request) -> web.Response:
    revoked = request.app[STATE_KEY].revoke_tokens()
    return web.json_response({"revoked": revoked})


async def _control_body(request: web.Request) -> dict[str, Any]:
    """The JSON object a control route was sent; ``{}`` for anything else."""
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def _set_file_status(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    file_id = request.match_info["file_id"]
    status = (await _control_body(request)).get("status")
    if type(status) is not int:
        return web.json_response({"error": 'body must be {"status": <int>}'}, status=400)
    if file_id not in state.files:
        raise web.HTTPNotFound
    state.set_file_status(file_id, status)
    return web.json_response(state.uploads.view(file_id), dumps=dumps)


async def _set_task_status(request: web.Request) -> web.Response:
    """``{"status": <int or null>, "msg": <optional str>}``: see ``set_task_status``."""
    state = request.app[STATE_KEY]
    task_id = request.match_info["task_id"]
    body = await _control_body(request)
    status, msg = body.get("status", ...), body.get("msg")
    if not (status is None or type(status) is int) or not (msg is None or isinstance(msg, str)):
        return web.json_response(
            {"error": 'body must be {"status": <int or null>, "msg": <string, optional>}'},
            status=400,
        )
    if task_id not in state.tasks:
        raise web.HTTPNotFound
    state.set_task_status(task_id, status, msg)
    return web.json_response(state.task_object(task_id), dumps=dumps)


async def _forget_tasks(request: web.Request) -> web.Response:
    return web.json_response({"forgotten": request.app[STATE_KEY].forget_tasks()})


async def _seed_tasks(request: web.Request) -> web.Response:
    """``{"count": <1..1,000,000>}``: that many tasks at once, their ids answered."""
    count = (await _control_body(request)).get("count")
    if type(count) is not int or not 1 <= count <= MAX_SEEDED:
        return web.json_response(
            {"error": f'body must be {{"count": <integer 1..{MAX_SEEDED}>}}'}, status=400
        )
    return web.json_response({"ids": request.app[STATE_KEY].seed_tasks(count, _origin(request))})
