"""The second pass of ``chanjing batch run``: the checked rows run with progress on stderr."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..batch._manifest import manifest_rows
from ..batch._runner import run_batch
from ..jobs._poller import PollPolicy
from ._check import checked_manifest
from ._common import err_console, make_client, on_interrupt, say
from ._paths import check_run_paths
from ._progress_lines import EVERY, ProgressLines, created_in, plural, stage_counts

if TYPE_CHECKING:
    from pathlib import Path

    from ..batch._runner import BatchProgress, BatchReport
    from ._common import Settings


@dataclass(frozen=True)
class RunOptions:
    """The options of a batch run besides its files.

    Attributes:
        skip_invalid: run the valid rows even if some rows are invalid.
        retry_failed: run again the rows an earlier run recorded as failed.
        encoding: the manifest's text encoding; None detects it.
    """

    skip_invalid: bool = False
    retry_failed: bool = False
    encoding: str | None = None


async def run_manifest(
    settings: Settings, manifest_path: Path, journal: Path, out: Path, options: RunOptions
) -> BatchReport:
    """Check the credentials, the journal and output paths and the manifest, then run it
    with progress on stderr: a live bar on a terminal, plain lines anywhere else
    (``_progress_lines``).

    The manifest is read twice, as a stream: once to check every row, then to submit the
    valid rows through ``run_batch``'s window. Interrupted (Ctrl-C, SIGTERM), the run
    unwinds with its journal closed, and ``run`` says how to resume.
    """
    client = make_client(settings)
    check_run_paths(journal, out)
    check = await checked_manifest(
        manifest_path, out, skip_invalid=options.skip_invalid, encoding=options.encoding
    )
    on_interrupt(f"the journal {journal} keeps the work done: run the same command again to resume")
    display: _Bar | _Lines  # its `show` is the run's on_progress
    if err_console.is_terminal:
        display = _Bar(check.rows)
    else:
        display = _Lines(check.rows, journal, out, settings.time_scale)
    async with client:
        with display:
            return await run_batch(
                client,
                manifest_rows(check),
                journal=journal,
                out_dir=out,
                poll=PollPolicy().scaled(settings.time_scale),
                on_progress=display.show,
                retry_failed=options.retry_failed,
                total=check.rows,
            )


class _Bar:
    """A live bar on the terminal: rows finished, per stage, and when all are created."""

    def __init__(self, rows: int) -> None:
        self._progress = Progress(
            TextColumn("[bold]lip-sync"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
        )
        self._bar = self._progress.add_task("", total=rows)

    def __enter__(self) -> _Bar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()  # also when interrupted: the cursor is shown again

    def show(self, snapshot: BatchProgress) -> None:
        text = " ".join(part for part in (stage_counts(snapshot), created_in(snapshot)) if part)
        self._progress.update(self._bar, completed=snapshot.finished, description=text)


class _Lines:
    """Plain lines for logs: the run's files first, then ``ProgressLines``."""

    def __init__(self, rows: int, journal: Path, out: Path, time_scale: float) -> None:
        self._start = f"lip-sync: {plural(rows, 'row')} to run; journal {journal}; results in {out}"
        self._lines = ProgressLines(say, EVERY / time_scale)

    def __enter__(self) -> _Lines:
        say(self._start)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self._lines.end()

    def show(self, snapshot: BatchProgress) -> None:
        self._lines(snapshot)
