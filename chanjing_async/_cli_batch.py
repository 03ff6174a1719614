"""``chanjing batch run|status`` and ``chanjing demo``: manifests through a journaled manager."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import anyio
import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ._cli_common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Settings,
    console,
    dump_json,
    err_console,
    fail,
    make_client,
    run,
    settings_of,
)
from ._demo import FAILING_ROW, write_demo_manifest
from ._manifest import check_manifest, manifest_rows
from ._poller import PollPolicy
from .batch import BatchReport, RowOutcome, journal_summary, run_batch

if TYPE_CHECKING:
    from ._manifest import RowError
    from .batch import BatchProgress

batch_app = typer.Typer(
    help="Run a manifest of lip-sync jobs (CSV or JSONL), resumable through a journal.",
    no_args_is_help=True,
)

_STAGE_ORDER = (
    "uploading",
    "queued",
    "submitted",
    "generating",
    "downloading",
    "succeeded",
    "failed",
)


def register(app: typer.Typer) -> None:
    """Add the batch commands and the demo to the root command."""
    app.add_typer(batch_app, name="batch")
    app.command()(demo)


@batch_app.command("run")
def batch_run(
    ctx: typer.Context,
    manifest: Annotated[Path, typer.Argument(help="The manifest: a .csv or .jsonl file.")],
    journal: Annotated[
        Path | None,
        typer.Option(help="Journal file; the same file resumes a run. [default: MANIFEST.journal]"),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for the results. [default: MANIFEST-results next to it]"),
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option(help="Run the valid rows even if some rows are invalid.")
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(
            help="Run again the rows an earlier run recorded as failed (a new task each)."
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON instead of tables.")
    ] = False,
) -> None:
    """Validate every row, then create, track and download them all; run it again to resume.

    Exit code 0 when every row succeeded, 1 when some failed (or were skipped as invalid),
    2 for bad input (then nothing was submitted).
    """
    settings = settings_of(ctx)
    journal = journal or manifest.with_name(f"{manifest.name}.journal")
    out = out or manifest.with_name(f"{manifest.stem}-results")
    report = run(
        lambda: _with_progress(
            settings, manifest, journal, out, skip_invalid=skip_invalid, retry_failed=retry_failed
        )
    )
    if as_json:
        dump_json([_outcome_json(outcome) for outcome in report.outcomes])
    else:
        _print_report(report, out)
    raise typer.Exit(report.exit_code)


@batch_app.command("status")
def batch_status(
    journal: Annotated[Path, typer.Argument(help="The journal of a batch run.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Summarise a journal (no network): jobs per stage, failures, deliveries."""
    summary = run(lambda: journal_summary(journal))
    if as_json:
        dump_json(summary)
        return
    table = Table(title=f"journal {journal}")
    table.add_column("stage")
    table.add_column("jobs", justify="right")
    stages = summary["stages"]
    assert isinstance(stages, dict)
    for stage, count in stages.items():
        table.add_row(stage, str(count))
    table.add_row("delivered", str(summary["delivered"]))
    console.print(table)
    rows = summary["rows"]
    assert isinstance(rows, list)
    failed = [row for row in rows if row["error"]]
    if failed:
        errors = Table(title="failed")
        for column in ("output", "task id", "reason"):
            errors.add_column(column)
        for row in failed:
            errors.add_row(row["key"], row["task_id"] or "-", row["error"])
        console.print(errors)


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
            return await _with_progress(
                local, manifest, journal, out / "results", skip_invalid=False
            )

    report = run(main)
    _print_report(report, out / "results")
    failed = {outcome.output for outcome in report.outcomes if outcome.result == "failed"}
    if failed == {FAILING_ROW}:
        console.print(f"[bold]{FAILING_ROW}[/] failed on purpose: its video cannot be decoded.")
        raise typer.Exit(EXIT_OK)
    raise typer.Exit(EXIT_FAILED)


async def _with_progress(
    settings: Settings,
    manifest_path: Path,
    journal: Path,
    out: Path,
    *,
    skip_invalid: bool,
    retry_failed: bool = False,
) -> BatchReport:
    """Check the credentials and the manifest, then run it with a progress bar on stderr.

    The manifest is read twice, as a stream: once to check every row (a progress bar for
    long files, each problem printed as it is found), then to submit the valid rows through
    ``run_batch``'s window.
    """
    client = make_client(settings)
    checking = Progress(
        TextColumn("[bold]checking rows"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    with checking as progress:
        bar = progress.add_task("", total=None)

        def read(done: int, size: int) -> None:
            progress.update(bar, completed=done, total=size)

        def problem(error: RowError) -> None:
            progress.console.print(f"{manifest_path}: {error}", markup=False)

        check = await anyio.to_thread.run_sync(
            functools.partial(
                check_manifest, manifest_path, out_dir=out, on_error=problem, on_progress=read
            )
        )
    if check.errors and not skip_invalid:
        fail(
            f"{check.invalid or 1} invalid row(s); nothing was submitted "
            "(fix them, or pass --skip-invalid)",
            EXIT_USAGE,
        )
    if not check.rows:
        fail("no valid rows to run", EXIT_USAGE)
    progress = Progress(
        TextColumn("[bold]lip-sync"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )
    bar = progress.add_task("", total=check.rows)

    def show(snapshot: BatchProgress) -> None:
        counts = " ".join(
            f"{stage} {snapshot.stages[stage]}"
            for stage in _STAGE_ORDER
            if snapshot.stages.get(stage)
        )
        eta = ""
        seconds = snapshot.submitted_in  # wall seconds: the limiter is paced like the server
        if seconds > 0:
            eta = f" | all created in ~{seconds:.{1 if seconds < 10 else 0}f}s"
        progress.update(bar, completed=snapshot.finished, description=counts + eta)

    async with client:
        with progress:
            return await run_batch(
                client,
                manifest_rows(check),
                journal=journal,
                out_dir=out,
                poll=PollPolicy().scaled(settings.time_scale),
                on_progress=show,
                retry_failed=retry_failed,
                total=check.rows,
            )


def _print_report(report: BatchReport, out: Path) -> None:
    resumed = sum(outcome.resumed for outcome in report.outcomes)
    summary = Table(title="batch summary")
    summary.add_column("result")
    summary.add_column("rows", justify="right")
    summary.add_row("succeeded", str(report.count("succeeded")))
    summary.add_row("failed", str(report.count("failed")))
    summary.add_row("skipped (invalid)", str(report.count("skipped")))
    summary.add_row("finished in an earlier run", str(resumed))
    console.print(summary)
    problems = [outcome for outcome in report.outcomes if outcome.result != "succeeded"]
    if problems:
        table = Table(title="rows that did not succeed")
        for column in ("row", "output", "result", "task id", "reason"):
            table.add_column(column)
        for outcome in problems:
            table.add_row(
                str(outcome.row),
                outcome.output,
                outcome.result,
                outcome.task_id or "-",
                outcome.reason or "",
            )
        console.print(table)
    if report.count("succeeded"):
        console.print(f"results (video .mp4 and preview .jpg per row) are in {out}")


def _outcome_json(outcome: RowOutcome) -> dict[str, object]:
    return {
        "row": outcome.row,
        "output": outcome.output,
        "result": outcome.result,
        "task_id": outcome.task_id,
        "reason": outcome.reason,
        "files": [str(path) for path in outcome.files],
        "resumed": outcome.resumed,
    }
