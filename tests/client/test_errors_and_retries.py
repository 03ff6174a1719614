"""Every error code path, the retry rules, and the rule that create is never retried blindly."""

from __future__ import annotations

import socket
import traceback
from typing import TYPE_CHECKING

import anyio
import pytest

from chanjing_async import (
    APIError,
    AsyncChanjingClient,
    CreateOutcomeUnknown,
    HTTPStatusError,
    InvalidRequestError,
    LipSyncRequest,
    Rate,
    RateLimitError,
    RateLimits,
    RetryPolicy,
    ServerError,
    Timeouts,
    TransportError,
)
from chanjing_async.emulator import EmulatorServer, Fault
from tests.support import Proxy, make_client

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


def requests_to(emulator: EmulatorServer, endpoint: str) -> int:
    count: int = emulator.state.stats()["endpoints"][endpoint]["requests"]
    return count


def tasks_created(emulator: EmulatorServer) -> int:
    count: int = emulator.state.stats()["tasks_created"]
    return count


def audio_request(files: tuple[str, str]) -> LipSyncRequest:
    return LipSyncRequest.audio(files[0], audio_file_id=files[1])


# -- reads: typed errors and retries -----------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error", "attempts"),
    [
        (40000, InvalidRequestError, 1),  # the caller's mistake: never retried
        (400, InvalidRequestError, 1),
        (50000, ServerError, 3),  # retried up to max_retries, then raised
        (51000, ServerError, 3),
        (40001, RateLimitError, 3),
        (12345, APIError, 1),  # unknown codes are plain APIError, not retried
    ],
)
async def test_read_error_codes_map_to_typed_errors(
    client: AsyncChanjingClient,
    emulator: EmulatorServer,
    code: int,
    error: type[APIError],
    attempts: int,
) -> None:
    emulator.inject(Fault(endpoint="voices", kind="code", code=code, msg="boom", count=None))
    with pytest.raises(error) as caught:
        await client.voices.list()
    assert type(caught.value) is error
    assert caught.value.code == code
    assert caught.value.msg == "boom"
    assert len(caught.value.trace_id) == 32
    assert caught.value.trace_id in str(caught.value)
    assert requests_to(emulator, "voices") == attempts


@pytest.mark.parametrize("code", [50000, 40001])
async def test_transient_read_errors_are_retried_to_success(
    client: AsyncChanjingClient, emulator: EmulatorServer, code: int
) -> None:
    emulator.inject(Fault(endpoint="list", kind="code", code=code, count=2))
    page = await client.lip_sync.list()
    assert page.page_info.total_count == 0
    assert requests_to(emulator, "list") == 3


@pytest.mark.parametrize("status", [502, 503, 504, 524])
async def test_gateway_pages_are_retried_then_raised(
    client: AsyncChanjingClient, emulator: EmulatorServer, status: int
) -> None:
    emulator.inject(Fault(endpoint="detail", kind="gateway", status=status, count=1))
    with pytest.raises(InvalidRequestError):  # the retry reached the server: unknown id
        await client.lip_sync.get("0" * 32)
    emulator.inject(Fault(endpoint="detail", kind="gateway", status=status, count=None))
    with pytest.raises(HTTPStatusError) as caught:
        await client.lip_sync.get("0" * 32)
    assert caught.value.status == status
    assert caught.value.is_gateway
    assert "<" in caught.value.body_excerpt
    assert requests_to(emulator, "detail") == 2 + 3


@pytest.mark.parametrize("kind", ["drop_before", "drop_after"])
async def test_dropped_read_connections_are_retried(
    client: AsyncChanjingClient, emulator: EmulatorServer, kind: str
) -> None:
    emulator.inject(Fault(endpoint="voices", kind=kind, count=1))  # type: ignore[arg-type]
    assert (await client.voices.list()).items
    assert requests_to(emulator, "voices") == 2


