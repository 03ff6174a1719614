"""Batch downloads in-process: an expired result URL is read again; no partial file is left."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from chanjing_async import HTTPStatusError, LipSyncRequest
from chanjing_async.batch import download_results
from chanjing_async.emulator import EmulatorServer
from tests.support import VOICE, emulator_settings, make_client

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


def files_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.is_file())


async def test_an_expired_url_is_replaced_by_a_fresh_one(
    tmp_path: Path, media: tuple[Path, Path]
) -> None:
    # 12 s of real time at time scale 60: a result URL lives 0.2 s.
    settings = emulator_settings(result_url_ttl_seconds=12.0)
    async with EmulatorServer(settings) as emulator, make_client(emulator.base_url) as client:
        video = await client.files.upload(media[0], service="lip_sync_video", poll_interval=0.02)
        task_id = await client.lip_sync.create(
            LipSyncRequest.tts(video.id, text="你好", audio_man_id=VOICE)
        )
        task = await client.lip_sync.wait(task_id, timeout=10, poll_interval=0.05)
        await anyio.sleep(0.25)  # its URLs have expired
        with pytest.raises(HTTPStatusError) as expired:
            await client.lip_sync.download(task, tmp_path / "stale.mp4")
        assert expired.value.status == 403
        before = emulator.state.stats()
        saved = await download_results(client, task, tmp_path / "a.mp4", tmp_path / "a.jpg")
        after = emulator.state.stats()
    assert [path.name for path in saved] == ["a.mp4", "a.jpg"]
    assert all(path.stat().st_size > 0 for path in saved)
    # download_results' first try is refused; every refusal is answered by a fresh read of the
    # task (a slow machine may see a fresh URL expire too, up to the attempts' bound).
    refused = after["result_downloads_refused"] - before["result_downloads_refused"]
    reads = after["endpoints"]["detail"]["requests"] - before["endpoints"]["detail"]["requests"]
    assert refused >= 1
    assert reads == refused
    assert files_in(tmp_path) == [
        "a.jpg",
        "a.mp4",
        "face.mp4",
        "speech.wav",
    ]
