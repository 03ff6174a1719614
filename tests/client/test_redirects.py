"""API calls and signed-URL uploads never follow a redirect: nothing reaches the other origin.

A loopback "front" server answers like the API, except that the endpoint under test answers a
redirect to a second loopback origin that counts every request it gets. Followed, the redirect
would deliver the ``access_token`` header there (or, on the token call, re-post the secret key);
not followed, the call fails with a typed :class:`RedirectError` that shows where it pointed
without its query, and is not retried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from chanjing_async import (
    AsyncChanjingClient,
    CreateOutcomeUnknown,
    HTTPStatusError,
    LipSyncRequest,
    RateLimits,
    RetryPolicy,
)
from chanjing_async.errors import RedirectError
from tests.support import APP_ID, VOICE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

pytestmark = pytest.mark.anyio

SECRET = "redirect-secret-4e2a9b17"
TOKEN = "redirect-token-" + "7" * 40
QUERY_SECRET = "sig-0f3c51d2"
API = "/open/v1"


@dataclass
class Origin:
    """A loopback server; ``seen`` lists every request it got as (method, path, headers)."""

    runner: web.AppRunner
    url: str
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


async def serve(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None,
) -> Origin:
    origin: Origin | None = None

    async def record(request: web.Request) -> web.StreamResponse:
        assert origin is not None
        origin.seen.append((request.method, request.path, dict(request.headers)))
        await request.read()
        if handler is None:
            return web.json_response({"code": 0, "msg": "ok", "data": None})
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    origin = Origin(runner, f"http://127.0.0.1:{runner.addresses[0][1]}")
    return origin


def envelope(data: object) -> web.Response:
    return web.json_response({"code": 0, "msg": "success", "data": data, "trace_id": "t"})


@pytest.fixture
async def elsewhere() -> AsyncIterator[Origin]:
    """The origin a redirect points to: it must never be reached."""
    origin = await serve()
    yield origin
    await origin.runner.cleanup()


async def front(redirected: str, status: int, target: Origin) -> Origin:
    """A fake API answering ``status`` (a redirect to ``target``) on the path ``redirected``."""
    origin: Origin | None = None

    async def api(request: web.Request) -> web.StreamResponse:
        assert origin is not None
        if request.path == redirected:
            location = f"{target.url}{request.path}?{QUERY_SECRET}=1"
            return web.Response(status=status, headers={"Location": location})
        if request.path == f"{API}/access_token":
            return envelope({"access_token": TOKEN, "expire_in": 2**31})
        if request.path == f"{API}/common/create_upload_url":
            return envelope(
                {
                    "sign_url": f"{origin.url}/upload/f1?Signature=abc",
                    "mime_type": "audio/wav",
                    "file_id": "f1",
                }
            )
        return envelope(None)

    origin = await serve(api)
    return origin


def client_of(origin: Origin) -> AsyncChanjingClient:
    return AsyncChanjingClient(
        APP_ID,
        SECRET,
        base_url=origin.url,
        limits=RateLimits().scaled(60.0),
        retry=RetryPolicy(max_retries=2, initial=0.01, maximum=0.02),
    )


def calls(origin: Origin, path: str) -> int:
    return sum(1 for _, seen, _ in origin.seen if seen == path)


def check_refused(error: RedirectError, status: int, elsewhere: Origin, path: str) -> None:
    assert elsewhere.seen == []  # no credential, no file, no request went there
    assert error.status == status
    assert error.location == f"{elsewhere.url}{path}?<redacted>"
    assert QUERY_SECRET not in str(error)
    assert "not followed" in str(error)
    assert isinstance(error, HTTPStatusError)
    assert error.__context__ is None
    assert SECRET not in repr(error)
    assert TOKEN not in repr(error)


async def test_the_token_call_does_not_follow_a_redirect(elsewhere: Origin) -> None:
    api = await front(f"{API}/access_token", 307, elsewhere)
    try:
        async with client_of(api) as client:
            with pytest.raises(RedirectError) as raised:
                await client.voices.list()
    finally:
        await api.runner.cleanup()
    check_refused(raised.value, 307, elsewhere, f"{API}/access_token")
    assert calls(api, f"{API}/access_token") == 1  # not retried either


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_read_does_not_follow_a_redirect(elsewhere: Origin, status: int) -> None:
    api = await front(f"{API}/video_lip_sync/detail", status, elsewhere)
    try:
        async with client_of(api) as client:
            with pytest.raises(RedirectError) as raised:
                await client.lip_sync.get("task-1")
    finally:
        await api.runner.cleanup()
    check_refused(raised.value, status, elsewhere, f"{API}/video_lip_sync/detail")
    assert calls(api, f"{API}/video_lip_sync/detail") == 1


async def test_a_create_answered_with_a_redirect_created_nothing(elsewhere: Origin) -> None:
    api = await front(f"{API}/video_lip_sync/create", 307, elsewhere)
    try:
        async with client_of(api) as client:
            with pytest.raises(RedirectError) as raised:
                await client.lip_sync.create(LipSyncRequest.tts("v1", text="x", audio_man_id=VOICE))
    finally:
        await api.runner.cleanup()
    assert not isinstance(raised.value, CreateOutcomeUnknown)
    check_refused(raised.value, 307, elsewhere, f"{API}/video_lip_sync/create")
    assert calls(api, f"{API}/video_lip_sync/create") == 1


async def test_a_signed_url_upload_does_not_follow_a_redirect(
    elsewhere: Origin, tmp_path: Path
) -> None:
    audio = tmp_path / "speech.wav"
    audio.write_bytes(b"RIFF" + bytes(512))
    api = await front("/upload/f1", 307, elsewhere)
    try:
        async with client_of(api) as client:
            with pytest.raises(RedirectError) as raised:
                await client.files.upload(audio, service="lip_sync_audio")
    finally:
        await api.runner.cleanup()
    check_refused(raised.value, 307, elsewhere, "/upload/f1")
    assert calls(api, "/upload/f1") == 1
