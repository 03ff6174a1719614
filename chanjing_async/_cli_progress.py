"""The second pass of ``chanjing batch run``: the checked rows run with progress on stderr."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ._cli_check import checked_manifest
from ._cli_common import err_console, make_client
from ._manifest import manifest_rows
from ._poller import PollPolicy
from .batch import run_batch

if TYPE_CHECKING:
    from pathlib import Path

    from ._cli_common import Settings
    from .batch import BatchProgress, BatchReport

_STAGE_ORDER = (
    "uploading",
    "queued",
    "submitted",
    "generating",
    "downloading",
    "succeeded",
    "failed",
)


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
    """Check the credentials and the manifest, then run it with a progress bar on stderr.

    The manifest is read twice, as a stream: once to check every row, then to submit the
    valid rows through ``run_batch``'s window.
    """
    client = make_client(settings)
    check = await checked_manifest(
        manifest_path, out, skip_invalid=options.skip_invalid, encoding=options.encoding
    )
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
                retry_failed=options.retry_failed,
                total=check.rows,
            )
