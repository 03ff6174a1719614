"""``chanjing batch run`` after a bad start: rows never sent run again, a changed row ends alone.

Issue 16: a wrong secret or a server unreachable for a moment used to fail every row for good
(only ``--retry-failed``, mentioned nowhere, ran them again), and editing one finished row
blocked the whole batch.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
from typing import TYPE_CHECKING

import pytest

from chanjing_async.batch import BatchReport, RowOutcome
from chanjing_async.cli._report import next_steps
from tests.cli.test_batch_cli import command, run, write_manifest
from tests.support import (
    APP_ID,
    SECRET_KEY,
    TIME_SCALE,
    VOICE,
    EmulatorProcess,
    start_emulator_process,
)

if TYPE_CHECKING:
    from pathlib import Path

    from chanjing_async.batch._state import Result


pytestmark = pytest.mark.slow


def batch(folder: Path, *extra: str) -> list[str]:
    return command("batch", "run", str(folder / "manifest.csv"), *extra)


def stages(folder: Path) -> dict[str, str]:
    """Each output's stage in the journal (the default one, next to the manifest)."""
    with sqlite3.connect(folder / "manifest.csv.journal") as db:
        return dict(db.execute("SELECT key, stage FROM jobs").fetchall())


def results(completed: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return {row["output"]: row["result"] for row in json.loads(completed.stdout)}


def test_a_refused_secret_stops_at_once_and_the_rerun_runs_every_row(
    emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    write_manifest(tmp_path, 30)
    wrong = emulator_process.env(CHANJING_SECRET_KEY="not-the-secret")
    refused = subprocess.run(
        batch(tmp_path), env=wrong, capture_output=True, text=True, timeout=120, check=False
    )
    assert refused.returncode == 1, refused.stderr  # refused by the API, as for any command
    assert "Traceback" not in refused.stderr
    assert "the batch stopped: the credentials were refused" in refused.stdout
    assert "30 rows were not sent" in refused.stdout
    assert "fix the credentials, then run the same command again" in refused.stdout
    stats = emulator_process.stats()["endpoints"]
    # Stopped at the first refusal: not a token request for every other row (15 for 30).
    assert stats["access_token"]["requests"] <= 4
    assert stats["create"]["requests"] == 0
    assert "failed" not in stages(tmp_path).values()

    again = run(emulator_process, batch(tmp_path, "--json"))
    assert again.returncode == 0, again.stderr
    assert set(results(again).values()) == {"succeeded"}
    assert emulator_process.stats()["tasks_created"] == 30


@pytest.mark.parametrize("first", ["wrong-app", "wrong-url"])
def test_after_a_wrong_app_id_or_url_the_same_command_runs_every_row_even_one_edited(
    emulator_process: EmulatorProcess, tmp_path: Path, first: str
) -> None:
    """Nothing was created by the first run: its journal passes to the right account, and a
    row edited meanwhile is run as edited (it was never created: nothing to protect)."""
    manifest = write_manifest(tmp_path, 4)
    if first == "wrong-app":
        wrong = emulator_process.env(CHANJING_APP_ID="not-the-app")
    else:
        wrong = emulator_process.env(CHANJING_BASE_URL=f"http://127.0.0.1:{free_port()}")
    refused = subprocess.run(
        batch(tmp_path), env=wrong, capture_output=True, text=True, timeout=120, check=False
    )
    assert refused.returncode == 1, refused.stderr
    assert "run the same command again" in refused.stdout
    manifest.write_text(
        manifest.read_text(encoding="utf-8").replace("第 0 行", "第 0 行 (edited)"),
        encoding="utf-8",
    )
    again = run(emulator_process, batch(tmp_path, "--json"))
    assert again.returncode == 0, again.stderr
    assert set(results(again).values()) == {"succeeded"}
    assert emulator_process.stats()["tasks_created"] == 4


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_rows_not_sent_to_an_unreachable_server_run_again_but_a_failed_row_waits(
    tmp_path: Path,
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    (media / "broken.mp4").write_bytes(b"not a video" * 50)  # the service fails its task
    broken = {"output": "broken", "video": "media/broken.mp4", "text": "x", "voice": VOICE}
    write_manifest(tmp_path, 3, extra=[broken])
    port = free_port()  # nothing listens there yet
    env = dict(
        os.environ,
        CHANJING_APP_ID=APP_ID,
        CHANJING_SECRET_KEY=SECRET_KEY,
        CHANJING_BASE_URL=f"http://127.0.0.1:{port}",
        CHANJING_TIME_SCALE=str(TIME_SCALE),
    )

    def batch_run(*extra: str) -> subprocess.CompletedProcess[str]:
        argv = batch(tmp_path, *extra)
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)

    unreachable = batch_run()
    assert unreachable.returncode == 1, unreachable.stderr
    assert "4 rows were not sent (" in unreachable.stdout
    assert "run the same command again to run them" in unreachable.stdout
    assert "retry-failed" not in unreachable.stdout

    emulator = start_emulator_process(f"--port={port}")
    try:
        back = batch_run("--json")
        assert back.returncode == 1, back.stderr
        assert results(back) == {
            "clip-00": "succeeded",
            "clip-01": "succeeded",
            "clip-02": "succeeded",
            "broken": "failed",
        }
        again = batch_run()  # the failed row is failed for good: it needs --retry-failed
        assert again.returncode == 1, again.stderr
        assert "--retry-failed to create a new task for the failed row\n" in again.stdout
        assert emulator.stats()["tasks_created"] == 4
    finally:
        emulator.stop()


def test_a_changed_row_ends_alone_and_new_rows_run(
    emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    write_manifest(tmp_path, 3)
    assert run(emulator_process, batch(tmp_path)).returncode == 0
    manifest = tmp_path / "manifest.csv"
    text = manifest.read_text(encoding="utf-8").replace("第 1 行", "changed")
    manifest.write_text(text + f"clip-new,media/face.mp4,new,{VOICE},,\n", encoding="utf-8")

    changed = run(emulator_process, batch(tmp_path, "--json"))
    assert changed.returncode == 1, changed.stderr  # some rows did not succeed, no bad input
    report = {row["output"]: row for row in json.loads(changed.stdout)}
    assert {output: row["result"] for output, row in report.items()} == {
        "clip-00": "succeeded",
        "clip-01": "changed",
        "clip-02": "succeeded",
        "clip-new": "succeeded",
    }
    assert "give the row a new output name" in report["clip-01"]["reason"]
    assert emulator_process.stats()["tasks_created"] == 4  # the new row only

    tables = run(emulator_process, batch(tmp_path))
    assert tables.returncode == 1
    assert "1 row changed since an earlier run recorded it: give it a new output name" in (
        tables.stdout
    )
    assert "1 rows" not in tables.stdout

    manifest.write_text(text.replace("clip-01", "clip-01-v2"), encoding="utf-8")
    renamed = run(emulator_process, batch(tmp_path, "--json"))
    assert renamed.returncode == 0, renamed.stderr
    assert results(renamed)["clip-01-v2"] == "succeeded"
    assert (tmp_path / "manifest-results" / "clip-01-v2.mp4").exists()


def outcomes(result: Result, count: int, reason: str = "") -> list[RowOutcome]:
    return [RowOutcome(n, f"{result}-{n}", result, reason=reason) for n in range(count)]


def test_the_next_steps_count_rows_in_words() -> None:
    one = BatchReport(
        [
            *outcomes("not sent", 1, "cannot connect to 127.0.0.1:9"),
            *outcomes("failed", 1, "task failed: 视频解析失败"),
            *outcomes("changed", 1),
            *outcomes("skipped", 1),
            *outcomes("unfinished", 1),
        ]
    )
    assert next_steps(one) == [
        "1 row was not sent (cannot connect to 127.0.0.1:9): run the same command again to run it",
        "1 row did not finish in this run: run the same command again to finish it"
        " (no new task is created)",
        "run again with --retry-failed to create a new task for the failed row",
        "1 row changed since an earlier run recorded it: give it a new output name to run it anew",
        "1 invalid row skipped: fix it and run again",
    ]
    three = BatchReport(
        [
            *outcomes("not sent", 3, "cannot connect to 127.0.0.1:9"),
            *outcomes("failed", 3, "task failed: 视频解析失败"),
            *outcomes("failed", 2, "download failed: HTTP 403"),
            *outcomes("changed", 3),
        ]
    )
    assert next_steps(three) == [
        "3 rows were not sent (cannot connect to 127.0.0.1:9): run the same command again to"
        " run them",
        "the results of 2 rows could not be downloaded: run the same command again to"
        " download them",
        "run again with --retry-failed to create new tasks for the 3 failed rows",
        "3 rows changed since an earlier run recorded them: give them new output names to run"
        " them anew",
    ]
