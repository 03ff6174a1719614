"""The ``chanjing`` command (typer + rich): the only module that imports either."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import anyio
import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .emulator import EmulatorSettings, serve

app = typer.Typer(
    name="chanjing",
    help="Chanjing (蝉镜) lip-sync: SDK command line and local emulator.",
    no_args_is_help=True,
    add_completion=False,
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


@app.command()
def emulator(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind (0 picks a free one).")] = 8080,
    app_id: Annotated[str, typer.Option(help="App id the emulator accepts.")] = "emulator-app",
    secret_key: Annotated[
        str, typer.Option(help="Secret key the emulator accepts.", show_default=False)
    ] = "emulator-secret",
    time_scale: Annotated[
        float, typer.Option(help="Divide every documented window and duration by K.")
    ] = 1.0,
    task_seconds: Annotated[float, typer.Option(help="Real-scale task duration.")] = 30.0,
    fail_rate: Annotated[float, typer.Option(help="Fraction of tasks ending in status 30.")] = 0.0,
    rate_window: Annotated[
        str, typer.Option(help="How 40001 is enforced: 'sliding' or 'fixed'.")
    ] = "sliding",
    seed: Annotated[int | None, typer.Option(help="Seed for reproducible failures.")] = None,
) -> None:
    """Run the local emulator of the lip-sync Open API until Ctrl-C."""
    if rate_window not in ("sliding", "fixed"):
        raise typer.BadParameter(
            f"{rate_window!r}: must be 'sliding' or 'fixed'", param_hint="--rate-window"
        )
    try:
        settings = EmulatorSettings(
            app_id=app_id,
            secret_key=secret_key,
            time_scale=time_scale,
            task_seconds=task_seconds,
            fail_rate=fail_rate,
            rate_window=rate_window,  # type: ignore[arg-type]  # checked just above
            seed=seed,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    def ready(base_url: str) -> None:
        console.print(f"Chanjing emulator listening on {base_url} (time scale {time_scale:g})")

    try:
        anyio.run(lambda: serve(settings, host, port, ready=ready))
    except KeyboardInterrupt:
        console.print("emulator stopped")


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
        app(args=argv, prog_name="chanjing", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        console.print("aborted")
        return 130
    except Exception as exc:  # click's usage errors carry their own exit code
        code = getattr(exc, "exit_code", None)
        if isinstance(code, int):
            show = getattr(exc, "show", None)
            if callable(show):
                show()
            return code
        raise
    return 0
