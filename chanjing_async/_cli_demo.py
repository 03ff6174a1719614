"""``chanjing demo``: the README's main job, a 12-row batch against an embedded emulator."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._cli_common import EXIT_FAILED, EXIT_OK, Settings, console, err_console, run
from ._cli_progress import RunOptions, run_manifest
from ._cli_report import print_report
from ._demo import FAILING_ROW, write_demo_manifest

if TYPE_CHECKING:
    from .batch import BatchReport


def demo(
    out: Annotated[Path, typer.Option(help="Folder for the sample media and results.")] = Path(
        "chanjing-demo"
    ),
    time_scale: Annotated[
        float, typer.Option(min=1.0, help="Emulator speed-up (60: 1 min = 1 s).")
    ] = 60.0,
) -> None:
    """Run a 12-row batch against an embedded emulator (no account needed).

    Text- and audio-driven rows; one row has a video that cannot be decoded and fails on
    purpose.
    """
    from .emulator import EmulatorServer, EmulatorSettings

    settings = EmulatorSettings(
        app_id="demo-app", secret_key="demo-secret", time_scale=time_scale, seed=7
    )
    manifest = write_demo_manifest(out)
    journal = out / "journal.sqlite"
    for stale in out.glob("journal.sqlite*"):  # a new emulator knows none of its tasks
        stale.unlink()
    shutil.rmtree(out / "results", ignore_errors=True)

    async def main() -> BatchReport:
        async with EmulatorServer(settings) as emulator:
            err_console.print(
                f"embedded emulator on {emulator.base_url} (time scale {time_scale:g}): "
                f"{manifest} -> {out / 'results'}"
            )
            local = Settings(settings.app_id, settings.secret_key, emulator.base_url, time_scale)
            return await run_manifest(local, manifest, journal, out / "results", RunOptions())

    report = run(main)
    print_report(report, out / "results")
    failed = {outcome.output for outcome in report.outcomes if outcome.result == "failed"}
    if failed == {FAILING_ROW}:
        console.print(f"[bold]{FAILING_ROW}[/] failed on purpose: its video cannot be decoded.")
        raise typer.Exit(EXIT_OK)
    raise typer.Exit(EXIT_FAILED)
