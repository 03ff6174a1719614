"""Error trackers see no secret, continued: Redis failing under a call, a caller's deadline
inside redis-py, secrets of the wrong type or form, the CLI's config file, signed URLs.

Walked as ``tests/support/tracker.py`` walks them (every local of every frame of every chained
exception); the fixtures are those of ``tests/guarantees/test_traceback_secrets.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

import aiohttp
import anyio
import pytest
import redis.asyncio as aredis
from aiohttp import web
from pydantic import RedisDsn

from chanjing_async import (
    AsyncChanjingClient,
    CallbackReceiver,
    ConfigurationError,
    HTTPStatusError,
    RedisRateLimiter,
    RetryPolicy,
)
from chanjing_async.cli import main
from chanjing_async.cli._common import Settings, make_client
from chanjing_async.client._wire import redact_url
from chanjing_async.emulator import EmulatorServer, Fault
from chanjing_async.emulator._files import FileStore
from chanjing_async.scaleout._redis import redacted
from tests.guarantees import test_traceback_secrets as base
from tests.support import APP_ID
from tests.support.tracker import foreign, leaks

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.anyio

emulator = base.emulator
tokens = base.tokens
SECRET = base.SECRET
PASSWORD = base.REDIS_PASSWORD
HMAC_SECRET = base.HMAC_SECRET


# -- Redis failing while the token call holds its slot, or while the token is stored ---------


async def maxmemory(redis: aredis.Redis) -> None:
    """Redis full: every write refused (OOM)."""
    await redis.config_set("maxmemory-policy", "noeviction")
    await redis.config_set("maxmemory", "1")


async def wrong_type(redis: aredis.Redis) -> None:
    """The `other` group's log replaced by a key of the wrong type (WRONGTYPE)."""
    key = f"{{chanjing:{APP_ID}:other}}:log"
    await redis.delete(key)
    await redis.lpush(key, "not a log")


@pytest.mark.parametrize("sabotage", [maxmemory, wrong_type])
async def test_redis_refusing_the_token_calls_slot_release(
    emulator: EmulatorServer,
    redis_server: RedisServer,
    tokens: list[str],
    sabotage: Callable[[aredis.Redis], Awaitable[None]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The slot's exit raises while ``Transport._send`` holds the token call's answer; and
    closing the client goes on (one warning) although Redis refuses its pending writes.

    Redis is sabotaged from the session's request-start hook, which aiohttp awaits before the
    token call is sent: its slot is held then, and released only after the answer, so the
    sabotage lands between the two whatever the machine's load."""
    redis = aredis.Redis.from_url(redis_server.url)
    sabotaged: list[str] = []

    async def refuse(
        session: aiohttp.ClientSession, context: object, params: aiohttp.TraceRequestStartParams
    ) -> None:
        if params.url.path.endswith("/access_token") and not sabotaged:
            await sabotage(redis)
            sabotaged.append(params.url.path)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(refuse)
    session = aiohttp.ClientSession(trace_configs=[trace])
    client = base.client_for(
        emulator.base_url,
        rate_limiter=redis_server.url,
        retry=RetryPolicy(max_retries=0),
        session=session,
    )
    try:
        await client.__aenter__()
        error = await base.caught(client.voices.list)
        with caplog.at_level(logging.WARNING, logger="chanjing_async"):
            await client.aclose()  # must not raise
    finally:
        await session.close()
        await redis.aclose()
    assert sabotaged == ["/open/v1/access_token"]
    assert isinstance(error, ConfigurationError)
    assert "Redis refused" in str(error)
    assert tokens
    assert leaks(error, [SECRET, *tokens]) == []
    assert foreign(error) == []
    closing = [r for r in caplog.records if "closed without its pending writes" in r.message]
    assert len(closing) == 1


async def test_a_deadline_while_the_shared_token_is_stored(
    emulator: EmulatorServer, redis_server: RedisServer, tokens: list[str]
) -> None:
    """The caller's deadline cuts the SET that stores a new token: redis-py's frames (the
    SET's arguments) must not reach the tracker with the CancelledError."""
    redis = aredis.Redis.from_url(redis_server.url)
    emulator.inject(Fault("access_token", "latency", seconds=0.6))
    client = base.client_for(emulator.base_url, rate_limiter=redis_server.url)
    try:
        await client.__aenter__()

        async def pause_writes() -> None:
            await anyio.sleep(0.2)  # the token call is in flight
            await redis.client_pause(2000, all=False)

        async with anyio.create_task_group() as group:
            group.start_soon(pause_writes)
            error = await base.caught(client.voices.list, within=1.2)
        await redis.client_unpause()
    finally:
        await client.aclose()
        await redis.aclose()
    assert isinstance(error, TimeoutError)
    assert tokens
    assert leaks(error, [SECRET, *tokens]) == []


async def test_a_deadline_while_redis_authenticates(tokens: list[str]) -> None:
    """A Redis that never answers AUTH: the deadline's CancelledError crosses redis-py's
    frames that hold the password (``auth_args``)."""

    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await reader.read(65536)  # and never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    client = base.client_for(f"http://127.0.0.1:{base.free_port()}", rate_limiter=url)
    try:
        error = await base.caught(client.__aenter__, within=0.5)
    finally:
        await client.aclose()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    assert isinstance(error, TimeoutError)
    assert leaks(error, [SECRET, PASSWORD]) == []


async def test_a_token_answer_cut_short(tokens: list[str]) -> None:
    """A token answer cut off mid-body is no envelope: the error's frames keep no body."""
    cut = json.dumps({"code": 0, "data": {"access_token": base.FAKE_TOKEN, "expire_in": 9}})

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=cut[:-2].encode(), content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with base.client_for(f"http://127.0.0.1:{runner.addresses[0][1]}") as client:
            error = await base.caught(client.voices.list)
    finally:
        await runner.cleanup()
    assert type(error).__name__ == "ResponseValidationError"
    assert leaks(error, [SECRET, base.FAKE_TOKEN]) == []


# -- secrets of the wrong type or form -------------------------------------------------------

# urlsplit refuses these with a message quoting the authority, password included.
MALFORMED = [
    f"redis://:{PASSWORD}@[::1",
    f"redis://:{PASSWORD}\uff03@127.0.0.1:6379/0",  # a full-width '#', refused under NFKC
]


def test_a_malformed_redis_url() -> None:
    errors = []
    for url in MALFORMED:
        for make in (
            lambda url=url: AsyncChanjingClient(APP_ID, SECRET, rate_limiter=url),
            lambda url=url: RedisRateLimiter(url),
            lambda url=url: CallbackReceiver(secret=HMAC_SECRET, relay=url),
        ):
            errors.append(base.raised_by(make))
        assert PASSWORD not in redacted(url)
    assert all(isinstance(error, ConfigurationError) for error in errors)
    assert all(str(error).endswith(": not a valid Redis URL") for error in errors)
    assert leaks(errors, [SECRET, PASSWORD, HMAC_SECRET.decode()]) == []
    assert foreign(errors) == []


@pytest.mark.parametrize("typed", [False, True], ids=["environment", "command line"])
def test_the_cli_refuses_a_malformed_redis_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], typed: bool
) -> None:
    monkeypatch.setenv("CHANJING_SECRET_KEY", SECRET)
    root = ["--app-id", APP_ID, "--base-url", f"http://127.0.0.1:{base.free_port()}"]
    for url in MALFORMED:
        if typed:
            code = main([*root, "--redis-url", url, "voices"])
        else:
            monkeypatch.setenv("CHANJING_REDIS_URL", url)
            code = main([*root, "voices"])
        out, err = capsys.readouterr()
        assert code == 2, err
        assert "error: --redis-url: not a valid Redis URL" in err
        assert "Traceback" not in err
        assert PASSWORD not in out + err
        assert SECRET not in out + err


