"""Every `chanjing ... --help` reads the usual way whatever typer installs (0.26 and later):
arguments in capitals in the usage line, no braces, no `<bool>` after a flag."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
import typer.main

from chanjing_async.cli import app, main

if TYPE_CHECKING:
    from collections.abc import Iterator

    from typer._click import Command


def _commands(command: Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every command and group, the root's () included."""
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


COMMANDS = [
    path
    for path in _commands(typer.main.get_command(app))
    if path != ("emulator",)  # its own argparse help: `chanjing emulator --help`
]


def usage_line(text: str) -> str:
    return next(line.strip() for line in text.splitlines() if "Usage:" in line)


def test_every_command_has_a_help_screen() -> None:
    assert {("batch", "run"), ("lipsync", "download"), ("files", "upload"), ()} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "chanjing")
def test_help_shows_no_type_after_a_flag_and_no_braces(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main([*path, "--help"]) == 0
    text = capsys.readouterr().out
    assert "--help" in text
    assert "<bool>" not in text
    usage = usage_line(text)
    assert usage.startswith(" ".join(("Usage: chanjing", *path, "[OPTIONS]")))
    assert not re.search(r"[{}]", usage), usage


@pytest.mark.parametrize(
    ("path", "arguments"),
    [
        (("batch", "run"), "MANIFEST"),
        (("lipsync", "download"), "TASK_ID PATH"),
        (("lipsync", "wait"), "TASK_ID"),
        (("files", "upload"), "PATH"),
    ],
)
def test_usage_names_the_arguments_in_capitals(
    path: tuple[str, ...], arguments: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*path, "--help"]) == 0
    assert usage_line(capsys.readouterr().out).endswith(f"[OPTIONS] {arguments}")


def chanjing(*argv: str) -> subprocess.CompletedProcess[str]:
    """`chanjing argv` in a process of its own, 100 columns wide."""
    return subprocess.run(
        [sys.executable, "-m", "chanjing_async", *argv],
        env=dict(os.environ, COLUMNS="100"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_real_command_and_its_usage_errors() -> None:
    shown = chanjing("batch", "run", "--help")
    assert shown.returncode == 0, shown.stderr
    assert "Usage: chanjing batch run [OPTIONS] MANIFEST" in shown.stdout
    assert "<bool>" not in shown.stdout
    missing = chanjing("lipsync", "get")
    assert missing.returncode == 2
    assert "Usage: chanjing lipsync get [OPTIONS] TASK_ID" in missing.stderr
