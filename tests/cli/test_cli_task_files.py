"""`chanjing lipsync download`, `--download` into new folders and `files upload` without
`--service`: the real command in a subprocess against an emulator process (time scale 60)."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.support import SECRET_KEY, VOICE, EmulatorProcess, start_emulator_process

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.slow


TASK_ID = re.compile(r"[0-9a-f]{32}")


def chanjing(emulator: EmulatorProcess, *argv: object) -> subprocess.CompletedProcess[str]:
    """`chanjing argv` in a process of its own; the secret key never shows, nor a traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "chanjing_async", *(str(arg) for arg in argv)],
        env=emulator.env(COLUMNS="200"),  # rich wraps stderr at 80 columns off a terminal
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert SECRET_KEY not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done


def requests(emulator: EmulatorProcess) -> int:
    return sum(e["requests"] for e in emulator.stats()["endpoints"].values())


def created_task(emulator: EmulatorProcess, video: Path, *extra: object) -> str:
    done = chanjing(emulator, "lipsync", "create", "--video", video, "--text", "hi", *extra)
    task_id = done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""
    assert TASK_ID.fullmatch(task_id), done.stderr
    return task_id


def _emulator(*args: str) -> Iterator[EmulatorProcess]:
    running = start_emulator_process(*args)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def failing_emulator() -> Iterator[EmulatorProcess]:
    """Every task ends in status 30."""
    yield from _emulator("--fail-rate=1")


@pytest.fixture
def slow_emulator() -> Iterator[EmulatorProcess]:
    """Tasks last 10 minutes of API time (10 s here): still running when read."""
    yield from _emulator("--task-seconds=600")


# --------------------------------------------------------------------------------------------
# --download and lipsync download


def test_download_makes_missing_folders_and_download_saves_an_ended_task(
    emulator_process: EmulatorProcess, media: tuple[Path, Path], tmp_path: Path
) -> None:
    first = tmp_path / "new" / "folders" / "clip.mp4"
    task_id = created_task(emulator_process, media[0], "--voice", VOICE, "--download", first)
    assert first.stat().st_size > 0
    assert first.with_suffix(".jpg").stat().st_size > 0

    again = tmp_path / "other" / "place" / "again.mp4"
    done = chanjing(emulator_process, "lipsync", "download", task_id, again)
    assert done.returncode == 0, done.stderr
    assert again.read_bytes() == first.read_bytes()
    assert again.with_suffix(".jpg").read_bytes() == first.with_suffix(".jpg").read_bytes()
    assert f"saved {again}" in done.stderr
    assert done.stdout == ""


def test_download_of_a_failed_task_exits_1_with_its_reason(
    failing_emulator: EmulatorProcess, media: tuple[Path, Path], tmp_path: Path
) -> None:
    task_id = created_task(failing_emulator, media[0], "--voice", VOICE, "--wait")  # exit 1
    target = tmp_path / "clip.mp4"
    done = chanjing(failing_emulator, "lipsync", "download", task_id, target)
    assert done.returncode == 1
    assert f"error: task {task_id} failed: 视频生成失败" in done.stderr
    assert not target.exists()


def test_download_of_a_running_task_exits_1_naming_the_wait_command(
    slow_emulator: EmulatorProcess, media: tuple[Path, Path], tmp_path: Path
) -> None:
    task_id = created_task(slow_emulator, media[0], "--voice", VOICE)
    target = tmp_path / "my clips" / "clip.mp4"
    done = chanjing(slow_emulator, "lipsync", "download", task_id, target)
    assert done.returncode == 1
    assert f"task {task_id} has no video yet: it is " in done.stderr
    assert f"`chanjing lipsync wait {task_id} --download '{target}'`" in done.stderr
    assert not target.exists()


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        pytest.param("notes.txt/clip.mp4", "cannot be made", id="a-file-on-the-way"),
        pytest.param("clip.jpg", "must not end in .jpg", id="jpg"),
        pytest.param(".", "is a folder", id="folder"),
    ],
)
def test_download_to_an_unusable_path_exits_2_before_sending(
    emulator_process: EmulatorProcess, tmp_path: Path, where: str, expected: str
) -> None:
    (tmp_path / "notes.txt").write_text("not a folder")
    done = chanjing(emulator_process, "lipsync", "download", "0" * 32, tmp_path / where)
    assert done.returncode == 2
    assert expected in done.stderr
    assert requests(emulator_process) == 0


# --------------------------------------------------------------------------------------------
# files upload


def test_upload_takes_the_bucket_from_the_extension(
    emulator_process: EmulatorProcess, media: tuple[Path, Path]
) -> None:
    video, audio = media
    for path, bucket in ((video, "lip_sync_video"), (audio, "lip_sync_audio")):
        done = chanjing(emulator_process, "files", "upload", path)
        assert done.returncode == 0, done.stderr
        assert TASK_ID.fullmatch(done.stdout.strip())
        assert f"uploaded {path.name} ({bucket}), ready" in done.stderr


def test_upload_of_an_unknown_extension_exits_2_naming_the_allowed_ones(
    emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    done = chanjing(emulator_process, "files", "upload", notes)
    assert done.returncode == 2
    assert "not a lip-sync video or audio file" in done.stderr
    assert "lip_sync_video takes .mov .mp4 .webm" in done.stderr
    assert "lip_sync_audio takes .m4a .mp3 .wav" in done.stderr
    assert requests(emulator_process) == 0
