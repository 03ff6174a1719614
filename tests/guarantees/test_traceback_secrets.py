"""Error trackers see no secret: every traceback the SDK raises, walked as Sentry walks it.

A tracker with its defaults (Sentry's ``include_local_variables``) records, for every exception
of the chain, the ``repr`` of every local of every frame of its traceback, and the exception's
own ``str``, ``repr``, ``args`` and attributes: ``tests/support/tracker.py`` collects exactly
that. Each
test below provokes one failure the SDK can raise and asserts that neither the secret key, nor
any access token the emulator issued, nor a Redis password appears anywhere in it, and that no
third-party exception (aiohttp's quotes the request headers) is kept in the chain.
"""

from __future__ import annotations

import functools
import shutil
import socket
import subprocess
import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from aiohttp import web

from chanjing_async import (
    AsyncChanjingClient,
    CallbackReceiver,
    ChanjingError,
    ConfigurationError,
    LipSyncRequest,
    RateLimits,
    RedisRateLimiter,
    RetryPolicy,
    Timeouts,
)
from chanjing_async.emulator import EmulatorServer, Fault
from chanjing_async.emulator.state import EmulatorState
from tests.support import APP_ID, VOICE, emulator_settings, job_manager
from tests.support.tracker import foreign, leaks

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
    from pathlib import Path

    from chanjing_async.emulator._faults import FaultKind
    from chanjing_async.models import LipSyncTask

pytestmark = pytest.mark.anyio

