"""Runs that explain themselves (issue 16, items 6, 8, 9), through the real ``chanjing`` command.

Off a terminal a batch run writes plain progress lines; ``--verbose`` and ``--log-level`` show
the library's log without a secret; Ctrl-C and SIGTERM stop a run cleanly and say how to
resume; a connection that cannot be made names the host.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from chanjing_async.batch import BatchProgress
from chanjing_async.cli._progress_lines import stage_counts
from tests.cli.test_batch_cli import (
    batch_run,
    command,
    expected_outputs,
    inject,
    journal,
    outputs,
    run,
    write_manifest,
)
from tests.guarantees.test_bad_input import squeeze
from tests.support import SECRET_KEY

if TYPE_CHECKING:
    from tests.support import EmulatorProcess

pytestmark = pytest.mark.slow


ANSI = re.compile(r"\x1b\[")
# 40 rows take four create windows at the test time scale: a run of about 4 s.
ROWS = 40


def progress_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "rows finished" in line]


# --------------------------------------------------------------------------------------------
# item 6: off a terminal, plain progress lines; --verbose and --log-level


def test_off_a_terminal_a_run_prints_plain_progress_lines_at_a_steady_pace(
    emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    write_manifest(tmp_path, ROWS)
    started = time.monotonic()
    result = run(emulator_process, batch_run(emulator_process, tmp_path))
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert not ANSI.search(result.stderr), result.stderr
    assert f"lip-sync: {ROWS} rows to run; journal {tmp_path / 'jobs.sqlite'}" in result.stderr
    lines = progress_lines(result.stderr)
    # One at the start, one every 30 s / 60 (the time scale) and one at the end.
    assert len(lines) >= 4, result.stderr
    assert len(lines) <= took / 0.5 + 3, result.stderr
    assert lines[0].startswith(f"lip-sync: 0/{ROWS} rows finished | queued {ROWS}")
    assert "all created in ~" in lines[0]
    assert any("ends in ~" in line for line in lines), result.stderr
    assert re.fullmatch(
        rf"lip-sync: {ROWS}/{ROWS} rows finished \| succeeded {ROWS} \| took \d+s", lines[-1]
    )


def test_a_one_row_run_says_row_not_rows(emulator_process: EmulatorProcess, tmp_path: Path) -> None:
    write_manifest(tmp_path, 1)
    result = run(emulator_process, batch_run(emulator_process, tmp_path))
    assert result.returncode == 0, result.stderr
    assert "lip-sync: 1 row to run;" in result.stderr
    assert "lip-sync: 1/1 row finished | succeeded 1" in result.stderr
    assert "1 rows" not in result.stderr


def test_log_level_debug_shows_every_request_and_no_secret(
    emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    write_manifest(tmp_path, 2)
    result = run(
        emulator_process,
        command("--log-level", "DEBUG", *batch_run(emulator_process, tmp_path)[3:]),
    )
    assert result.returncode == 0, result.stderr
    debug = [line for line in result.stderr.splitlines() if " DEBUG " in line]
    assert any("POST /open/v1/access_token -> code 0" in line for line in debug), result.stderr
    assert any("POST /open/v1/video_lip_sync/create -> code 0" in line for line in debug)
    assert SECRET_KEY not in result.stdout + result.stderr
    assert not ANSI.search(result.stderr)


def test_verbose_shows_the_library_info_records_only(
    emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    write_manifest(tmp_path, 2)
    inject(emulator_process, {"endpoint": "create", "kind": "code", "code": 40001, "msg": "slow"})
    quiet = run(emulator_process, batch_run(emulator_process, tmp_path))
    assert quiet.returncode == 0, quiet.stderr
    assert "create refused" not in quiet.stderr  # INFO: not shown by default

    write_manifest(tmp_path / "again", 2)
    inject(emulator_process, {"endpoint": "create", "kind": "code", "code": 40001, "msg": "slow"})
    verbose = run(
        emulator_process, command("--verbose", *batch_run(emulator_process, tmp_path / "again")[3:])
    )
    assert verbose.returncode == 0, verbose.stderr
    assert re.search(r"^\d\d:\d\d:\d\d INFO job clip-0\d: create refused", verbose.stderr, re.M)
    assert " DEBUG " not in verbose.stderr


def test_an_unknown_log_level_is_a_usage_error(emulator_process: EmulatorProcess) -> None:
    result = run(emulator_process, command("--log-level", "loud", "voices"))
    assert result.returncode == 2
    wanted = "Invalid value for '--log-level': 'loud': use one of debug, info, warning, error"
    assert squeeze(wanted) in squeeze(result.stderr), result.stderr
    assert emulator_process.stats()["endpoints"]["access_token"]["requests"] == 0


# --------------------------------------------------------------------------------------------
# item 8: Ctrl-C and SIGTERM stop cleanly and say how to resume


def _created(path: Path) -> int:
    return sum(row["task_id"] is not None for row in journal(path))


def _interrupt_mid_run(
    emulator: EmulatorProcess,
    argv: list[str],
    signum: int,
    *,
    stdout: int,
    stderr: int,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """Start ``argv``, send ``signum`` once 5 rows have tasks (others still to come)."""
    path = Path(argv[argv.index("--journal") + 1])
    process = subprocess.Popen(
        argv, env=emulator.env(**(env or {})), stdout=stdout, stderr=stderr, text=True
    )
    deadline = time.monotonic() + 60
    while _created(path) < 5:
        assert process.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signum)
    return process


@pytest.mark.parametrize(
    ("signum", "code", "named"), [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")]
)
def test_an_interrupted_run_says_how_to_resume_and_resumes_with_one_task_per_row(
    emulator_process: EmulatorProcess, tmp_path: Path, signum: int, code: int, named: str
) -> None:
    write_manifest(tmp_path, ROWS)
    path = tmp_path / "jobs.sqlite"
    argv = batch_run(emulator_process, tmp_path)
    process = _interrupt_mid_run(
        emulator_process, argv, signum, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    assert "Traceback" not in err
    assert err.rstrip().endswith(
        f"interrupted ({named}); the journal {path} keeps the work done:"
        " run the same command again to resume"
    ), err
    assert out == ""  # no report for a run cut short
    assert _created(path) < ROWS  # it really was cut short

    status = run(emulator_process, command("batch", "status", str(path), "--json"))
    assert status.returncode == 0, status.stderr  # the journal is whole and closed
    assert json.loads(status.stdout)["jobs"] >= 5

    again = run(emulator_process, argv)
    assert again.returncode == 0, again.stderr
    stats = emulator_process.stats()
    assert stats["tasks_created"] == ROWS
    assert stats["endpoints"]["create"]["rejected_40001"] == 0
    assert outputs(tmp_path / "out") == expected_outputs(ROWS)


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_sigterm_on_a_terminal_shows_the_cursor_again(
    emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    write_manifest(tmp_path, ROWS)
    main, terminal = os.openpty()
    shown = bytearray()

    def drain() -> None:  # the child must never block on a full terminal
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: every end of the terminal is closed
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        process = _interrupt_mid_run(
            emulator_process,
            batch_run(emulator_process, tmp_path),
            signal.SIGTERM,
            stdout=subprocess.DEVNULL,
            stderr=terminal,
            env={"TERM": "xterm-256color", "COLUMNS": "120"},
        )
        process.wait(timeout=60)
    finally:
        os.close(terminal)
    reader.join(timeout=10)
    os.close(main)
    text = shown.decode(errors="replace")
    assert process.returncode == 143, text
    hidden = text.rfind("\x1b[?25l")
    assert hidden != -1, text  # the bar was live on the terminal
    assert text.find("\x1b[?25h", hidden) != -1, repr(text[-300:])
    assert "run the same command again to resume" in text[hidden:]


# --------------------------------------------------------------------------------------------
# item 9: a connection that cannot be made names the host


def closed_port() -> int:
    """A loopback port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize("authority", ["127.0.0.1:{port}", "user:pa55word@127.0.0.1:{port}"])
def test_a_server_that_cannot_be_reached_is_named_by_host_and_port_only(
    emulator_process: EmulatorProcess, authority: str
) -> None:
    port = closed_port()
    base_url = f"http://{authority.format(port=port)}"
    result = subprocess.run(
        command("lipsync", "list"),
        env=emulator_process.env(CHANJING_BASE_URL=base_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: /open/v1/access_token: cannot connect to 127.0.0.1:{port} (connection refused)"
    )


def test_a_progress_line_counts_every_ended_row() -> None:
    """Rows not sent, unfinished or changed were left out: "27/60 rows finished | queued 23,
    generating 10, succeeded 10" added up to 43."""
    stages = {"queued": 23, "generating": 10, "succeeded": 10, "not sent": 15, "changed": 2}
    snapshot = BatchProgress(
        total=60, stages=stages, finished=27, next_create=0.0, submitted_in=0.0
    )
    assert stage_counts(snapshot) == (
        "queued 23, generating 10, succeeded 10, not sent 15, changed 2"
    )
