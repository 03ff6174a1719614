"""`chanjing lipsync create|get|list|wait`, `chanjing voices` and `chanjing files upload`.

Run in-process through `main(argv)` against an emulator in its own process (time scale 60: a
task lasts half a second). Every run is checked for the secret key in its output.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from chanjing_async.cli import main
from tests.support import APP_ID, SECRET_KEY, VOICE, EmulatorProcess, start_emulator_process

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.slow


TASK_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def err_has(self, fragment: str) -> bool:
        """``fragment`` is in stderr, whitespace aside (rich wraps lines at 80 columns off a
        terminal, in the middle of a long path if need be)."""
        return "".join(fragment.split()) in "".join(self.err.split())

    def json(self) -> Any:
        return json.loads(self.out)


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> Run:
    """Run `chanjing argv` in-process; the secret key must never show."""
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    assert SECRET_KEY not in captured.out + captured.err
    return Run(code, captured.out, captured.err)


def use(monkeypatch: pytest.MonkeyPatch, emulator: EmulatorProcess) -> EmulatorProcess:
    """Point the CLI at ``emulator`` through the CHANJING_* variables."""
    for name, value in emulator.env().items():
        if name.startswith("CHANJING_"):
            monkeypatch.setenv(name, value)
    return emulator


def requests(emulator: EmulatorProcess) -> dict[str, int]:
    """Requests the emulator received, per endpoint."""
    return {name: e["requests"] for name, e in emulator.stats()["endpoints"].items()}


@pytest.fixture
def api(emulator_process: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    """The test emulator, with the CLI's environment pointing at it."""
    return use(monkeypatch, emulator_process)


@pytest.fixture(scope="module")
def idle_emulator() -> Iterator[EmulatorProcess]:
    """One emulator for the bad-input cases, which must send it nothing at all."""
    running = start_emulator_process()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def failing_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorProcess]:
    """An emulator whose every task ends in status 30."""
    running = start_emulator_process("--fail-rate=1")
    try:
        yield use(monkeypatch, running)
    finally:
        running.stop()


# --------------------------------------------------------------------------------------------
# create