SECRET = "S3cr3t-k3y-1b7e55d0-for-trackers"
WRONG_SECRET = "Wr0ng-S3cr3t-9c04aa71-for-trackers"
# The faults that cut a read off: after handling, before, a gateway page, past the timeout.
DROPS: tuple[FaultKind, ...] = ("drop_after", "drop_before", "gateway", "latency")
REDIS_PASSWORD = "r3dis-Pa55-0e6f2b91-for-trackers"
WRONG_REDIS_PASSWORD = "wr0ng-r3dis-77d1c3a8-for-trackers"


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every access token the emulators of this test issued."""
    issued: list[str] = []
    issue = EmulatorState.issue_token

    def recording(self: EmulatorState, app_id: str, secret_key: str) -> tuple[str, int]:
        token, expire_in = issue(self, app_id, secret_key)
        issued.append(token)
        return token, expire_in

    monkeypatch.setattr(EmulatorState, "issue_token", recording)
    return issued


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def client_for(base_url: str, secret: str = SECRET, **options: Any) -> AsyncChanjingClient:
    """A test client (quick retries, scaled limits) with ``secret`` as its secret key."""
    values: dict[str, Any] = {
        "base_url": base_url,
        "limits": RateLimits().scaled(60.0),
        "retry": RetryPolicy(max_retries=1, initial=0.01, maximum=0.02),
        "timeouts": Timeouts(total=2.0, connect=1.0, create_horizon=0.5),
    }
    values.update(options)
    return AsyncChanjingClient(APP_ID, secret, **values)


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(emulator_settings(secret_key=SECRET)) as server:
        yield server


async def tts_request(client: AsyncChanjingClient, media: tuple[Path, Path]) -> LipSyncRequest:
    """A request on a freshly uploaded, ready video."""
    video = await client.files.upload(media[0], service="lip_sync_video", poll_interval=0.02)
    return LipSyncRequest.tts(video.id, text="你好", audio_man_id=VOICE)


async def caught(call: Any, *, within: float = 20.0) -> BaseException:
    """The exception ``call()`` raised (it must raise); a TimeoutError if the caller's own
    deadline, ``within`` seconds, passed first."""
    try:
        with anyio.fail_after(within):
            await call()
    except Exception as exc:
        return exc
    raise AssertionError("expected a failure")


# -- the API ----------------------------------------------------------------------------------


async def test_token_fetch_with_the_api_unreachable(tokens: list[str]) -> None:
    async with client_for(f"http://127.0.0.1:{free_port()}") as client:
        error = await caught(client.lip_sync.list)
    assert isinstance(error, ChanjingError)
    assert leaks(error, [SECRET]) == []
    assert foreign(error) == []


async def test_token_refused(emulator: EmulatorServer, tokens: list[str]) -> None:
    async with client_for(emulator.base_url, WRONG_SECRET) as wrong:
        refused = await caught(wrong.lip_sync.list)
    # A read refused with 10400 twice: the token is replaced once, then the error is raised.
    async with client_for(emulator.base_url) as client:
        await client.lip_sync.list()
        emulator.inject(Fault("list", "code", code=10400, msg="AccessToken验证失败", count=2))
        twice = await caught(client.lip_sync.list)
    assert len(tokens) == 2
    secrets = [SECRET, WRONG_SECRET, *tokens]
    assert leaks([refused, twice], secrets) == []
    assert foreign([refused, twice]) == []


async def under_faults(
    emulator: EmulatorServer, call: Callable[[], Awaitable[object]], *faults: Fault
) -> list[BaseException]:
    """The error ``call()`` raises under each fault in turn."""
    errors = []
    for fault in faults:
        emulator.inject(fault)
        errors.append(await caught(call))
        emulator.clear_faults()
    return errors


async def test_create_refused_or_ambiguous(
    emulator: EmulatorServer, tokens: list[str], media: tuple[Path, Path]
) -> None:
    async with client_for(emulator.base_url) as client:
        request = await tts_request(client, media)
        errors = await under_faults(
            emulator,
            functools.partial(client.lip_sync.create, request),
            Fault("create", "drop_after"),  # handled, unanswered: outcome unknown
            Fault("create", "drop_before"),  # sent, the connection closed: unknown
            Fault("create", "gateway", status=502),  # a gateway page: unknown
            Fault("create", "code", code=50000),  # "系统内部错误": unknown
            Fault("create", "code", code=40000, msg="参数错误"),  # refused
            Fault("create", "latency", seconds=3.0),  # timed out: unknown
        )
    assert len(errors) == 6
    assert tokens
    assert leaks(errors, [SECRET, *tokens]) == []
    assert foreign(errors) == []


@pytest.mark.slow
async def test_reads_whose_connection_drops(
    emulator: EmulatorServer, tokens: list[str], media: tuple[Path, Path]
) -> None:
    async with client_for(emulator.base_url) as client:
        task_id = await client.lip_sync.create(await tts_request(client, media))
        errors = await under_faults(
            emulator,
            functools.partial(client.lip_sync.get, task_id),
            *(Fault("detail", kind, seconds=3.0, count=None) for kind in DROPS),
        )
        errors += await under_faults(
            emulator, client.lip_sync.list, Fault("list", "drop_after", count=None)
        )
    assert len(errors) == 5
    assert leaks(errors, [SECRET, *tokens]) == []
    assert foreign(errors) == []


async def test_a_caller_deadline_during_a_request(
    emulator: EmulatorServer, tokens: list[str]
) -> None:
    """The caller's timeout cancels a request in flight: aiohttp's frames, which hold the
    request's headers and body, must not reach the tracker with the CancelledError."""
    async with client_for(emulator.base_url) as client:
        await client.voices.list()  # a token first, so the cut request carries it
        emulator.inject(Fault("voices", "latency", seconds=3.0))
        read = await caught(client.voices.list, within=0.3)
    emulator.clear_faults()
    emulator.inject(Fault("access_token", "latency", seconds=3.0))
    async with client_for(emulator.base_url) as client:
        token_call = await caught(client.voices.list, within=0.3)
    assert isinstance(read, TimeoutError)
    assert isinstance(token_call, TimeoutError)
    assert tokens
    assert leaks([read, token_call], [SECRET, *tokens]) == []


async def test_uploads_failing(
    emulator: EmulatorServer, tokens: list[str], media: tuple[Path, Path]
) -> None:
    async with client_for(emulator.base_url) as client:
        errors = await under_faults(
            emulator,
            functools.partial(
                client.files.upload, media[1], service="lip_sync_audio", poll_interval=0.02
            ),
            Fault("create_upload_url", "drop_after", count=None),
            Fault("upload", "drop_before", count=None),
            Fault("upload", "code", msg="storage refused"),
            Fault("file_detail", "drop_after", count=None),
        )
    assert len(errors) == 4
    assert leaks(errors, [SECRET, *tokens]) == []
    assert foreign(errors) == []


