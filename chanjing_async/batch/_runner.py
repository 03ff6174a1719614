"""Batch runs: every row of a manifest through one journaled JobManager, results saved to a folder.

``run_batch`` submits the checked rows (``_manifest``) keyed by their output name, so running
the same manifest on the same journal again resumes instead of resubmitting: finished rows
are skipped, created tasks are tracked again, and a create cut off by a crash is reconciled
(``JobManager``). Each succeeded row's video and preview are downloaded into the output folder,
written atomically (a partial download never has the final name); a URL that has expired is
replaced by a fresh one from ``detail`` and the download tried again. The journal notes each
delivered row, so a re-run downloads only what is missing.

Rows are taken one at a time from an iterable (``manifest_rows``, the second pass over a
checked manifest) and at most ``window`` of them are in progress at once, from their submit to
the end of their downloads: the next row is read when one ends, so a manifest of a million
rows is run in the memory of a thousand. Each row is submitted on its own, so a row refused at
submit (its output name journaled for a different job by an earlier run: *changed*, or a
file that would leave the output folder) ends alone while the others go on.

A row whose create was never sent (no connection, the credentials refused) is *not sent*:
its journal row stays unfinished (``jobs._journal_rules.never_sent``), so running the batch again
runs it, without ``retry_failed``. Refused credentials stop the batch at once: they refuse
every row alike, and each row would ask for a token again. The rows not ended are left in
the journal as they were (a closing manager leaves them unfinished), the rows not read are
not submitted, and the report says why it stopped (``BatchReport.stopped``, exit code 2).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from ..client._results import download_results
from ..errors import (
    AuthenticationError,
    ChanjingError,
    InvalidInputError,
    JobFailedError,
    JournalError,
)
from ..jobs._handle import JobStage
from ..jobs._journal_rules import never_sent, stays_unfinished
from ..jobs._journal_store import read_journal
from ..jobs._manager import JobManager, store_of
from ._manifest import ManifestRow, OutputFolder
from ._state import (
    BatchProgress,
    BatchReport,
    Result,
    RowOutcome,
    Run,
    left_behind,
    refused,
    report_progress,
    skipped,
    snapshot,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from ..client._client import AsyncChanjingClient
    from ..jobs._handle import JobHandle
    from ..jobs._poller import PollPolicy
    from ..jobs._store import JobStore
    from ._manifest import RowError

logger = logging.getLogger("chanjing_async")

__all__ = [
    "BatchProgress",
    "BatchReport",
    "RowOutcome",
    "download_results",
    "journal_summary",
    "run_batch",
]

DOWNLOAD_FAILED = "download failed: "
"""How the reason of a row whose download failed begins (a re-run downloads it again)."""
DEFAULT_WINDOW = 1000
"""Rows of a batch in progress at once: about 100 minutes of creates at 10 a minute."""
_PARTIAL = re.compile(r"\..+\.[0-9a-f]{8}\.part")


async def run_batch(
    client: AsyncChanjingClient,
    rows: Iterable[ManifestRow | list[RowError]],
    *,
    journal: str | Path,
    out_dir: str | Path,
    poll: PollPolicy | None = None,
    on_progress: Callable[[BatchProgress], None] | None = None,
    download_concurrency: int = 4,
    retry_failed: bool = False,
    total: int | None = None,
    window: int = DEFAULT_WINDOW,
) -> BatchReport:
    """Run the rows of a checked manifest; return every row's outcome.

    The rows are read one at a time, as the window frees up: at most ``window`` rows are
    between their submit and the end of their downloads, so memory does not grow with the
    manifest (give ``manifest_rows(check_manifest(...))``). A list is checked as a whole
    first (output folder); an item that is a list of errors is an invalid row, reported as
    skipped.

    Args:
        client: an open client.
        rows: the rows: ``read_manifest(...).rows``, or ``manifest_rows(...)``.
        journal: the journal file; the same file resumes an earlier run.
        out_dir: where ``<output>.mp4`` and ``<output>.jpg`` are written.
        poll: the polling policy of the manager.
        on_progress: called with a snapshot about ten times a second, and once at the end.
        download_concurrency: downloads at once.
        retry_failed: run again the rows an earlier run recorded as failed (not those whose
            create outcome stayed unknown; see ``JobManager``). Rows not sent run again
            without it.
        total: the number of valid rows, for progress (default: ``len(rows)`` of a list).
        window: rows in progress at most (submitted and not yet downloaded).

    Raises:
        InvalidInputError: (list only) an output would leave ``out_dir``; nothing was sent.
            In a stream, such a row fails on its own; a row whose output name was journaled
            for a different job ends ``changed``.
    """
    if type(window) is not int or window < 1:
        raise InvalidInputError("window", window, "must be an integer >= 1")
    out = Path(out_dir)
    folder = OutputFolder(out)
    if isinstance(rows, Sequence):
        for row in rows:
            if isinstance(row, ManifestRow):
                folder.paths(row.output)
        total = sum(isinstance(row, ManifestRow) for row in rows) if total is None else total
    await anyio.Path(out).mkdir(parents=True, exist_ok=True)
    await anyio.to_thread.run_sync(_remove_partial_downloads, out)
    outcomes: list[RowOutcome] = []
    unread = iter(rows)
    async with JobManager(client, journal=journal, poll=poll, retry_failed=retry_failed) as jobs:
        store = store_of(jobs)
        delivered = {row.key for row in await store.rows() if row.delivered_at is not None}
        delivery = _Delivery(client, store, download_concurrency, out)
        run = Run(delivery, total, outcomes)
        await _run_rows(jobs, run, unread, folder, delivery, delivered, window, on_progress, client)
        if run.stopped is not None:
            await left_behind(store, run, unread)
        if on_progress is not None:
            on_progress(snapshot(client, run))
    return BatchReport(sorted(outcomes, key=lambda outcome: outcome.row), run.stopped)


async def _run_rows(
    jobs: JobManager,
    run: Run,
    unread: Iterator[ManifestRow | list[RowError]],
    folder: OutputFolder,
    delivery: _Delivery,
    delivered: set[str],
    window: int,
    on_progress: Callable[[BatchProgress], None] | None,
    client: AsyncChanjingClient,
) -> None:
    """Submit the rows as the window frees up, and follow each to the end of its downloads;
    return when every row read has ended, or the run stopped."""
    slots = anyio.Semaphore(window)

    async def finish(
        row: ManifestRow, handle: JobHandle, files: tuple[Path, Path], resumed: bool
    ) -> None:
        try:
            async for _ in jobs.as_completed([handle]):
                pass
            outcome = await delivery.outcome(row, handle, files, delivered=handle.key in delivered)
            run.ended(replace(outcome, resumed=resumed))
            if isinstance(handle.error, AuthenticationError):
                run.stop(f"the credentials were refused ({_reason(handle.error)})")
        finally:
            slots.release()

    async with anyio.create_task_group() as group:
        run.scope = group.cancel_scope
        if on_progress is not None:
            group.start_soon(report_progress, on_progress, client, run)
        for item in unread:
            if not isinstance(item, ManifestRow):
                run.outcomes.append(skipped(item))
                continue
            run.reading = item
            await slots.acquire()
            try:
                files = folder.paths(item.output)
                handle = await jobs.submit(item.job, key=item.output)
            except InvalidInputError as exc:
                slots.release()
                run.ended(refused(item, exc, known=jobs.get(item.output) is not None))
                continue
            run.live[handle.key] = (item, handle)
            # Done at once: an earlier run finished it (the journal gave it back).
            group.start_soon(finish, item, handle, files, handle.done)
        run.reading, run.submitting = None, False
        # Every row is submitted; the jobs and their downloads end the group.


class _Delivery:
    """Downloads the results of succeeded rows, a few at a time, and notes them in the store."""

    def __init__(
        self, client: AsyncChanjingClient, store: JobStore, concurrency: int, out: Path
    ) -> None:
        self._client = client
        self._store = store
        self._out = out
        self._slots = anyio.CapacityLimiter(concurrency)
        self.downloading = 0

    async def outcome(
        self,
        row: ManifestRow,
        handle: JobHandle,
        files: tuple[Path, Path],
        *,
        delivered: bool,
    ) -> RowOutcome:
        error = handle.error
        if error is not None:
            result: Result = "failed"
            if never_sent(error):
                result = "not sent"
            elif stays_unfinished(error, closing=False):
                result = "unfinished"
            return RowOutcome(row.row, row.output, result, handle.task_id, _reason(error))
        task = handle.result()
        video, preview = files
        if delivered and await anyio.Path(video).exists():
            return RowOutcome(row.row, row.output, "succeeded", task.id, files=files)
        self.downloading += 1
        try:
            async with self._slots:
                saved = await download_results(self._client, task, video, preview, within=self._out)
        except ChanjingError as exc:
            reason = f"{DOWNLOAD_FAILED}{exc}"
            return RowOutcome(row.row, row.output, "failed", task.id, reason)
        finally:
            self.downloading -= 1
        try:
            await self._store.mark_delivered(handle.key)
        except JournalError as exc:
            # The file is saved under its final name; at worst a re-run downloads it again.
            logger.warning("row %d: delivery not journaled (%s)", row.row, exc)
        return RowOutcome(row.row, row.output, "succeeded", task.id, files=saved)


def _reason(error: BaseException) -> str:
    """A one-line reason, without the job-key prefix of job errors (nor the endpoint of
    what kept a job from being sent)."""
    if isinstance(error, JobFailedError):
        return f"task failed: {error.msg}"
    text = str(error)
    if text.startswith("job ") and "): " in text:
        text = text.split("): ", 1)[1]
    endpoint = getattr(error, "endpoint", None)
    if never_sent(error) and endpoint and text.startswith(f"{endpoint}: "):
        return text[len(endpoint) + 2 :]  # not sent: what kept it from the API is the point
    return f"{type(error).__name__}: {text}"


def _remove_partial_downloads(out: Path) -> None:
    """Delete what downloads cut off by a crash left behind (never a final file name)."""
    for partial in out.rglob(".*.part"):
        if _PARTIAL.fullmatch(partial.name):  # ours: .<name>.<8 hex>.part, nothing else
            partial.unlink(missing_ok=True)


async def journal_summary(path: str | Path) -> dict[str, object]:
    """What a journal holds, without any network call: counts per stage and every row.

    Raises:
        InvalidInputError: ``path`` is not an existing file.
        ConfigurationError: it is not a journal.
    """
    if not await anyio.Path(path).is_file():
        raise InvalidInputError("journal", str(path), "must be an existing journal file")
    rows = await read_journal(path)
    stages = Counter(row.stage for row in rows)
    return {
        "journal": str(path),
        "jobs": len(rows),
        "stages": dict(sorted(stages.items())),
        "delivered": sum(row.delivered_at is not None for row in rows),
        "rows": [
            {
                "key": row.key,
                "stage": row.stage,
                "task_id": row.task_id,
                "create_pending": row.sent_at is not None and row.task_id is None,
                # Never sent (its error is kept): the same run again sends it.
                "not_sent": row.error is not None
                and row.sent_at is None
                and row.task_id is None
                and not JobStage(row.stage).is_final,
                "error": row.error,
                "delivered": row.delivered_at is not None,
            }
            for row in rows
        ],
    }
