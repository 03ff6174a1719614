"""One field table: `lipsync create`'s flags and a manifest's columns are the same fields, and a
bad value gets the same reason from both, before anything is sent.

The CLI runs in-process against an address where nothing listens: a request sent would end with
exit 1, so exit 2 also shows that nothing was sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from chanjing_async.batch._manifest import read_manifest
from chanjing_async.cli import main
from chanjing_async.models._fields import FIELDS
from tests.test_layering import PACKAGE, imports_of

if TYPE_CHECKING:
    from pathlib import Path

VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42" + bytes(64)


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