async def test_a_download_failing(
    tokens: list[str], tmp_path: Path, media: tuple[Path, Path]
) -> None:
    errors: list[BaseException] = []
    settings = emulator_settings(secret_key=SECRET, result_url_ttl_seconds=600.0)
    async with EmulatorServer(settings) as emulator, client_for(emulator.base_url) as client:
        task_id = await client.lip_sync.create(await tts_request(client, media))
        task = await client.lip_sync.wait(task_id, timeout=10, poll_interval=0.05)
        assert task.video_url is not None
        forged = task.model_copy(update={"video_url": task.video_url + "0"})  # a bad signature
        errors.append(await caught(lambda: client.lip_sync.download(forged, tmp_path / "a.mp4")))
        gone = emulator.base_url
    # The server is gone now: the download cannot connect.
    errors.append(await caught(lambda: download_after_close(task, tmp_path, gone)))
    assert tokens
    assert leaks(errors, [SECRET, *tokens]) == []
    assert foreign(errors) == []


async def download_after_close(task: LipSyncTask, folder: Path, base_url: str) -> Path:
    async with client_for(base_url) as client:
        return await client.lip_sync.download(task, folder / "b.mp4")


FAKE_TOKEN = "T0k3n-" + "f" * 40


async def fake_api(expire_in: object) -> web.AppRunner:
    """A loopback API that issues :data:`FAKE_TOKEN` expiring at ``expire_in`` and redirects
    every other call to itself (a redirect loop, were redirects followed)."""

    async def answer(request: web.Request) -> web.Response:
        if request.path.endswith("/access_token"):
            data = {"access_token": FAKE_TOKEN, "expire_in": expire_in}
            return web.json_response({"code": 0, "msg": "ok", "data": data})
        raise web.HTTPTemporaryRedirect(str(request.url))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


async def test_a_redirect_loop_keeps_no_request(tokens: list[str]) -> None:
    """No kept aiohttp error (its request_info quotes the headers) in the chain."""
    runner = await fake_api(2**31)
    try:
        async with client_for(f"http://127.0.0.1:{runner.addresses[0][1]}") as client:
            error = await caught(lambda: client.lip_sync.get("t1"))
    finally:
        await runner.cleanup()
    assert leaks(error, [SECRET, FAKE_TOKEN]) == []
    assert foreign(error) == []


async def test_a_token_answer_that_does_not_parse(tokens: list[str]) -> None:
    runner = await fake_api("soon")  # no Unix time: ResponseValidationError
    try:
        async with client_for(f"http://127.0.0.1:{runner.addresses[0][1]}") as client:
            error = await caught(client.lip_sync.list)
    finally:
        await runner.cleanup()
    assert type(error).__name__ == "ResponseValidationError"
    assert leaks(error, [SECRET, FAKE_TOKEN]) == []
    assert foreign(error) == []


# -- Redis ------------------------------------------------------------------------------------


SECURED = ("--appendonly", "no", "--requirepass", REDIS_PASSWORD)


