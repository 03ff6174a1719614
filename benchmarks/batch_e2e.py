"""Scenario 6, end to end: a 200-row manifest through `chanjing batch run` vs the bound.

The command runs as a user would run it (its own process, journal, progress bar, downloads)
against an emulator with random latency. The bound is what the server allows: the shared
video is usable once the server has processed it, the last of N creates cannot go out before
⌊(N−1)/10⌋ windows after the first, and its task then takes its duration. The wall time counts
the whole process, Python's start-up and the downloads included.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import anyio

from chanjing_async.emulator import EmulatorServer

from ._common import APP_ID, SECRET_KEY, Figure, Options, emulator_settings

NAME = "end to end"

_VOICE = "C-f2429d07554749839849497589199916"
_TASK_SECONDS = 30.0  # real-scale duration of every task


def _manifest(folder: Path, rows: int) -> Path:
    media = folder / "media"
    media.mkdir()
    (media / "talk.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(4096))
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["output", "video", "text", "voice"])
        for n in range(rows):
            writer.writerow([f"row-{n:03d}", "media/talk.mp4", f"第 {n} 条口播", _VOICE])
    return manifest


async def _batch(rows: int, time_scale: float, seed: int) -> Figure:
    settings = emulator_settings(
        time_scale, seed, task_seconds=_TASK_SECONDS, file_ready_seconds=3.0
    )
    with tempfile.TemporaryDirectory(prefix="chanjing-bench-") as tmp:
        folder = Path(tmp)
        manifest = _manifest(folder, rows)
        async with EmulatorServer(settings) as emulator:
            env = {
                **os.environ,
                "CHANJING_APP_ID": APP_ID,
                "CHANJING_SECRET_KEY": SECRET_KEY,
                "CHANJING_BASE_URL": emulator.base_url,
                "CHANJING_TIME_SCALE": str(time_scale),
            }
            command = [
                sys.executable,
                "-m",
                "chanjing_async",
                "batch",
                "run",
                str(manifest),
                "--journal",
                str(folder / "jobs.sqlite"),
                "--out",
                str(folder / "out"),
                "--json",
            ]
            started = time.monotonic()
            result = await anyio.run_process(command, env=env, check=False)
            wall = time.monotonic() - started
            stats = emulator.state.stats()
        report = json.loads(result.stdout)
        succeeded = sum(row["result"] == "succeeded" for row in report)
        videos = len(list((folder / "out").glob("*.mp4")))
    window = settings.create_window / time_scale
    # The server's own times: a file is usable `file_ready_seconds` after its upload, and each
    # task takes `task_seconds`; between them, the create limit spaces the creates.
    ready = settings.file_ready_seconds / time_scale
    bound = ready + (rows - 1) // settings.create_limit * window + _TASK_SECONDS / time_scale
    ratio = wall / bound
    rejected = stats["endpoints"]["create"]["rejected_40001"]
    return Figure(
        scenario=NAME,
        case=f"{rows}-row batch run (time scale {time_scale:g})",
        metric="wall seconds",
        ours=wall,
        baseline_name="rate-limit bound",
        baseline=bound,
        ratio=ratio,
        ratio_label="wall / bound",
        goal="<= 1.05",
        met=ratio <= 1.05 and succeeded == rows and videos == rows and rejected == 0,
        extra={
            "succeeded": succeeded,
            "videos": videos,
            "create_40001": rejected,
            "create_requests": stats["endpoints"]["create"]["requests"],
            "exit_code": result.returncode,
        },
    )


async def run(options: Options) -> list[Figure]:
    """One batch: 200 rows at time scale 10, about two minutes (12 rows at 600 in smoke mode).

    Python's start-up (about 0.5 s) and the loopback round trips do not shrink with the time
    scale: at 10 they weigh 20 times less than at 200 against the 19.5-minute bound, so the
    ratio stays close to what a real run sees.
    """
    if options.smoke:
        return [await _batch(12, 600.0, options.seed)]
    return [await _batch(200, 10.0, options.seed)]
