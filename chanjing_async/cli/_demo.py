"""``chanjing demo``: the README's main job, a 12-row batch against an embedded emulator.

The demo writes into a new folder under the system's temporary folder unless ``--out`` names
one: run from a checkout (the README's command), it leaves the repository clean, and two runs
never share or clobber a folder. The folder is printed at the start and at the end.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..batch._demo import FAILING_ROW, write_demo_manifest
from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Settings,
    console,
    err_console,
    fail,
    run,
)
from ._progress import RunOptions, run_manifest
from ._report import print_report

if TYPE_CHECKING:
    from ..batch._runner import BatchReport

PLACEHOLDERS = (
    "the emulator returns placeholder files of a few bytes, not real videos: "
    "only a real account renders them"
)


def demo(
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the sample media, manifest, journal and results (default: a new "
            "chanjing-demo-* folder in the system's temporary folder, printed at the start).",
            show_default=False,
        ),
    ] = None,
    time_scale: Annotated[
        float, typer.Option(min=1.0, help="Emulator speed-up (60: 1 min = 1 s).")
    ] = 60.0,
) -> None:
    """Run a 12-row batch against an embedded emulator (no account needed).

    Text- and audio-driven rows; one row has a video that cannot be decoded and fails on
    purpose. The results are the emulator's placeholder files, not real videos.
    """
    from ..emulator import EmulatorServer, EmulatorSettings

    settings = EmulatorSettings(
        app_id="demo-app", secret_key="demo-secret", time_scale=time_scale, seed=7
    )
    folder = Path(tempfile.mkdtemp(prefix="chanjing-demo-")) if out is None else out
    journal = folder / "journal.sqlite"
    try:
        manifest = write_demo_manifest(folder)
    except OSError as exc:  # --out is a file, or a folder this user cannot write
        why = "is a file: give a folder" if folder.is_file() else f"cannot hold the demo: {exc}"
        fail(f"--out={str(folder)!r}: {why}", EXIT_USAGE)
    for stale in folder.glob("journal.sqlite*"):  # a new emulator knows none of its tasks
        stale.unlink()
    results = folder / "results"
    shutil.rmtree(results, ignore_errors=True)
    err_console.print(f"demo folder: {folder}", markup=False, soft_wrap=True)

    async def main() -> BatchReport:
        async with EmulatorServer(settings) as emulator:
            err_console.print(
                f"embedded emulator on {emulator.base_url} (time scale {time_scale:g}): "
                f"{manifest} -> {results}; {PLACEHOLDERS}",
                markup=False,
                soft_wrap=True,
            )
            local = Settings(settings.app_id, settings.secret_key, emulator.base_url, time_scale)
            return await run_manifest(local, manifest, journal, results, RunOptions())

    report = run(main)
    print_report(report, results, advice=False)  # a demo starts afresh: nothing to resume
    console.print(f"Note: {PLACEHOLDERS}.", markup=False, soft_wrap=True)
    console.print(f"demo folder: {folder} (delete it when done)", markup=False, soft_wrap=True)
    failed = {outcome.output for outcome in report.outcomes if outcome.result == "failed"}
    if failed == {FAILING_ROW}:
        console.print(f"[bold]{FAILING_ROW}[/] failed on purpose: its video cannot be decoded.")
        raise typer.Exit(EXIT_OK)
    raise typer.Exit(EXIT_FAILED)
