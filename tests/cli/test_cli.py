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


def test_demo_runs_a_batch_with_one_failure_on_purpose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "broken-video failed on purpose" in out
    videos = sorted((tmp_path / "results").rglob("*.mp4"))
    assert len(videos) == 11
    for video in videos:
        assert video.stat().st_size > 0
        assert video.with_suffix(".jpg").stat().st_size > 0
    assert not (tmp_path / "results" / "broken-video.mp4").exists()
