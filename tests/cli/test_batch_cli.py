"""``chanjing batch`` end to end: real subprocesses against an emulator process.

The resume test kills ``batch run`` with SIGKILL at several moments (journal written, tasks
half created, a create on the wire, downloads half done) and checks that the runs together
made exactly one task per row, delivered every output and were never answered 40001.
"""

from __future__ import annotations

import csv
import functools
import json
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from tests.support import VOICE

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.support import EmulatorProcess


pytestmark = pytest.mark.slow


def write_manifest(folder: Path, rows: int, *, extra: list[dict[str, str]] | None = None) -> Path:
    """A CSV manifest: text-driven rows, every third one audio-driven, sharing the media."""
    media = folder / "media"
    media.mkdir(parents=True, exist_ok=True)
    (media / "face.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(512))
    (media / "speech.wav").write_bytes(b"RIFF" + bytes(512))
    lines: list[dict[str, str]] = []
    for n in range(rows):
        row = {"output": f"clip-{n:02d}", "video": "media/face.mp4"}
        if n % 3 == 2:
            row["audio"] = "media/speech.wav"
        else:
            row.update(text=f"第 {n} 行", voice=VOICE)
        lines.append(row)
    lines += extra or []
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, ["output", "video", "text", "voice", "audio", "speed"])
        writer.writeheader()
        writer.writerows(lines)
    return manifest


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "chanjing_async", *args]


def batch_run(emulator: EmulatorProcess, folder: Path, *extra: str) -> list[str]:
    return command(
        "batch",
        "run",
        str(folder / "manifest.csv"),
        "--journal",
        str(folder / "jobs.sqlite"),
        "--out",
        str(folder / "out"),
        *extra,
    )


def run(emulator: EmulatorProcess, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=emulator.env(), capture_output=True, text=True, timeout=120, check=False
    )


def journal(path: Path) -> list[dict[str, Any]]:
    """The journal's rows as another process sees them (read-only); [] before it exists."""
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute("SELECT * FROM jobs ORDER BY seq")]
    except sqlite3.OperationalError:  # the schema is being created
        return []


