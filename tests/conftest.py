"""Shared fixtures: an asyncio-only anyio backend, a clean environment and a fresh emulator.

The emulator and client fixtures come from the test kit's pytest plugin (its factories close
what they made), so the suite uses what users get.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support import CallbackRecorder, EmulatorProcess, fail_fast, start_emulator_process

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from chanjing_async import AsyncChanjingClient
    from chanjing_async.emulator import EmulatorServer
    from chanjing_async.testing.pytest_plugin import ClientFactory, EmulatorFactory

pytest_plugins = [
    "tests.support.redis_server",  # the redis_server fixture
    "chanjing_async.testing.pytest_plugin",  # chanjing_emulator, chanjing_client, chanjing_jobs
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "CHANJING_APP_ID",
        "CHANJING_SECRET_KEY",
        "CHANJING_BASE_URL",
        "CHANJING_TIME_SCALE",
        "CHANJING_REDIS_URL",
        "CHANJING_ALLOW_INSECURE_HTTP",
    ):
        monkeypatch.delenv(name, raising=False)
    # ~/.chanjing/config.json of whoever runs the tests must not leak in.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
async def emulator(chanjing_emulator: EmulatorFactory) -> EmulatorServer:
    return await chanjing_emulator()


@pytest.fixture
async def client(emulator: EmulatorServer, chanjing_client: ClientFactory) -> AsyncChanjingClient:
    return await chanjing_client(emulator, **fail_fast())


@pytest.fixture
def media(tmp_path: Path) -> tuple[Path, Path]:
    """A small video and audio file to upload."""
    video = tmp_path / "face.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(512))
    audio = tmp_path / "speech.wav"
    audio.write_bytes(b"RIFF" + bytes(512))
    return video, audio


@pytest.fixture
async def files(client: AsyncChanjingClient, media: tuple[Path, Path]) -> tuple[str, str]:
    """Ids of a ready video (lip_sync_video) and audio (lip_sync_audio) file."""
    video = await client.files.upload(media[0], service="lip_sync_video", poll_interval=0.02)
    audio = await client.files.upload(media[1], service="lip_sync_audio", poll_interval=0.02)
    return video.id, audio.id


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackRecorder]:
    async with CallbackRecorder() as running:
        yield running


@pytest.fixture
def emulator_process() -> Iterator[EmulatorProcess]:
    """A test emulator in its own process (CLI tests: the command runs its own event loop)."""
    running = start_emulator_process()
    try:
        yield running
    finally:
        running.stop()
