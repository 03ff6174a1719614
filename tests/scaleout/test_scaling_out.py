"""Several ``chanjing batch run`` processes on one account, sharing the limits through Redis.

Real processes, a real redis-server and the emulator in a process of its own, with the strict
sliding-window create limit at time scale 60 (a documented minute lasts one second).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from tests.cli.test_batch_cli import expected_outputs, journal, outputs, write_manifest

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support import EmulatorProcess
    from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.slow


logger = logging.getLogger(__name__)

CREATE_LIMIT, CREATE_WINDOW = 10, 60.0  # documented, real scale


def start_batches(
    emulator: EmulatorProcess, root: Path, processes: int, rows: int, *root_options: str
) -> list[tuple[Path, subprocess.Popen[str]]]:
    """``processes`` batch runs of ``rows`` rows each, one folder (manifest, journal) each."""
    started = []
    for n in range(processes):
        folder = root / f"host-{n}"
        write_manifest(folder, rows)
        argv = [sys.executable, "-m", "chanjing_async", *root_options, "batch", "run"]
        argv += [str(folder / "manifest.csv"), "--journal", str(folder / "jobs.sqlite")]
        argv += ["--out", str(folder / "out"), "--json"]
        process = subprocess.Popen(
            argv,
            env=emulator.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append((folder, process))
    return started


def finish(started: list[tuple[Path, subprocess.Popen[str]]], rows: int) -> None:
    """Every run exits 0 with every row succeeded, every output and one task per row."""
    for folder, process in started:
        out, err = process.communicate(timeout=150)
        assert process.returncode == 0, err
        assert [row["result"] for row in json.loads(out)] == ["succeeded"] * rows
        assert outputs(folder / "out") == expected_outputs(rows)
        tasks = [row["task_id"] for row in journal(folder / "jobs.sqlite")]
        assert len(tasks) == rows
        assert None not in tasks


def create_arrivals(emulator: EmulatorProcess) -> tuple[list[float], int]:
    """Accepted create arrivals in real-scale seconds after the first, and the 40001 count."""
    url = f"{emulator.base_url}/_emulator/arrivals/create"
    with urllib.request.urlopen(url, timeout=5) as reply:
        data: dict[str, Any] = json.load(reply)
    accepted = [at for at, ok in data["arrivals"] if ok]
    rejected = sum(not ok for _, ok in data["arrivals"])
    scale = float(data["time_scale"])
    return [(at - accepted[0]) * scale for at in accepted], rejected


def ideal_last_create(jobs: int) -> float:
    """The greedy schedule from an empty window: job k goes at floor((k - 1) / N) * T."""
    return (jobs - 1) // CREATE_LIMIT * CREATE_WINDOW


def test_four_processes_share_the_create_limit_and_are_never_refused(
    emulator_process: EmulatorProcess, redis_server: RedisServer, tmp_path: Path
) -> None:
    started = start_batches(emulator_process, tmp_path, 4, 50, "--redis-url", redis_server.url)
    finish(started, 50)
    created, rejected = create_arrivals(emulator_process)
    assert len(created) == 200
    stats = emulator_process.stats()
    assert stats["tasks_created"] == 200
    assert rejected == 0
    assert stats["tokens_issued"] == 1  # one token for the four processes
    ratio = created[-1] / ideal_last_create(200)
    logger.info(
        "4 x 50 creates through Redis: last create %.0f s, %.3f x ideal", created[-1], ratio
    )
    assert ratio <= 1.1


def test_without_redis_the_processes_undo_each_other(
    emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    # The control: each process believes it owns the account. Each new token invalidates the
    # others' (so requests meet 10400 and rows fail), and creates overrun the window (40001).
    # Nothing here is shared, which is what the Redis setting fixes.
    started = start_batches(emulator_process, tmp_path, 4, 10)
    failed_runs = 0
    for _, process in started:
        process.communicate(timeout=150)
        failed_runs += process.returncode != 0
    _, rejected = create_arrivals(emulator_process)
    stats = emulator_process.stats()
    logger.info(
        "without Redis: %d of 4 runs failed, %d tokens, %d x 40001",
        failed_runs,
        stats["tokens_issued"],
        rejected,
    )
    assert failed_runs > 0 or rejected > 0
    assert stats["tokens_issued"] > 4


def test_a_redis_restart_mid_run_loses_no_job(
    emulator_process: EmulatorProcess, redis_server: RedisServer, tmp_path: Path
) -> None:
    started = start_batches(emulator_process, tmp_path, 4, 20, "--redis-url", redis_server.url)
    deadline = time.monotonic() + 60
    while emulator_process.stats()["tasks_created"] < 25:
        assert time.monotonic() < deadline, "the runs never got going"
        time.sleep(0.02)
    redis_server.restart(downtime=0.5)  # back empty, after half a window of downtime
    finish(started, 20)
    created, rejected = create_arrivals(emulator_process)
    assert len(created) == 80
    assert emulator_process.stats()["tasks_created"] == 80
    logger.info("Redis restarted: %d x 40001, last create %.0f s", rejected, created[-1])
    assert rejected == 0