def test_secrets_of_the_wrong_type() -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:6379/0"
    errors = [
        base.raised_by(lambda: AsyncChanjingClient(APP_ID, SECRET, rate_limiter=RedisDsn(url))),  # type: ignore[arg-type]
        base.raised_by(lambda: AsyncChanjingClient(APP_ID, SECRET, rate_limiter=url.encode())),  # type: ignore[arg-type]
        base.raised_by(lambda: AsyncChanjingClient(APP_ID, SECRET.encode())),  # type: ignore[arg-type]
        base.raised_by(lambda: RedisRateLimiter(RedisDsn(url))),  # type: ignore[arg-type]
    ]
    assert leaks(errors, [SECRET, PASSWORD]) == []
    assert [str(error) for error in errors] == [
        "rate_limiter: must be a str or SecretStr or RedisRateLimiter, or None, not RedisDsn",
        "rate_limiter: must be a str or SecretStr or RedisRateLimiter, or None, not bytes",
        "secret_key: must be a str or SecretStr, or None, not bytes",
        "rate_limiter: must be a str or SecretStr, or None, not RedisDsn",
    ]


@pytest.mark.parametrize(
    "content",
    [
        f'{{"secret_key": "{SECRET}",'.encode(),
        f'{{"secret_key": "{SECRET}\xff"}}'.encode("latin-1"),
    ],
    ids=["not JSON", "not UTF-8"],
)
def test_a_config_file_that_does_not_parse(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: bytes
) -> None:
    """Its parse error holds the whole text (``JSONDecodeError.doc``, the bytes of a
    ``UnicodeDecodeError``): the error raised keeps neither."""
    for name in ("CHANJING_APP_ID", "CHANJING_SECRET_KEY", "CHANJING_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    config = tmp_path / ".chanjing" / "config.json"
    config.parent.mkdir()
    config.write_bytes(content)
    config.chmod(0o600)
    error = base.raised_by(lambda: make_client(Settings()))
    assert isinstance(error, ConfigurationError)
    assert str(error).startswith(f"{config}: ")
    assert leaks(error, [SECRET]) == []
    assert foreign(error) == []


# -- signed URLs -----------------------------------------------------------------------------


async def test_a_failed_upload_keeps_no_signed_url(
    emulator: EmulatorServer,
    tokens: list[str],
    media: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    signed: list[str] = []
    sign = FileStore.sign_url

    def recording(self: FileStore, record: object) -> str:
        url = sign(self, record)  # type: ignore[arg-type]
        signed.append(url)
        return url

    monkeypatch.setattr(FileStore, "sign_url", recording)
    emulator.inject(Fault("upload", "code", msg="storage refused", count=None))
    async with base.client_for(emulator.base_url) as client:
        error = await base.caught(
            lambda: client.files.upload(media[0], service="lip_sync_video", poll_interval=0.02)
        )
    assert isinstance(error, HTTPStatusError)
    assert signed
    queries = [url.split("?", 1)[1] for url in signed]
    assert leaks(error, [SECRET, *tokens, *queries]) == []


def test_a_shown_url_keeps_no_credentials() -> None:
    shown = redact_url("https://user:S3cretPw@storage.example:8443/v.mp4?Signature=abc")
    assert shown == "https://storage.example:8443/v.mp4?<redacted>"
