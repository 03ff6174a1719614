"""One field table: `lipsync create`'s flags and a manifest's columns are the same fields, and a
bad value gets the same reason from both, before anything is sent.

The CLI runs in-process against an address where nothing listens: a request sent would end with
exit 1, so exit 2 also shows that nothing was sent.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from chanjing_async.batch._manifest import read_manifest
from chanjing_async.cli import main
from chanjing_async.models._fields import FIELDS
from tests.test_layering import PACKAGE, imports_of

if TYPE_CHECKING:
    from pathlib import Path

VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42" + bytes(64)
# What `lipsync create` says when it gets as far as sending (nothing listens on port 9).
REFUSED = "error: /open/v1/access_token: cannot connect to 127.0.0.1:9 (connection refused)"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Credentials for an API nobody answers (port 9, loopback); a folder with ``talk.mp4``."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CHANJING_APP_ID", "app")
    monkeypatch.setenv("CHANJING_SECRET_KEY", "not-a-secret")
    monkeypatch.setenv("CHANJING_BASE_URL", "http://127.0.0.1:9")
    (tmp_path / "talk.mp4").write_bytes(VIDEO_BYTES)
    return tmp_path


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("speed", "3"),
        ("pitch", "0"),
        ("model", "5"),
        ("screen_width", "0"),
        ("screen_height", "-1"),
        ("backway", "3"),
        ("drive_mode", "shuffle"),
        ("volume", "101"),
        ("callback", "ftp://x"),
    ],
)
def test_a_bad_value_has_one_reason_in_a_manifest_and_on_the_command_line(
    offline: Path, capsys: pytest.CaptureFixture[str], column: str, value: str
) -> None:
    manifest = offline / "batch.csv"
    manifest.write_text(f"output,video,text,voice,{column}\nclip,talk.mp4,hi,v,{value}\n")
    (error,) = read_manifest(manifest).errors
    assert error.field == column

    flag = "--" + column.replace("_", "-")
    video = str(offline / "talk.mp4")
    code = main(
        ["lipsync", "create", "--video", video, "--text", "hi", "--voice", "v", flag, value]
    )
    err = "".join(capsys.readouterr().err.split())
    assert code == 2
    assert f"{flag}=" in err
    assert "".join(error.reason.split()) in err


def test_create_has_a_flag_for_every_field_of_the_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["lipsync", "create", "--help"]) == 0
    shown = capsys.readouterr().out
    for field in FIELDS:
        assert field.flag in shown, field


def test_a_single_task_download_does_not_go_through_the_batch_package() -> None:
    for module in ("_download.py", "_tasks.py", "_waiting.py"):
        assert "batch" not in imports_of(PACKAGE / "cli" / module)[0], module


def create(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    """Exit code and stderr lines of ``chanjing lipsync create args``."""
    code = main(["lipsync", "create", *args])
    return code, capsys.readouterr().err.splitlines()


SAY = ["--text", "hi", "--voice", "v"]


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--voice", "v"], "--text (tts_config.text): is required with --voice"),
        (["--speed", "1"], "--text (tts_config.text): is required with --voice"),
        (
            ["--text", "hi", "--speed", "3"],
            "--voice (tts_config.audio_man_id): is required with --text "
            "(a voice id: see `chanjing voices`)",
        ),
        (
            [*SAY, "--model", "5", "--volume", "0"],
            "--model=5: must be 0 or 1 or 2 (0 basic, 1 high quality, 2 cartoon) "
            "(also: volume=0: must be between 1 and 100)",
        ),
        (
            [*SAY, "--speed", "3", "--pitch", "0"],
            "--speed=3.0 (tts_config.speed): must be between 0.5 and 2 "
            "(also: tts_config.pitch=0.0: must be between 0.1 and 3)",
        ),
        ([*SAY, "--speed", "nan"], "--speed=nan (tts_config.speed): must be between 0.5 and 2"),
        ([*SAY, "--pitch", "inf"], "--pitch=inf (tts_config.pitch): must be between 0.1 and 3"),
        (
            ["--text", "h\udcffi", "--voice", "v"],
            "--text='h\\udcffi' (tts_config.text): must be text that UTF-8 can encode "
            "(no lone surrogates)",
        ),
        (
            [*SAY, "--drive-mode", "\udcff"],
            "--drive-mode='\\udcff': must be text that UTF-8 can encode (no lone surrogates)",
        ),
    ],
)
def test_create_words_a_bad_job_in_one_line_naming_its_flag(
    offline: Path, capsys: pytest.CaptureFixture[str], args: list[str], line: str
) -> None:
    assert create(capsys, "--video", str(offline / "talk.mp4"), *args) == (2, [f"error: {line}"])


def test_a_missing_video_is_named_before_a_bad_value(
    offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = create(capsys, *SAY, "--speed", "nan", "--model", "5")
    assert (code, err) == (2, ["error: --video or --video-file-id: a video is required"])


def test_a_text_too_long_is_shown_by_its_length_on_the_command_line_and_as_written_in_a_manifest(
    offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "x" * 3000 + "y" * 1000
    code, err = create(capsys, "--video", str(offline / "talk.mp4"), "--text", text, *SAY[2:])
    assert (code, err) == (
        2,
        [
            "error: --text='4,000 characters' (tts_config.text): must be at most 3,999 "
            "characters in all (the TTS limit: under 4,000)"
        ],
    )
    manifest = offline / "batch.csv"
    manifest.write_text(f"output,video,text,voice\nclip,talk.mp4,{text},v\n")
    (error,) = read_manifest(manifest).errors
    assert (error.field, error.value) == ("text", text)


def test_a_local_file_whose_name_is_not_utf8_is_accepted(
    offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A name of undecodable bytes reaches argv with lone surrogates; the file itself is fine.
    video = offline / os.fsdecode(b"t\xffalk.mp4")
    video.write_bytes(VIDEO_BYTES)
    audio = offline / os.fsdecode(b"s\xffay.mp3")
    audio.write_bytes(b"ID3" + bytes(64))
    assert create(capsys, "--video", str(video), *SAY) == (1, [REFUSED])
    assert create(capsys, "--video", str(video), "--audio", str(audio)) == (1, [REFUSED])


def test_a_job_by_file_ids_does_not_need_the_working_folder(
    offline: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = offline / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert create(capsys, "--video-file-id", "v1", "--audio-file-id", "a1") == (1, [REFUSED])
