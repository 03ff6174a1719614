"""File status 2 under both readings of the docs, and creates refused for a file's sake.

The vendor's scripts accept 1 or 2 as ready; third-party code quoting the OpenAPI file reads 2
as failed. The SDK takes 2 as ready; a server reading it as failed refuses the create, and the
SDK then fails it with an UploadError naming the file and its status: once, never retried,
never a silent success. The emulator plays each reading (``file_status_two``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import TYPE_CHECKING

import pytest

from chanjing_async import JobStage, LipSyncJob, LipSyncRequest
from chanjing_async.emulator import EmulatorServer, EmulatorSettings
from chanjing_async.emulator.__main__ import build_parser, settings_from_args
from chanjing_async.errors import FileNotReadyError, UploadError
from tests.support import VOICE, emulator_settings, job_manager, make_client

if TYPE_CHECKING:
    from pathlib import Path

    from chanjing_async.emulator.settings import FileStatusTwo

pytestmark = pytest.mark.anyio


def _creates(emulator: EmulatorServer) -> int:
    requests: int = emulator.state.stats()["endpoints"]["create"]["requests"]
    return requests


async def test_status_two_read_as_ready_makes_the_task(media: tuple[Path, Path]) -> None:
    async with (
        EmulatorServer(emulator_settings(file_status_two="ready")) as emulator,
        make_client(emulator.base_url) as client,
    ):
        video = await client.files.upload(media[0], service="lip_sync_video", poll_interval=0.02)
        assert (video.status, video.is_ready) == (2, True)
        task_id = await client.lip_sync.create(
            LipSyncRequest.tts(video.id, text="hi", audio_man_id=VOICE)
        )
        assert (await client.lip_sync.wait(task_id, timeout=5, poll_interval=0.05)).succeeded


async def test_status_two_read_as_failed_fails_the_create_naming_the_file(
    media: tuple[Path, Path],
) -> None:
    async with (
        EmulatorServer(emulator_settings(file_status_two="failed")) as emulator,
        make_client(emulator.base_url) as client,
    ):
        video = await client.files.upload(media[0], service="lip_sync_video", poll_interval=0.02)
        assert (video.status, video.msg) == (2, "文件上传失败")  # the SDK cannot tell: ready
        request = LipSyncRequest.tts(video.id, text="hi", audio_man_id=VOICE)
        with pytest.raises(UploadError) as refused:
            await client.lip_sync.create(request)
        assert (refused.value.file_id, refused.value.status) == (video.id, 2)
        assert "video_file_id" in str(refused.value)
        assert "视频文件上传失败" in str(refused.value)
        assert isinstance(refused.value.__cause__, FileNotReadyError)
        assert _creates(emulator) == 1  # never resent
        assert emulator.state.stats()["tasks_created"] == 0
        assert not client.lip_sync.ledger.open_attempts  # proven not created


async def test_an_audio_file_failed_after_upload_is_the_one_named(
    emulator: EmulatorServer, media: tuple[Path, Path]
) -> None:
    async with make_client(emulator.base_url) as client:
        video = await client.files.upload(media[0], service="lip_sync_video", poll_interval=0.02)
        audio = await client.files.upload(media[1], service="lip_sync_audio", poll_interval=0.02)
        emulator.state.set_file_status(audio.id, 99)  # deleted meanwhile
        with pytest.raises(UploadError) as refused:
            await client.lip_sync.create(LipSyncRequest.audio(video.id, audio_file_id=audio.id))
        assert (refused.value.file_id, refused.value.status) == (audio.id, 99)
        assert "音频文件已删除" in str(refused.value)
        assert _creates(emulator) == 1


async def test_a_file_still_processing_keeps_the_plain_refusal(
    media: tuple[Path, Path],
) -> None:
    async with (
        EmulatorServer(emulator_settings(file_ready_seconds=3600.0)) as emulator,
        make_client(emulator.base_url) as client,
    ):
        with pytest.raises(UploadError, match="not ready after"):
            await client.files.upload(media[0], service="lip_sync_video", timeout=0.05)
        (file_id,) = emulator.state.files
        with pytest.raises(FileNotReadyError, match="还未完成上传"):
            await client.lip_sync.create(LipSyncRequest.tts(file_id, text="hi", audio_man_id=VOICE))


@pytest.mark.parametrize("reading", ["ready", "failed"])
async def test_a_manager_job_under_each_reading(
    reading: FileStatusTwo, media: tuple[Path, Path], tmp_path: Path
) -> None:
    copy = tmp_path / "again.mp4"
    copy.write_bytes(media[0].read_bytes())
    async with (
        EmulatorServer(emulator_settings(file_status_two=reading)) as emulator,
        make_client(emulator.base_url) as client,
        job_manager(client, journal=tmp_path / "jobs.db") as jobs,
    ):
        first = await jobs.submit(LipSyncJob.tts(media[0], text="one", audio_man_id=VOICE))
        if reading == "ready":
            assert (await first.wait(timeout=10)).succeeded
        else:
            with pytest.raises(UploadError) as refused:
                await first.wait(timeout=10)
            assert refused.value.status == 2
            assert refused.value.file_id in emulator.state.files
            assert first.stage is JobStage.FAILED
        # A status-2 file is not kept for reuse: the same content is uploaded again.
        second = await jobs.submit(LipSyncJob.tts(copy, text="two", audio_man_id=VOICE))
        if reading == "ready":
            assert (await second.wait(timeout=10)).succeeded
        else:
            with pytest.raises(UploadError):
                await second.wait(timeout=10)
        assert jobs.stats.uploads == 2
        assert _creates(emulator) == 2  # one each: never retried
        assert emulator.state.stats()["tasks_created"] == (2 if reading == "ready" else 0)
    with contextlib.closing(sqlite3.connect(tmp_path / "jobs.db")) as journal:
        assert journal.execute("SELECT COUNT(*) FROM uploads").fetchone() == (0,)  # not kept


def test_the_setting_is_checked_and_reachable_from_the_command_line() -> None:
    with pytest.raises(ValueError, match="file_status_two must be None, 'ready' or 'failed'"):
        EmulatorSettings(file_status_two="maybe")  # type: ignore[arg-type]
    parser = build_parser()
    assert settings_from_args(parser.parse_args([])).file_status_two is None
    parsed = parser.parse_args(["--file-status-two", "failed"])
    assert settings_from_args(parsed).file_status_two == "failed"
