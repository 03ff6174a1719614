"""``chanjing batch run|status``: manifests through a journaled manager (``demo`` beside them).

The run is split by stage: ``_check`` checks every row, ``_progress`` runs them with
progress on stderr, ``_report`` prints the outcome.
"""

from __future__ import annotations

from pathlib import Path  # noqa: TC003 (typer reads the annotations at run time)
from typing import Annotated

import typer

from ..batch._runner import journal_summary
from ._common import EXIT_USAGE, dump_json, fail, run, settings_of
from ._demo import demo
from ._progress import RunOptions, run_manifest
from ._report import outcome_json, print_report, print_status

batch_app = typer.Typer(
    help="Run a manifest of lip-sync jobs (CSV or JSONL), resumable through a journal.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the batch commands and the demo to the root command."""
    app.add_typer(batch_app, name="batch")
    app.command()(demo)


@batch_app.command("run")
def batch_run(
    ctx: typer.Context,
    manifest: Annotated[
        Path, typer.Argument(help="The manifest: .csv, .txt or .tsv (a table), or .jsonl.")
    ],
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
            help="Run again, as new tasks, the rows the service failed in an earlier run"
            " (rows not sent run again without it)."
        ),
    ] = False,
    encoding: Annotated[
        str | None,
        typer.Option(
            help="The manifest's text encoding (utf-8, gb18030, utf-16 ...)."
            " [default: detected: UTF-8 with or without BOM, UTF-16 with BOM, else GB18030]"
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON instead of tables.")
    ] = False,
) -> None:
    """Check every row of MANIFEST, then create, track and download them all; run the same
    command again to resume.

    MANIFEST is a table with a header row: .csv (Excel's "CSV"), or .txt / .tsv with TABs
    (Excel's "Unicode text"); UTF-8, GBK/GB18030 and UTF-16 with a BOM are recognised
    (--encoding forces one). Or .jsonl: one JSON object per line, keys as the columns.
    Rows are numbered from 1 after the header.

    Columns: output (required; the result is saved as OUT/<output>.mp4 and .jpg), video or
    video_file_id (one of them); then text and voice (speed 0.5-2.0, pitch 0.1-3.0 optional)
    for a spoken text, or audio or audio_file_id for a recorded one; optional model (0, 1,
    2), screen_width, screen_height, backway (1, 2), drive_mode (random), volume (1-100),
    callback (an http(s) URL). audio_man_id is another name for voice. Paths are relative
    to the manifest's folder; an empty cell means "not given".

    A header with an unknown or repeated column refuses the whole manifest; an invalid row
    stops the run before anything is sent, unless --skip-invalid. The journal defaults to
    MANIFEST.journal and the results folder to MANIFEST-results, both next to the manifest.

    Exit code 0 when every row succeeded, 1 when some did not (failed, not sent, unfinished,
    changed, skipped; refused credentials stop the run at once, every row left for the
    next), 2 for bad input (then nothing was sent).
    """
    settings = settings_of(ctx)
    if not manifest.name:  # '' or '/': no file to read, nor a name for the journal
        fail(f"MANIFEST={str(manifest)!r}: give a .csv, .txt, .tsv or .jsonl file", EXIT_USAGE)
    journal = journal or manifest.with_name(f"{manifest.name}.journal")
    out = out or manifest.with_name(f"{manifest.stem}-results")
    options = RunOptions(skip_invalid=skip_invalid, retry_failed=retry_failed, encoding=encoding)
    report = run(lambda: run_manifest(settings, manifest, journal, out, options))
    if as_json:
        dump_json([outcome_json(outcome) for outcome in report.outcomes])
    else:
        print_report(report, out)
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
    else:
        print_status(journal, summary)
