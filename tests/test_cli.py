"""The `chanjing` command, run in-process through `main(argv)`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chanjing_async import __version__
from chanjing_async.cli import main

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"chanjing-async {__version__}"


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--bogus"]) == 2
    assert "bogus" in capsys.readouterr().err


def test_emulator_flags_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulator", "--time-scale", "0"]) == 2
    assert "time_scale" in capsys.readouterr().err


def test_demo_uploads_creates_waits_and_downloads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("succeeded") >= 2
    for label in ("text-driven", "audio-driven"):
        assert (tmp_path / "results" / f"{label}.mp4").stat().st_size > 0
        assert (tmp_path / "results" / f"{label}.jpg").stat().st_size > 0
