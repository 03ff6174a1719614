"""The client over loopback against the emulator: configuration, every endpoint, the lifecycle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import pytest

from chanjing_async import (
    AsyncChanjingClient,
    AuthenticationError,
    ConfigurationError,
    FileNotReadyError,
    InvalidInputError,
    InvalidRequestError,
    LipSyncRequest,
    TaskStatus,
    UploadError,
)
from chanjing_async.emulator import EmulatorServer
from tests.support import (
    APP_ID,
    SECRET_KEY,
    SEED_EXAMPLE,
    VOICE,
    CallbackRecorder,
    emulator_settings,
    make_client,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


def total_requests(emulator: EmulatorServer) -> int:
    return sum(e["requests"] for e in emulator.state.stats()["endpoints"].values())


# -- configuration ---------------------------------------------------------------------------


def test_missing_credentials_name_the_environment_variables() -> None:
    with pytest.raises(ConfigurationError, match=r"CHANJING_APP_ID.*CHANJING_SECRET_KEY"):
        AsyncChanjingClient()


def test_credentials_and_base_url_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHANJING_APP_ID", "env-app")
    monkeypatch.setenv("CHANJING_SECRET_KEY", "env-secret")
    monkeypatch.setenv("CHANJING_BASE_URL", "http://127.0.0.1:9/")
    client = AsyncChanjingClient()
    assert client.app_id == "env-app"
    assert client.base_url == "http://127.0.0.1:9"
    monkeypatch.delenv("CHANJING_BASE_URL")
    assert AsyncChanjingClient().base_url == "https://open-api.chanjing.cc"


def test_a_bad_base_url_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="base_url='ftp://x'"):
        AsyncChanjingClient("a", "b", base_url="ftp://x")


def test_the_secret_never_shows_in_repr_or_vars() -> None:
    client = AsyncChanjingClient("my-app", "very-secret-value")
    assert "very-secret-value" not in repr(client)
    assert "very-secret-value" not in repr(vars(client))


async def test_lifecycle_no_reopen_idempotent_close(emulator: EmulatorServer) -> None:
    client = make_client(emulator.base_url)
    with pytest.raises(RuntimeError, match="not open yet"):
        await client.voices.list()
    async with client:
        assert (await client.voices.list()).items
    await client.aclose()
    with pytest.raises(RuntimeError, match="cannot be reopened"):
        await client.__aenter__()
    with pytest.raises(RuntimeError, match="closed"):
        await client.voices.list()


async def test_a_callers_session_stays_open(emulator: EmulatorServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with make_client(emulator.base_url, session=session) as client:
            await client.voices.list()
        assert not session.closed


# -- files -----------------------------------------------------------------------------------


async def test_upload_waits_until_ready(
    client: AsyncChanjingClient, emulator: EmulatorServer, media: tuple[Path, Path]
) -> None:
    detail = await client.files.upload(media[0], service="lip_sync_video", poll_interval=0.02)
    assert detail.is_ready
    assert detail.service == "lip_sync_video"
    assert detail.bytes == media[0].stat().st_size
    assert (await client.files.get(detail.id)).status == 1
    assert emulator.state.stats()["endpoints"]["upload"]["requests"] == 1


async def test_upload_refuses_bad_input_before_any_request(
    client: AsyncChanjingClient, emulator: EmulatorServer, media: tuple[Path, Path], tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError, match=r"lip_sync_video accepts \.mov, \.mp4, \.webm"):
        await client.files.upload(media[1], service="lip_sync_video")
    with pytest.raises(InvalidInputError, match="must be an existing file"):
        await client.files.upload(tmp_path / "missing.mp4", service="lip_sync_video")
    with pytest.raises(InvalidInputError, match="service"):
        await client.files.upload(media[0], service="")
    assert total_requests(emulator) == 0


async def test_a_rejected_file_raises_upload_error(
    client: AsyncChanjingClient, emulator: EmulatorServer, media: tuple[Path, Path]
) -> None:
    detail = await client.files.upload(media[0], service="lip_sync_video", poll_interval=0.02)
    emulator.state.set_file_status(detail.id, 98)
    with pytest.raises(UploadError) as caught:
        await client.files.wait_ready(detail.id, timeout=1)
    assert caught.value.status == 98
    assert "content check failed" in str(caught.value)


async def test_a_file_not_ready_in_time_raises_upload_error(media: tuple[Path, Path]) -> None:
    async with (
        EmulatorServer(emulator_settings(file_ready_seconds=3600)) as slow,
        make_client(slow.base_url) as client,
    ):
        with pytest.raises(UploadError, match=r"not ready after 0\.2 s") as caught:
            await client.files.upload(
                media[0], service="lip_sync_video", timeout=0.2, poll_interval=0.05
            )
        assert caught.value.status == 0


# -- lip-sync --------------------------------------------------------------------------------


async def test_seed_example_completes_and_calls_back(
    client: AsyncChanjingClient, files: tuple[str, str], receiver: CallbackRecorder
) -> None:
    request = {**SEED_EXAMPLE, "video_file_id": files[0], "callback": receiver.url}
    task_id = await client.lip_sync.create(request)
    task = await client.lip_sync.wait(task_id, timeout=10, poll_interval=0.05)
    assert task.status == TaskStatus.SUCCEEDED
    assert task.progress == 100
    assert task.video_url.endswith(f"{task_id}.mp4")
    assert task.duration > 0
    with anyio.fail_after(5):
        await receiver.arrived.wait()
    envelope = receiver.received[0]
    assert envelope["code"] == 0
    assert envelope["data"]["id"] == task_id
    assert envelope["data"]["status"] == 20


async def test_audio_driven_task_completes_and_downloads(
    client: AsyncChanjingClient, files: tuple[str, str], tmp_path: Path
) -> None:
    task_id = await client.lip_sync.create(LipSyncRequest.audio(files[0], audio_file_id=files[1]))
    seen: set[int] = set()
    with anyio.fail_after(10):
        while True:
            task = await client.lip_sync.get(task_id)
            seen.add(task.status)
            if task.is_terminal:
                break
            await anyio.sleep(0.02)
    assert task.succeeded
    assert {0, 10, 20} <= seen
    video = await client.lip_sync.download(task, tmp_path / "out.mp4")
    preview = await client.lip_sync.download(task, tmp_path / "out.jpg", preview=True)
    assert video.stat().st_size > 0
    assert preview.stat().st_size > 0
    assert [p.name async for p in anyio.Path(tmp_path).glob(".*.part")] == []


async def test_failed_tasks_carry_the_reason(media: tuple[Path, Path]) -> None:
    async with (
        EmulatorServer(emulator_settings(billing_fail_rate=1.0)) as failing,
        make_client(failing.base_url) as client,
    ):
        video = await client.files.upload(media[0], service="lip_sync_video", poll_interval=0.02)
        task_id = await client.lip_sync.create(
            LipSyncRequest.tts(video.id, text="hi", audio_man_id=VOICE)
        )
        task = await client.lip_sync.wait(task_id, timeout=10, poll_interval=0.05)
        assert task.failed
        assert "蝉豆不足" in task.msg
        with pytest.raises(InvalidInputError, match="succeeded task"):
            await client.lip_sync.download(task, "never.mp4")


async def test_wait_has_a_deadline(client: AsyncChanjingClient, files: tuple[str, str]) -> None:
    task_id = await client.lip_sync.create(LipSyncRequest.audio(files[0], audio_file_id=files[1]))
    with pytest.raises(TimeoutError):
        await client.lip_sync.wait(task_id, timeout=0.05, poll_interval=0.01)


async def test_invalid_create_sends_nothing(
    client: AsyncChanjingClient, emulator: EmulatorServer
) -> None:
    bad: list[dict[str, Any]] = [
        {"video_file_id": "v", "tts_config": {"text": "x", "audio_man_id": "a", "speed": 9}},
        {"video_file_id": "v", "audio_type": "audio"},
        {"video_file_id": "v", "audio_type": "audio", "audio_file_id": "a", "volume": 0},
        {"video_file_id": "v", "audio_type": "audio", "audio_file_id": "a", "callback": "x"},
    ]
    for body in bad:
        with pytest.raises(InvalidInputError):
            await client.lip_sync.create(body)
    with pytest.raises(InvalidInputError, match="task_id"):
        await client.lip_sync.get("")
    with pytest.raises(InvalidInputError, match="page_size=500"):
        await client.lip_sync.list(page_size=500)
    assert total_requests(emulator) == 0
    assert emulator.state.stats()["tokens_issued"] == 0


async def test_files_in_the_wrong_bucket_or_unknown_are_refused(
    client: AsyncChanjingClient, files: tuple[str, str]
) -> None:
    with pytest.raises(FileNotReadyError) as caught:
        await client.lip_sync.create(LipSyncRequest.audio(files[1], audio_file_id=files[1]))
    assert caught.value.code == 50000
    assert "视频文件还未完成上传" in caught.value.msg
    assert len(caught.value.trace_id) == 32
    with pytest.raises(FileNotReadyError):
        await client.lip_sync.create(LipSyncRequest.audio(files[0], audio_file_id="f" * 32))


async def test_unknown_task_is_an_invalid_request(client: AsyncChanjingClient) -> None:
    with pytest.raises(InvalidRequestError, match="任务不存在") as caught:
        await client.lip_sync.get("0" * 32)
    assert caught.value.code == 40000


async def test_list_pages_and_iterates_every_task(
    client: AsyncChanjingClient, files: tuple[str, str]
) -> None:
    created = {
        await client.lip_sync.create(LipSyncRequest.audio(files[0], audio_file_id=files[1]))
        for _ in range(7)
    }
    first = await client.lip_sync.list(page=1, page_size=3)
    assert first.page_info.total_count == 7
    assert first.page_info.total_page == 3
    assert len(first.items) == 3
    assert {task.id async for task in client.lip_sync.iter_all(page_size=3)} == created


async def test_voices_list(client: AsyncChanjingClient) -> None:
    page = await client.voices.list(page=1, size=5)
    assert len(page.items) == 5
    assert page.page_info.total_count >= 5
    assert all(voice.id for voice in page.items)


async def test_credentials_are_checked(emulator: EmulatorServer) -> None:
    async with make_client(emulator.base_url) as good:
        await good.voices.list()
    async with AsyncChanjingClient(APP_ID, SECRET_KEY + "x", base_url=emulator.base_url) as bad:
        with pytest.raises(AuthenticationError, match="credentials refused"):
            await bad.voices.list()
