"""The root `chanjing` command; its subcommands live in the _cli_* modules."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import __version__
from ._batch import register as register_batch
from ._common import Settings, console, err_console
from ._help import use_plain_help
from ._logging import LOG_LEVELS, configure_logging
from ._secrets import command_line_warnings
from ._tasks import register as register_tasks

app = typer.Typer(
    name="chanjing",
    help="Chanjing (蝉镜) lip-sync: SDK command line and local emulator.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold the secret key or a token
)


def _show_version(value: bool) -> None:
    if value:
        console.print(f"chanjing-async {__version__}")
        raise typer.Exit()


def _checked_level(value: str | None) -> str | None:
    if value is not None and value.lower() not in LOG_LEVELS:
        raise typer.BadParameter(f"{value!r}: use one of {', '.join(LOG_LEVELS)}")
    return value


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
    app_id: Annotated[
        str | None, typer.Option(help="App id (default: $CHANJING_APP_ID, then the config file).")
    ] = None,
    secret_key: Annotated[
        str | None,
        typer.Option(
            help="Secret key; '-' reads it from standard input (a prompt without echo on a"
            " terminal). Default: $CHANJING_SECRET_KEY, then ~/.chanjing/config.json. A key"
            " typed here shows in ps and logs: prefer those, or '-'.",
            show_default=False,
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(help="API base URL (default: $CHANJING_BASE_URL, then the public API)."),
    ] = None,
    time_scale: Annotated[
        float,
        typer.Option(
            envvar="CHANJING_TIME_SCALE",
            min=1e-9,
            help="For an emulator run with --time-scale K: pace the client K times faster.",
        ),
    ] = 1.0,
    redis_url: Annotated[
        str | None,
        typer.Option(
            envvar="CHANJING_REDIS_URL",
            show_envvar=False,
            help="Share the rate limits with every process of the account through this Redis"
            " (redis://host:6379/0; default: $CHANJING_REDIS_URL, else this process only)."
            " A password belongs in $CHANJING_REDIS_URL: typed here it shows in ps and logs.",
        ),
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Show what the library does (its INFO log) on stderr: retries, reconciliation.",
        ),
    ] = False,
    log_level: Annotated[
        str | None,
        typer.Option(
            callback=_checked_level,
            metavar="LEVEL",
            help="Show the library's log on stderr from LEVEL: debug (every request), info,"
            " warning or error. No secret is ever logged. [default: warnings only]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Chanjing lip-sync from the terminal."""
    # By name: typer >= 0.20 carries a click of its own, with its own ParameterSource.
    typed = getattr(ctx.get_parameter_source("redis_url"), "name", None) == "COMMANDLINE"
    for warning in command_line_warnings(
        secret_key=secret_key, redis_url=redis_url if typed else None
    ):
        err_console.print(warning, markup=False)
    ctx.call_on_close(configure_logging(log_level, verbose=verbose))
    ctx.obj = Settings(app_id, secret_key, base_url, time_scale, redis_url)


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
    from ..emulator.__main__ import main as emulator_main

    raise typer.Exit(emulator_main(list(ctx.args), prog="chanjing emulator"))


register_batch(app)
register_tasks(app)
use_plain_help(app)  # after every command is registered


def main(argv: list[str] | None = None) -> int:
    """Run the command with ``argv`` (default: the process arguments); return the exit code."""
    try:
        app(args=argv, prog_name="chanjing")
    except SystemExit as exc:  # typer's standalone mode ends every run with SystemExit
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        return 1
    return 0
