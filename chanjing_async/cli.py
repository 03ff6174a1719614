"""The ``chanjing`` command (typer + rich): the only module that imports either."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import anyio
import typer
from rich.console import Console
from rich.table import Table

from . import __version__

app = typer.Typer(
    name="chanjing",
    help="Chanjing (蝉镜) lip-sync: SDK command line and local emulator.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold the secret key or a token
)
console = Console(highlight=False)


def _show_version(value: bool) -> None:
    if value:
        console.print(f"chanjing-async {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Chanjing lip-sync from the terminal."""


@app.command(
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "help_option_names": [],
    },
)
def emulator(ctx: typer.Context) -> None:
    """Run the local emulator of the lip-sync Open API until Ctrl-C (--help lists the flags)."""
    # One parser for both entry points: `chanjing emulator` and `python -m chanjing_async.emulator`.
    from .emulator.__main__ import main as emulator_main

    raise typer.Exit(emulator_main(list(ctx.args), prog="chanjing emulator"))


@app.command()
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


def main(argv: list[str] | None = None) -> int:
    """Run the command with ``argv`` (default: the process arguments); return the exit code."""
    try:
        app(args=argv, prog_name="chanjing")
    except SystemExit as exc:  # typer's standalone mode ends every run with SystemExit
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        return 1
    return 0