class PasswordRedis:
    """A ``redis-server`` on a free loopback port that requires :data:`REDIS_PASSWORD`."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.port = free_port()
        self.process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", *SECURED],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)

    def url(self, password: str = REDIS_PASSWORD) -> str:
        return f"redis://:{password}@127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def password_redis() -> Iterator[PasswordRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PasswordRedis()
    try:
        yield server
    finally:
        server.stop()


REDIS_SECRETS = [REDIS_PASSWORD, WRONG_REDIS_PASSWORD]


async def test_redis_wrong_password_or_down(
    emulator: EmulatorServer, password_redis: PasswordRedis, tokens: list[str]
) -> None:
    errors: list[BaseException] = []
    for url in (
        password_redis.url(WRONG_REDIS_PASSWORD),  # refused by AUTH
        f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0",  # nothing listens
    ):
        client = client_for(emulator.base_url, rate_limiter=url)
        errors.append(await caught(client.__aenter__))
        await client.aclose()
    assert all(isinstance(error, ConfigurationError) for error in errors)
    assert leaks(errors, [SECRET, *REDIS_SECRETS]) == []
    assert foreign(errors) == []


@pytest.fixture
async def shared(
    emulator: EmulatorServer, password_redis: PasswordRedis, tokens: list[str]
) -> AsyncIterator[AsyncChanjingClient]:
    """A client sharing limits and token through the password-protected Redis, token fetched."""
    async with client_for(emulator.base_url, rate_limiter=password_redis.url()) as client:
        await client.lip_sync.list()
        yield client


async def test_redis_refusing_the_token_store(
    emulator: EmulatorServer, shared: AsyncChanjingClient, tokens: list[str]
) -> None:
    """A shared token refused by the API, and Redis then refusing to read the stored one."""
    emulator.inject(Fault("list", "code", code=10400, msg="AccessToken验证失败"))
    assert isinstance(shared.rate_limiter, RedisRateLimiter)
    redis = shared.rate_limiter._redis
    assert redis is not None
    key = f"{{chanjing:{APP_ID}}}:token"
    await redis.delete(key)
    await redis.lpush(key, "not a token")  # WRONGTYPE for the GET of the token store
    error = await caught(shared.lip_sync.list)
    assert isinstance(error, ConfigurationError)
    assert tokens
    assert leaks(error, [SECRET, *tokens, *REDIS_SECRETS]) == []
    assert foreign(error) == []


async def test_redis_going_down_under_a_call(
    password_redis: PasswordRedis, shared: AsyncChanjingClient, tokens: list[str]
) -> None:
    password_redis.stop()
    # Admissions wait for Redis: the caller's deadline ends the call.
    error = await caught(shared.lip_sync.list, within=0.3)
    assert isinstance(error, TimeoutError)
    assert tokens
    assert leaks(error, [SECRET, *tokens, *REDIS_SECRETS]) == []
    # The deadline's TimeoutError and the CancelledError it chains are asyncio's, not ours.


def raised_by(make: Any) -> BaseException:
    try:
        make()
    except Exception as exc:
        return exc
    raise AssertionError("expected a failure")


HMAC_SECRET = b"callback-hmac-secret-0123456789"


def test_bad_settings_next_to_secrets() -> None:
    """Settings refused while the secret key or a Redis URL is in the constructor's hands."""
    redis_url = f"redis://:{REDIS_PASSWORD}@h/0"
    errors = [
        raised_by(lambda: AsyncChanjingClient(APP_ID, SECRET, base_url="ftp://example.com")),
        raised_by(
            lambda: AsyncChanjingClient(
                APP_ID, SECRET, rate_limiter=redis_url, token_refresh_early=-1
            )
        ),
        raised_by(lambda: RedisRateLimiter(redis_url, lease=-1)),
        raised_by(lambda: RedisRateLimiter(redis_url, prefix="{x}")),
        raised_by(lambda: CallbackReceiver(secret=HMAC_SECRET, relay=redis_url, port=-1)),
        raised_by(lambda: CallbackReceiver(secret=HMAC_SECRET, relay=redis_url, relay_channel="")),
    ]
    assert all(isinstance(error, ConfigurationError) for error in errors)
    assert leaks(errors, [SECRET, REDIS_PASSWORD, HMAC_SECRET.decode()]) == []
    assert foreign(errors) == []


# -- the journal ------------------------------------------------------------------------------


async def test_a_journal_that_cannot_write(
    emulator: EmulatorServer, tokens: list[str], tmp_path: Path, media: tuple[Path, Path]
) -> None:
    async with (
        client_for(emulator.base_url) as client,
        job_manager(client, journal=tmp_path / "jobs.sqlite") as jobs,
    ):
        journal = jobs.journal
        assert journal is not None
        db = journal._db
        assert db is not None
        video = await client.files.upload(media[0], service="lip_sync_video", poll_interval=0.02)
        request = LipSyncRequest.tts(video.id, text="字" * 1200, audio_man_id=VOICE)
        with anyio.fail_after(20):
            await (await jobs.submit(request, key="before")).wait()  # the journal in use
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        db.execute(f"PRAGMA max_page_count = {pages}")  # a full disk, as SQLite really meets it
        error = await caught(lambda: jobs.submit(request, key="k"))
        db.execute("PRAGMA max_page_count = 1073741823")
    assert leaks(error, [SECRET, *tokens]) == []
    assert foreign(error) == []


def test_the_walker_finds_a_secret_in_a_local() -> None:
    """The walker itself: a secret held by a frame, or by a chained error, is found."""

    def holder() -> None:
        body = {"secret_key": SECRET}
        try:
            raise OSError("boom")
        except OSError:
            raise ValueError(body["secret_key"][:3]) from None

    with pytest.raises(ValueError, match="S3c") as raised:
        holder()
    # Found twice: in the frame of the error, and of its context (``from None`` keeps it).
    assert leaks(raised.value, [SECRET]) == [
        f"{name}: holder (test_traceback_secrets.py) local body: {SECRET[:6]}..."
        for name in ("OSError", "ValueError")
    ]