async def test_a_slow_read_times_out_and_is_retried(emulator: EmulatorServer) -> None:
    emulator.inject(Fault(endpoint="voices", kind="latency", seconds=1.0, count=1))
    async with make_client(emulator.base_url, timeouts=Timeouts(total=0.2, connect=0.2)) as client:
        assert (await client.voices.list()).items
    assert requests_to(emulator, "voices") == 2


async def test_unreachable_server_is_a_transport_error_marked_not_sent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with make_client(f"http://127.0.0.1:{port}") as client:
        with pytest.raises(TransportError) as caught:
            await client.voices.list()
    assert caught.value.sent is False


async def test_upload_put_is_retried_after_a_gateway_page(
    client: AsyncChanjingClient, emulator: EmulatorServer, media: tuple[Path, Path]
) -> None:
    emulator.inject(Fault(endpoint="upload", kind="gateway", status=503, count=1))
    detail = await client.files.upload(media[0], service="lip_sync_video", poll_interval=0.02)
    assert detail.is_ready
    assert requests_to(emulator, "upload") == 2


# -- create: never retried blindly --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["drop_after", "drop_before"])
async def test_create_with_a_dropped_connection_is_not_resent(
    client: AsyncChanjingClient, emulator: EmulatorServer, files: tuple[str, str], kind: str
) -> None:
    emulator.inject(Fault(endpoint="create", kind=kind, count=1))  # type: ignore[arg-type]
    before = anyio.current_time()
    with pytest.raises(CreateOutcomeUnknown) as caught:
        await client.lip_sync.create(audio_request(files))
    assert requests_to(emulator, "create") == 1
    # drop_after: the server created the task; drop_before: it did not. Either way, one attempt.
    assert tasks_created(emulator) == (1 if kind == "drop_after" else 0)
    unknown = caught.value
    assert unknown.sent_at <= unknown.gave_up_at
    assert unknown.request["video_file_id"] == files[0]
    assert "reconcile" in str(unknown)
    assert anyio.current_time() - before < 1


async def test_create_timeout_is_ambiguous_and_holds_its_slot(
    emulator: EmulatorServer, files: tuple[str, str]
) -> None:
    emulator.inject(Fault(endpoint="create", kind="latency", seconds=0.5, count=1))
    # One create per 0.1 s, so the limiter's next free time shows how long the slot is held.
    limits = RateLimits(create=Rate(1, 0.1))
    timeouts = Timeouts(total=0.2, connect=0.2)
    async with make_client(emulator.base_url, timeouts=timeouts, limits=limits) as client:
        with pytest.raises(CreateOutcomeUnknown, match="timed out"):
            await client.lip_sync.create(audio_request(files))
        gave_up = anyio.current_time()
        # The request may still reach the server: it stays counted for one more timeout.
        assert client.limiters.create.next_free() >= gave_up + 0.2 + 0.1 - 0.01
    assert requests_to(emulator, "create") == 1
    await anyio.sleep(0.5)  # the server finishes the slow request after the client gave up
    assert tasks_created(emulator) == 1


@pytest.mark.parametrize(
    ("fault", "shown"),
    [
        (Fault(endpoint="create", kind="gateway", status=502), "HTTP 502"),
        (Fault(endpoint="create", kind="gateway", status=524), "HTTP 524"),
        # "系统内部错误" does not prove that no task was created: reconcile, never resend.
        (Fault(endpoint="create", kind="code", code=50000), "code 50000"),
        (Fault(endpoint="create", kind="code", code=51000), "code 51000"),
    ],
)
async def test_create_answered_by_a_gateway_page_or_internal_error_is_ambiguous(
    client: AsyncChanjingClient,
    emulator: EmulatorServer,
    files: tuple[str, str],
    fault: Fault,
    shown: str,
) -> None:
    emulator.inject(fault)
    with pytest.raises(CreateOutcomeUnknown, match=shown):
        await client.lip_sync.create(audio_request(files))
    assert requests_to(emulator, "create") == 1


