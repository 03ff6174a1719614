"""``chanjing batch run|status`` and ``chanjing demo``: manifests through a journaled manager."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import anyio
import typer
from rich.table import Table

from ._cli_common import console


def register(app: typer.Typer) -> None:
    """Add the batch commands and the demo to the root command."""
    app.command()(demo)


def demo(
    out: Annotated[Path, typer.Option(help="Folder for the sample media and results.")] = Path(
        "chanjing-demo"
    ),
    time_scale: Annotated[float, typer.Option(help="Emulator speed-up (60: 1 min = 1 s).")] = 60.0,
) -> None:
    """Upload, create, wait and download against an embedded emulator (no account needed)."""
    from ._demo import run_demo

    results = anyio.run(lambda: run_demo(out, time_scale=time_scale, report=console.print))
    table = Table(title="lip-sync demo results")
    for column in ("job", "task id", "status", "duration", "saved to"):
        table.add_column(column)
    for result in results:
        status = "succeeded" if result.task.succeeded else f"failed: {result.task.msg}"
        table.add_row(
            result.label,
            result.task.id,
            status,
            str(result.task.duration),
            str(result.video or "-"),
        )
    console.print(table)
    failed = [result for result in results if not result.task.succeeded]
    if failed:
        raise typer.Exit(1)
