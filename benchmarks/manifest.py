"""Scenario 8, manifests: rows per second and peak memory, 10,000 / 100,000 / 1,000,000 rows.

Each case writes a CSV manifest of N text-driven rows (one shared video, distinct output
names, about 80 bytes a row) and reads it in a **fresh subprocess** (``python -m
benchmarks.manifest MODE ...``), which reports its wall time and its own peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``), so each figure is one process's peak, the
interpreter and the imports included:

* ours: ``check_manifest`` (the first pass: every row checked, duplicates found by digest),
  then ``manifest_rows`` (the second pass), each row written to a ``Journal`` as the manager
  writes a new job (its key, JSON spec and fingerprint), committed 1,000 rows at a time:
  validated and journaled. Goal at 1,000,000 rows: at most 200 MB peak RSS.
* baseline, measured side by side: ``read_manifest``, the whole-file way the batch used
  before streaming (every row checked, every job kept in a list), without a journal.

The rows-per-second ratio is ours / baseline: ours reads the file twice and journals every
row, so it is expected below 1; what it buys is memory that does not grow with N.
``extra.idle_rss_mb`` is a process that only imports the package: the floor of both.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from ._common import Figure, Options
from .batch_e2e import _manifest as write_manifest

NAME = "manifest"

GOAL_MB = 200.0
_COMMIT_EVERY = 1000
_MB = 1024 * 1024


def _child(mode: str, manifest: str, journal: str) -> dict[str, Any]:
    """Run one side in this process; return its rows, seconds and peak RSS."""
    from chanjing_async.batch._manifest import check_manifest, manifest_rows, read_manifest

    started = time.perf_counter()
    rows = 0
    if mode == "baseline":
        rows = len(read_manifest(manifest).rows)
    elif mode == "ours":
        check = check_manifest(manifest, out_dir=Path(journal).parent / "out")
        rows = anyio.run(_journal_rows, manifest_rows(check), journal)
        assert rows == check.rows
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    return {"rows": rows, "seconds": seconds, "peak_rss": peak}


async def _journal_rows(items: Any, path: str) -> int:
    from chanjing_async.batch._manifest import ManifestRow
    from chanjing_async.journal import Journal

    count = 0
    async with Journal(path) as journal:
        for item in items:
            if not isinstance(item, ManifestRow):
                continue
            job = item.job
            spec = {
                "template": job.template.model_dump(mode="json"),
                "video_path": None if job.video_path is None else str(job.video_path),
                "audio_path": None if job.audio_path is None else str(job.audio_path),
            }
            journal.add(item.output, spec, item.fingerprint, "uploading")
            count += 1
            if count % _COMMIT_EVERY == 0:
                await journal.flush()
        await journal.flush()
    return count


def _measure(mode: str, manifest: Path, journal: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.manifest", mode, str(manifest), str(journal)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _case(rows: int, idle: float) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="chanjing-bench-") as tmp:
        folder = Path(tmp)
        manifest = write_manifest(folder, rows)
        size = manifest.stat().st_size
        ours = _measure("ours", manifest, folder / "jobs.sqlite")
        journal_bytes = (folder / "jobs.sqlite").stat().st_size
        base = _measure("baseline", manifest, folder / "unused.sqlite")
    assert ours["rows"] == base["rows"] == rows, (ours, base)
    ours_mb, base_mb = ours["peak_rss"] / _MB, base["peak_rss"] / _MB
    ours_rate, base_rate = rows / ours["seconds"], rows / base["seconds"]
    case = f"{rows:,} rows ({size / _MB:.0f} MB CSV), each process on its own"
    extra = {
        "rows": rows,
        "csv_bytes": size,
        "journal_bytes": journal_bytes,
        "ours_seconds": ours["seconds"],
        "baseline_seconds": base["seconds"],
        "idle_rss_mb": idle,
    }
    sides = (
        ("peak RSS, MB", "checked + journaled", ours_mb, base_mb, True),
        ("rows per second", "two passes + journal vs one pass", ours_rate, base_rate, False),
    )
    return [
        Figure(
            scenario=NAME,
            case=f"{case}: {what}",
            metric=metric,
            ours=mine,
            baseline_name="read_manifest (whole file, no journal)",
            baseline=theirs,
            ratio=mine / theirs,
            ratio_label="ours / baseline",
            goal=f"<= {GOAL_MB:.0f} MB at 1,000,000" if memory and rows >= 1_000_000 else "report",
            met=ours_mb <= GOAL_MB if memory else True,
            extra=extra,
        )
        for metric, what, mine, theirs, memory in sides
    ]


async def run(options: Options) -> list[Figure]:
    """10,000, 100,000 and 1,000,000 rows (2,000 in smoke mode); several minutes at 1M."""
    sizes = (2_000,) if options.smoke else (10_000, 100_000, 1_000_000)
    with tempfile.TemporaryDirectory(prefix="chanjing-bench-") as tmp:
        idle = _measure("idle", Path(tmp) / "none.csv", Path(tmp) / "none.sqlite")
    figures: list[Figure] = []
    for rows in sizes:
        figures.extend(await anyio.to_thread.run_sync(_case, rows, idle["peak_rss"] / _MB))
    return figures


if __name__ == "__main__":
    print(json.dumps(_child(*sys.argv[1:4])))