def kill_when(
    process: subprocess.Popen[str], ready: Callable[[], bool], *, what: str, timeout: float = 60
) -> None:
    """SIGKILL ``process`` as soon as ``ready()``; the moment must come before it ends."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, f"the run ended before {what}: {process.communicate()}"
        assert time.monotonic() < deadline, f"never reached: {what}"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL


def outputs(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


def expected_outputs(rows: int) -> set[str]:
    return {f"clip-{n:02d}.{ext}" for n in range(rows) for ext in ("mp4", "jpg")}


def inject(emulator: EmulatorProcess, fault: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{emulator.base_url}/_emulator/faults",
        data=json.dumps(fault).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        assert reply.status == 200


def test_a_30_row_manifest_succeeds_and_a_rerun_creates_nothing(
    emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    write_manifest(tmp_path, 30)
    first = run(emulator_process, batch_run(emulator_process, tmp_path, "--json"))
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert [row["result"] for row in report] == ["succeeded"] * 30
    assert outputs(tmp_path / "out") == expected_outputs(30)
    stats = emulator_process.stats()
    assert stats["tasks_created"] == 30
    assert stats["endpoints"]["create"]["rejected_40001"] == 0
    assert stats["endpoints"]["upload"]["requests"] == 2  # one video and one audio, shared

    again = run(emulator_process, batch_run(emulator_process, tmp_path, "--json"))
    assert again.returncode == 0, again.stderr
    assert all(row["resumed"] for row in json.loads(again.stdout))
    assert emulator_process.stats()["tasks_created"] == 30

    status = run(
        emulator_process, command("batch", "status", str(tmp_path / "jobs.sqlite"), "--json")
    )
    summary = json.loads(status.stdout)
    assert (summary["jobs"], summary["stages"], summary["delivered"]) == (
        30,
        {"succeeded": 30},
        30,
    )


def test_killed_runs_resume_with_one_task_per_row_and_every_output(
    emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    rows = 30
    write_manifest(tmp_path, rows)
    path = tmp_path / "jobs.sqlite"
    argv = batch_run(emulator_process, tmp_path)

    def created() -> int:
        return sum(row["task_id"] is not None for row in journal(path))

    arrived = 0  # create requests the emulator had seen before the current run
    started = 0.0  # when the current run started (the journal's send times are this clock's)

    def create_on_the_wire() -> bool:
        # Sent by this run, not answered, and arrived at the server (it counts requests on
        # arrival); and no create of an earlier run still in doubt. Two creates in doubt at
        # once, their tasks alike in the list, are another case: neither is adopted (each could
        # be the other's), both rows fail naming the candidates
        # (tests/guarantees/test_adversary.py).
        doubts = [row for row in journal(path) if row["sent_at"] and not row["task_id"]]
        if not doubts or any(row["sent_at"] < started for row in doubts):
            return False
        return bool(emulator_process.stats()["endpoints"]["create"]["requests"] > arrived)

    def delivered() -> int:
        return sum(row["delivered_at"] is not None for row in journal(path))

    moments: list[tuple[str, Callable[[], bool]]] = [
        ("the journal holds the rows", lambda: len(journal(path)) == rows),
        ("5 tasks are created", lambda: created() >= 5),
        ("a create is on the wire", create_on_the_wire),
        ("downloads are half done", lambda: delivered() >= 1 and created() < rows),
    ]
    for what, ready in moments:
        if what == "a create is on the wire":
            # The next create is handled 1 s late: the kill lands while it is in flight, and
            # the server still creates its task afterwards.
            inject(emulator_process, {"endpoint": "create", "kind": "latency", "seconds": 1.0})
            arrived = emulator_process.stats()["endpoints"]["create"]["requests"]
        started = time.time()
        process = subprocess.Popen(
            argv,
            env=emulator_process.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            kill_when(process, ready, what=what)
        finally:
            assert process.stderr is not None
            process.stderr.close()
    final = run(emulator_process, argv)
    assert final.returncode == 0, (
        final.stderr,
        [row["error"] for row in journal(path) if row["error"]],
    )
    stats = emulator_process.stats()
    assert stats["tasks_created"] == rows
    assert stats["endpoints"]["create"]["rejected_40001"] == 0, stats
    # A create killed before it reached the server is sent again by the next run (it made no
    # task); the one killed after it arrived was adopted, not resent.
    assert stats["endpoints"]["create"]["requests"] >= rows
    assert outputs(tmp_path / "out") == expected_outputs(rows)  # no partial file left either
    assert {row["stage"] for row in journal(path)} == {"succeeded"}


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (
            {
                "output": "bad-speed",
                "video": "media/face.mp4",
                "text": "x",
                "voice": VOICE,
                "speed": "9",
            },
            "speed",
        ),
        ({"output": "no-voice", "video": "media/face.mp4", "text": "x"}, "voice"),
        ({"output": "no-file", "video": "media/missing.mp4", "text": "x", "voice": VOICE}, "video"),
        ({"output": "../escape", "video": "media/face.mp4", "text": "x", "voice": VOICE}, "output"),
        ({"output": "/etc/evil", "video": "media/face.mp4", "text": "x", "voice": VOICE}, "output"),
    ],
)
def test_bad_rows_are_reported_and_nothing_is_submitted(
    emulator_process: EmulatorProcess, tmp_path: Path, bad: dict[str, str], field: str
) -> None:
    write_manifest(tmp_path, 3, extra=[bad])
    result = run(emulator_process, batch_run(emulator_process, tmp_path))
    assert result.returncode == 2
    # The fourth data row (line 5 of the file, after the header).
    assert re.search(rf"row 4\b[^:]*: {field}", result.stderr), result.stderr
    assert "nothing was submitted" in result.stderr
    requests = sum(e["requests"] for e in emulator_process.stats()["endpoints"].values())
    assert requests == 0
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "escape.mp4").exists()


def test_skip_invalid_runs_the_other_rows(
    emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    bad = {"output": "../escape", "video": "media/face.mp4", "text": "x", "voice": VOICE}
    write_manifest(tmp_path, 3, extra=[bad])
    result = run(
        emulator_process, batch_run(emulator_process, tmp_path, "--skip-invalid", "--json")
    )
    assert result.returncode == 1, result.stderr  # not every row succeeded
    report = {row["row"]: row["result"] for row in json.loads(result.stdout)}
    assert report == {1: "succeeded", 2: "succeeded", 3: "succeeded", 4: "skipped"}
    assert outputs(tmp_path / "out") == expected_outputs(3)
    assert not (tmp_path / "escape.mp4").exists()


def test_a_failed_row_exits_1_with_its_reason(
    emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "broken.mp4").write_bytes(b"not a video" * 50)
    broken = {"output": "broken", "video": "media/broken.mp4", "text": "x", "voice": VOICE}
    write_manifest(tmp_path, 2, extra=[broken])
    result = run(emulator_process, batch_run(emulator_process, tmp_path, "--json"))
    assert result.returncode == 1
    report = {row["output"]: row for row in json.loads(result.stdout)}
    assert report["broken"]["result"] == "failed"
    assert "could not be decoded" in report["broken"]["reason"]
    assert report["clip-00"]["result"] == "succeeded"

    # The video is fixed; --retry-failed runs the failed row again (a new task), nothing else.
    (tmp_path / "media" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    again = run(emulator_process, batch_run(emulator_process, tmp_path, "--json"))
    assert again.returncode == 1  # without the flag a failed row stays failed
    assert emulator_process.stats()["tasks_created"] == 3
    retried = run(
        emulator_process, batch_run(emulator_process, tmp_path, "--retry-failed", "--json")
    )
    assert retried.returncode == 0, retried.stderr
    assert emulator_process.stats()["tasks_created"] == 4


def test_a_changed_row_is_refused_on_resume(
    emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    write_manifest(tmp_path, 2)
    assert run(emulator_process, batch_run(emulator_process, tmp_path)).returncode == 0
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        manifest.read_text(encoding="utf-8").replace("第 1 行", "changed"), encoding="utf-8"
    )
    result = run(emulator_process, batch_run(emulator_process, tmp_path, "--json"))
    # Rows are submitted as they are read: the changed row ends on its own, never re-created.
    assert result.returncode == 1, result.stderr
    report = {row["output"]: row for row in json.loads(result.stdout)}
    assert report["clip-00"]["result"] == "succeeded"
    assert report["clip-00"]["resumed"]
    assert report["clip-01"]["result"] == "changed"
    assert "give the row a new output name" in report["clip-01"]["reason"]
    assert emulator_process.stats()["tasks_created"] == 2


def test_status_of_a_missing_journal_is_a_usage_error(
    emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    result = run(emulator_process, command("batch", "status", str(tmp_path / "none.sqlite")))
    assert result.returncode == 2
    assert "must be an existing journal file" in result.stderr
    assert not (tmp_path / "none.sqlite").exists()


def _kill_due(
    path: Path,
    emulator: EmulatorProcess,
    started: float,
    delay: float,
    arrived: int,
    wired: bool,
) -> bool:
    """Time to kill: ``delay`` seconds in, or (``wired``) a create has reached the server and
    its answer is not journaled yet."""
    if not wired:
        return time.monotonic() - started >= delay
    pending = any(row["sent_at"] and not row["task_id"] for row in journal(path))
    return pending and emulator.stats()["endpoints"]["create"]["requests"] > arrived


def test_five_random_kills_then_resume(emulator_process: EmulatorProcess, tmp_path: Path) -> None:
    """SIGKILL at 5 random moments, one of them between a create's send and its answer.

    45 rows take five create windows, more than five runs cut short at 0.3-1.5 s can finish.
    """
    rows = 45
    write_manifest(tmp_path, rows)
    path = tmp_path / "jobs.sqlite"
    argv = batch_run(emulator_process, tmp_path)
    draw = random.Random(20261124)
    moments = [draw.uniform(0.3, 1.5) for _ in range(5)]
    wire = draw.randrange(5)  # this run is killed with a create on the wire instead
    for index, delay in enumerate(moments):
        arrived = emulator_process.stats()["endpoints"]["create"]["requests"]
        if index == wire:
            inject(emulator_process, {"endpoint": "create", "kind": "latency", "seconds": 1.0})
        process = subprocess.Popen(
            argv,
            env=emulator_process.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        due = functools.partial(
            _kill_due, path, emulator_process, time.monotonic(), delay, arrived, index == wire
        )
        kill_when(process, due, what=f"kill {index + 1} ({delay:.2f} s)")
    final = run(emulator_process, argv)
    assert final.returncode == 0, (
        final.stderr,
        [row["error"] for row in journal(path) if row["error"]],
    )
    stats = emulator_process.stats()
    assert stats["tasks_created"] == rows, (moments, stats)
    assert stats["endpoints"]["create"]["rejected_40001"] == 0, stats
    assert outputs(tmp_path / "out") == expected_outputs(rows)


HUGE = "7" * 5000


@pytest.mark.parametrize(
    ("line", "field", "fragment"),
    [
        ({"speed": "", "model": HUGE}, "model", "whole number"),
        ({"video": "media/" + "a" * 300 + ".mp4"}, "video", "not a usable path"),
        ({"text": "hi\udc00"}, "text", "lone surrogate"),
        ({"output": "clip\udc80"}, "output", "lone surrogate"),
    ],
    ids=["integer-5000-digits", "name-too-long", "surrogate-in-text", "surrogate-in-output"],
)
def test_values_that_crashed_are_row_errors_of_the_command(
    emulator_process: EmulatorProcess,
    tmp_path: Path,
    line: dict[str, str],
    field: str,
    fragment: str,
) -> None:
    """Issue 14: each used to end ``batch run`` with a traceback and exit 1."""
    write_manifest(tmp_path, 2)
    rows = [
        {"output": "clip-00", "video": "media/face.mp4", "text": "a", "voice": VOICE},
        {"output": "clip-01", "video": "media/face.mp4", "text": "b", "voice": VOICE},
        {"output": "bad", "video": "media/face.mp4", "text": "x", "voice": VOICE, **line},
    ]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    argv = command(
        "batch",
        "run",
        str(manifest),
        "--journal",
        str(tmp_path / "jobs.sqlite"),
        "--out",
        str(tmp_path / "out"),
    )
    refused = run(emulator_process, argv)
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr
    assert f"row 3: {field}" in refused.stderr
    assert fragment in refused.stderr
    assert "nothing was submitted" in refused.stderr
    assert sum(e["requests"] for e in emulator_process.stats()["endpoints"].values()) == 0

    skipped = run(emulator_process, [*argv, "--skip-invalid", "--json"])
    assert skipped.returncode == 1, skipped.stderr
    assert "Traceback" not in skipped.stderr
    report = {row["row"]: row for row in json.loads(skipped.stdout)}
    assert {row: report[row]["result"] for row in report} == {
        1: "succeeded",
        2: "succeeded",
        3: "skipped",
    }
    assert f"row 3: {field}" in report[3]["reason"]
    assert emulator_process.stats()["tasks_created"] == 2