def test_create_text_driven_waits_and_downloads(
    api: EmulatorProcess,
    media: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    video, _ = media
    target = tmp_path / "result.mp4"
    started = time.monotonic()
    run = cli(
        capsys,
        *("lipsync", "create", "--video", video, "--text", "你好", "--text", "再见"),
        *("--voice", VOICE, "--speed", "1.2", "--pitch", "0.9", "--download", target),
    )
    elapsed = time.monotonic() - started
    assert run.code == 0, run.err
    assert TASK_ID.fullmatch(run.out.strip()), run.out  # only the id: scripts capture it
    assert target.stat().st_size > 0
    assert target.with_suffix(".jpg").stat().st_size > 0
    assert "succeeded" in run.err
    counts = requests(api)
    assert (counts["create"], counts["upload"]) == (1, 1)
    # Polled at 5 s / 60: a half-second task is seen to end long before one unscaled 5 s sleep.
    assert elapsed < 4.0


def test_create_audio_driven_from_local_files(
    api: EmulatorProcess, media: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    video, audio = media
    run = cli(
        capsys,
        *("lipsync", "create", "--video", video, "--audio", audio),
        *("--model", "1", "--volume", "50", "--backway", "2", "--wait"),
    )
    assert run.code == 0, run.err
    task_id = run.out.strip()
    assert TASK_ID.fullmatch(task_id)
    assert f"uploaded {video.name}" in run.err
    assert f"uploaded {audio.name}" in run.err
    counts = requests(api)
    assert (counts["create"], counts["upload"]) == (1, 2)
    detail = cli(capsys, "lipsync", "get", task_id, "--json")
    assert (detail.json()["id"], detail.json()["status"]) == (task_id, 20)


def test_uploaded_ids_feed_create_and_json_shows_the_new_task(
    api: EmulatorProcess, media: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    video, audio = media
    video_up = cli(capsys, "files", "upload", video, "--service", "lip_sync_video")
    audio_up = cli(capsys, "files", "upload", audio, "--service", "lip_sync_audio")
    assert (video_up.code, audio_up.code) == (0, 0), video_up.err + audio_up.err
    video_id, audio_id = video_up.out.strip(), audio_up.out.strip()
    assert TASK_ID.fullmatch(video_id), video_up.out
    assert TASK_ID.fullmatch(audio_id), audio_up.out
    assert requests(api)["upload"] == 2

    run = cli(
        capsys,
        *("lipsync", "create", "--video-file-id", video_id, "--audio-file-id", audio_id),
        "--json",
    )
    assert run.code == 0, run.err
    task = run.json()  # stdout is JSON alone, without the plain id line
    assert TASK_ID.fullmatch(task["id"])
    assert task["status"] in (0, 10)
    assert (requests(api)["create"], requests(api)["upload"]) == (1, 2)


def test_create_wait_json_prints_the_ended_task(
    api: EmulatorProcess, media: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run = cli(
        capsys,
        *("lipsync", "create", "--video", media[0], "--text", "hi", "--voice", VOICE),
        *("--wait", "--json", "--timeout", "30"),
    )
    assert run.code == 0, run.err
    task = run.json()
    assert (task["status"], task["progress"]) == (20, 100)
    assert task["video_url"]


def test_failed_task_exits_1_with_its_msg(
    failing_api: EmulatorProcess, media: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run = cli(
        capsys,
        *("lipsync", "create", "--video", media[0], "--text", "hi", "--voice", VOICE),
        "--wait",
    )
    assert run.code == 1
    task_id = run.out.strip()
    assert TASK_ID.fullmatch(task_id)  # printed before the wait, failure or not
    assert run.err_has(f"task {task_id} failed: 视频生成失败")

    waited = cli(capsys, "lipsync", "wait", task_id, "--json")
    assert waited.code == 1
    assert (waited.json()["id"], waited.json()["status"]) == (task_id, 30)
    assert "视频生成失败" in waited.err


# --------------------------------------------------------------------------------------------
# get, list, wait


def test_get_list_wait(
    api: EmulatorProcess,
    media: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    created = cli(
        capsys, "lipsync", "create", "--video", media[0], "--text", "hi", "--voice", VOICE
    )
    assert created.code == 0, created.err
    task_id = created.out.strip()

    target = tmp_path / "waited.mp4"
    waited = cli(capsys, "lipsync", "wait", task_id, "--json", "--download", target)
    assert waited.code == 0, waited.err
    assert (waited.json()["id"], waited.json()["status"]) == (task_id, 20)
    assert target.stat().st_size > 0
    assert target.with_suffix(".jpg").stat().st_size > 0

    got = cli(capsys, "lipsync", "get", task_id, "--json")
    assert got.code == 0
    assert (got.json()["id"], got.json()["status"]) == (task_id, 20)
    shown = cli(capsys, "lipsync", "get", task_id)
    assert task_id in shown.out
    assert "succeeded (20)" in shown.out

    listed = cli(capsys, "lipsync", "list", "--page-size", "5", "--json")
    assert listed.code == 0
    page = listed.json()
    assert [(t["id"], t["status"]) for t in page["list"]] == [(task_id, 20)]
    assert page["page_info"]["total_count"] == 1
    table = cli(capsys, "lipsync", "list")
    assert table.code == 0
    assert task_id in table.out  # never cut, whatever the width
    assert "1 task" in table.out  # the caption: "page 1 of 1, 1 task"
    assert "1 tasks" not in table.out


def test_wait_that_runs_out_exits_1(
    api: EmulatorProcess, media: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    created = cli(
        capsys, "lipsync", "create", "--video", media[0], "--text", "hi", "--voice", VOICE
    )
    task_id = created.out.strip()
    run = cli(capsys, "lipsync", "wait", task_id, "--timeout", "0.05")
    assert run.code == 1
    assert run.err_has(f"task {task_id}: not finished after 0.05 s")


def test_wait_for_an_unknown_task_is_an_api_error(
    api: EmulatorProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    run = cli(capsys, "lipsync", "wait", "0" * 32, "--timeout", "5")
    assert run.code == 1
    assert "40000" in run.err
    assert run.out == ""


# --------------------------------------------------------------------------------------------
# voices, files


def test_voices(api: EmulatorProcess, capsys: pytest.CaptureFixture[str]) -> None:
    run = cli(capsys, "voices", "--size", "3", "--json")
    assert run.code == 0, run.err
    voices = run.json()["list"]
    assert len(voices) == 3
    assert all(voice["id"] and voice["name"] for voice in voices)
    table = cli(capsys, "voices", "--size", "3")
    assert table.code == 0
    assert all(voice["id"] in table.out for voice in voices)
    second = cli(capsys, "voices", "--size", "3", "--page", "2", "--json")
    assert {v["id"] for v in second.json()["list"]}.isdisjoint(v["id"] for v in voices)


# --------------------------------------------------------------------------------------------
# bad input: exit 2, one line naming the flag, nothing sent


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(
            ["create", "--video", "{video}", "--text", "hi", "--voice", "v", "--speed", "3"],
            ["--speed=3.0", "tts_config.speed", "between 0.5 and 2"],
            id="speed-out-of-range",
        ),
        pytest.param(
            ["create", "--video", "{video}", "--text", "hi"],
            ["--voice", "is required with --text"],
            id="missing-voice",
        ),
        pytest.param(
            ["create", "--video", "{video}", "--video-file-id", "abc", "--text", "hi"],
            ["--video and --video-file-id", "only one"],
            id="video-and-video-file-id",
        ),
        pytest.param(
            ["create", "--video", "{missing}", "--text", "hi", "--voice", "v"],
            ["--video=", "missing.mp4", "must be an existing file"],
            id="missing-file",
        ),
        pytest.param(
            ["create", "--video", "{video}", "--audio", "{text_file}"],
            ["--audio=", "notes.txt", "must be a .m4a, .mp3, .wav file"],
            id="wrong-extension",
        ),
        pytest.param(
            ["create", "--video", "{video}", "--audio", "{audio}", "--volume", "0"],
            ["--volume=0", "between 1 and 100"],
            id="volume",
        ),
        pytest.param(
            ["create", "--video-file-id", "v", "--audio-file-id", "a", "--callback", "ftp://x"],
            ["--callback='ftp://x'", "http:// or https://"],
            id="callback",
        ),
        pytest.param(
            ["create", "--video", "{video}", "--text", "hi", "--voice", "v", "--audio", "{audio}"],
            ["--audio/--audio-file-id", "one kind only"],
            id="text-and-audio",
        ),
        pytest.param(
            ["create", "--video", "{video}"],
            ["--text", "--audio"],
            id="nothing-to-say",
        ),
        pytest.param(
            ["create", "--video", "{video}", "--audio", "{audio}", "--download", "{through_file}"],
            ["--download=", "notes.txt", "cannot be made"],
            id="download-folder",
        ),
        pytest.param(
            ["create", "--video", "{video}", "--audio", "{audio}", "--timeout", "5"],
            ["--timeout", "only with --wait"],
            id="timeout-without-wait",
        ),
        pytest.param(
            ["wait", "abc", "--timeout", "0"],
            ["--timeout=0.0", "> 0"],
            id="wait-timeout",
        ),
        pytest.param(
            ["list", "--page", "0"],
            ["--page"],
            id="list-page",
        ),
    ],
)
def test_bad_input_exits_2_before_sending(
    idle_emulator: EmulatorProcess,
    monkeypatch: pytest.MonkeyPatch,
    media: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    expected: list[str],
) -> None:
    api = use(monkeypatch, idle_emulator)  # valid credentials: only the input is wrong
    (tmp_path / "notes.txt").write_text("not audio")
    paths = {
        "video": media[0],
        "audio": media[1],
        "missing": tmp_path / "missing.mp4",
        "text_file": tmp_path / "notes.txt",
        "through_file": tmp_path / "notes.txt" / "out.mp4",
    }
    run = cli(capsys, "lipsync", *(arg.format(**paths) for arg in argv))
    assert run.code == 2
    for fragment in expected:
        assert run.err_has(fragment), run.err
    assert run.out == ""
    assert sum(requests(api).values()) == 0


def test_upload_of_a_wrong_format_exits_2_before_sending(
    api: EmulatorProcess, media: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run = cli(capsys, "files", "upload", media[1], "--service", "lip_sync_video")
    assert run.code == 2
    assert run.err_has("lip_sync_video accepts .mov, .mp4, .webm")
    unknown = cli(capsys, "files", "upload", media[1], "--service", "lip_sync_image")
    assert unknown.code == 2
    assert "--service" in unknown.err
    assert sum(requests(api).values()) == 0


# --------------------------------------------------------------------------------------------
# credentials


def test_credentials_from_the_config_file(
    emulator_process: EmulatorProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "home" / ".chanjing" / "config.json"  # HOME is tmp_path/"home"
    config.parent.mkdir(parents=True)
    config.write_text(
        json.dumps(
            {"app_id": APP_ID, "secret_key": SECRET_KEY, "base_url": emulator_process.base_url}
        )
    )
    run = cli(capsys, "voices", "--size", "1", "--json")
    assert run.code == 0, run.err
    assert len(run.json()["list"]) == 1
    assert emulator_process.stats()["tokens_issued"] == 1


def test_credentials_from_flags(
    emulator_process: EmulatorProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    root = ("--app-id", APP_ID, "--secret-key", SECRET_KEY, "--base-url", emulator_process.base_url)
    run = cli(capsys, *root, "voices", "--size", "2", "--json")
    assert run.code == 0, run.err
    assert len(run.json()["list"]) == 2
    assert emulator_process.stats()["tokens_issued"] == 1


def test_refused_credentials_exit_1_without_showing_the_secret(
    emulator_process: EmulatorProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "wrong-secret-value"
    root = ("--app-id", APP_ID, "--secret-key", wrong, "--base-url", emulator_process.base_url)
    run = cli(capsys, *root, "lipsync", "list")
    assert run.code == 1
    assert "access_token" in run.err
    assert wrong not in run.out + run.err


def test_missing_credentials_exit_2_naming_the_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = cli(capsys, "lipsync", "get", "abc")
    assert run.code == 2
    assert "CHANJING_APP_ID" in run.err
    assert run.out == ""