async def test_create_refused_with_40001_is_retried(
    client: AsyncChanjingClient, emulator: EmulatorServer, files: tuple[str, str]
) -> None:
    emulator.inject(Fault(endpoint="create", kind="code", code=40001, count=1))
    task_id = await client.lip_sync.create(audio_request(files))
    assert task_id in emulator.state.tasks
    assert requests_to(emulator, "create") == 2
    assert tasks_created(emulator) == 1


async def test_a_real_40001_penalizes_the_limiter_and_the_job_still_goes_through(
    emulator: EmulatorServer, files: tuple[str, str]
) -> None:
    # Another program on the same app id spends the whole create window first.
    async with make_client(emulator.base_url) as other:
        for _ in range(10):
            await other.lip_sync.create(audio_request(files))
    async with make_client(emulator.base_url) as client:
        task_id = await client.lip_sync.create(audio_request(files))
    assert task_id in emulator.state.tasks
    arrivals = emulator.state.arrivals("create")
    assert [arrival.accepted for arrival in arrivals] == [True] * 10 + [False, True]
    window = 60 / 60  # the create window at time scale 60
    assert arrivals[-1].at - arrivals[-2].at >= window


async def test_create_parameter_errors_are_not_retried(
    client: AsyncChanjingClient, emulator: EmulatorServer, files: tuple[str, str]
) -> None:
    emulator.inject(Fault(endpoint="create", kind="code", code=40000, msg="参数错误", count=1))
    with pytest.raises(InvalidRequestError):
        await client.lip_sync.create(audio_request(files))
    assert requests_to(emulator, "create") == 1


@pytest.mark.parametrize("msg", ["没有找到对应的声音ID", "声音ID对应的audio_man不存在或被禁用"])
async def test_create_refused_for_its_voice_with_50000_created_nothing(
    client: AsyncChanjingClient, emulator: EmulatorServer, files: tuple[str, str], msg: str
) -> None:
    # The TTS page's answer to an unknown or disabled voice: not "系统内部错误", so not ambiguous.
    emulator.inject(Fault(endpoint="create", kind="code", code=50000, msg=msg, count=1))
    with pytest.raises(InvalidRequestError, match=msg):
        await client.lip_sync.create(audio_request(files))
    assert requests_to(emulator, "create") == 1
    assert client.lip_sync.ledger.open_attempts == []  # not ambiguous


async def test_create_is_retried_when_the_connection_was_never_established(
    emulator: EmulatorServer, files: tuple[str, str]
) -> None:
    retry = RetryPolicy(max_retries=3, initial=0.3, maximum=0.3)
    async with Proxy(emulator.base_url) as proxy, make_client(proxy.url, retry=retry) as client:
        await client.voices.list()  # a token and a pooled connection, before the outage
        await proxy.stop_listening()
        started = anyio.current_time()
        async with anyio.create_task_group() as group:

            async def reopen_soon() -> None:
                await anyio.sleep(0.1)
                await proxy.listen()

            group.start_soon(reopen_soon)
            task_id = await client.lip_sync.create(audio_request(files))
        assert anyio.current_time() - started >= 0.15  # it waited one backoff delay
    assert task_id in emulator.state.tasks
    assert requests_to(emulator, "create") == 1
    assert tasks_created(emulator) == 1


async def test_a_failed_upload_never_shows_the_signed_query(
    client: AsyncChanjingClient, emulator: EmulatorServer, media: tuple[Path, Path]
) -> None:
    emulator.inject(Fault(endpoint="upload", kind="drop_before", count=None))
    with pytest.raises(TransportError) as caught:
        await client.files.upload(media[0], service="lip_sync_video")
    # aiohttp's own exceptions quote the full URL: they are not chained.
    assert caught.value.__cause__ is None
    shown = "".join(traceback.format_exception(caught.value))
    assert "/_emulator/upload/" in shown
    assert "Signature" not in shown
    assert "OSSAccessKeyId" not in shown
