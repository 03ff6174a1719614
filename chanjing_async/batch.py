"""Batch runs: every row of a manifest through one journaled JobManager, results saved to a folder.

``run_batch`` submits the checked rows (``_manifest``) keyed by their output name, so running
the same manifest on the same journal again resumes instead of resubmitting: finished rows
are skipped, created tasks are tracked again, and a create cut off by a crash is reconciled
(``JobManager``). Each succeeded row's video and preview are downloaded into the output folder,
written atomically (a partial download never has the final name); a URL that has expired is
replaced by a fresh one from ``detail`` and the download tried again. The journal notes each
delivered row, so a re-run downloads only what is missing.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import anyio

from ._handle import JobStage
from ._manifest import output_paths
from .errors import ChanjingError, HTTPStatusError, InvalidInputError, JobFailedError
from .jobs import JobManager
from .journal import Journal

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._handle import JobHandle
    from ._manifest import ManifestRow
    from ._poller import PollPolicy
    from .client import AsyncChanjingClient
    from .models import LipSyncTask

__all__ = [
    "BatchProgress",
    "BatchReport",
    "RowOutcome",
    "download_results",
    "journal_summary",
    "run_batch",
]

# Result URLs that fail with these statuses are read again from `detail` (they expire).
_EXPIRED = frozenset({401, 403, 404, 410})
_DOWNLOAD_ATTEMPTS = 3
_PROGRESS_EVERY = 0.1
_PARTIAL = re.compile(r"\..+\.[0-9a-f]{8}\.part")


@dataclass(frozen=True)
class RowOutcome:
    """How one manifest row ended.

    Attributes:
        row: its line in the manifest.
        output: its output name (also its job key in the journal).
        result: ``succeeded``, ``failed`` or ``skipped`` (an invalid row, with --skip-invalid).
        task_id: its task, if one was created.
        reason: why it failed or was skipped.
        files: the files saved for it.
        resumed: True when an earlier run had already finished it.
    """

    row: int
    output: str
    result: Literal["succeeded", "failed", "skipped"]
    task_id: str | None = None
    reason: str | None = None
    files: tuple[Path, ...] = ()
    resumed: bool = False


@dataclass
class BatchReport:
    """Every row's outcome, in manifest order."""

    outcomes: list[RowOutcome] = field(default_factory=list)

    def count(self, result: str) -> int:
        """Rows that ended with ``result``."""
        return sum(outcome.result == result for outcome in self.outcomes)

    @property
    def exit_code(self) -> int:
        """0 when every row succeeded, 1 when some failed or were skipped as invalid."""
        return 1 if self.count("failed") or self.count("skipped") else 0


@dataclass(frozen=True)
class BatchProgress:
    """A snapshot of a running batch, for progress displays.

    Attributes:
        total: rows submitted in this run.
        stages: rows per stage (``JobStage`` values, plus ``downloading``).
        finished: rows done (downloaded, failed or finished earlier).
        next_create: seconds until the create limiter admits the next create (0: now).
        submitted_in: estimated seconds until every row waiting for a create is created.
    """

    total: int
    stages: dict[str, int]
    finished: int
    next_create: float
    submitted_in: float


async def run_batch(
    client: AsyncChanjingClient,
    rows: list[ManifestRow],
    *,
    journal: str | Path,
    out_dir: str | Path,
    poll: PollPolicy | None = None,
    skipped: list[RowOutcome] | None = None,
    on_progress: Callable[[BatchProgress], None] | None = None,
    download_concurrency: int = 4,
    retry_failed: bool = False,
) -> BatchReport:
    """Run the rows of a checked manifest; return every row's outcome.

    Args:
        client: an open client.
        rows: the valid rows (``read_manifest(...).rows``).
        journal: the journal file; the same file resumes an earlier run.
        out_dir: where ``<output>.mp4`` and ``<output>.jpg`` are written.
        poll: the polling policy of the manager.
        skipped: outcomes of rows left out (reported as they are).
        on_progress: called with a snapshot about ten times a second, and once at the end.
        download_concurrency: downloads at once.
        retry_failed: run again the rows an earlier run recorded as failed (not those whose
            create outcome stayed unknown; see ``JobManager``).

    Raises:
        InvalidInputError: an output would leave ``out_dir``, or a row's output name was
            journaled for a different job (field ``keys[i]``); nothing was sent.
    """
    out = Path(out_dir)
    targets = {row.output: output_paths(out, row.output) for row in rows}
    await anyio.Path(out).mkdir(parents=True, exist_ok=True)
    await anyio.to_thread.run_sync(_remove_partial_downloads, out)
    outcomes: dict[str, RowOutcome] = {}
    async with JobManager(client, journal=journal, poll=poll, retry_failed=retry_failed) as jobs:
        assert jobs.journal is not None
        delivered = {row.key for row in await jobs.journal.rows() if row.delivered_at is not None}
        try:
            handles = await jobs.submit_many(
                [row.job for row in rows], keys=[row.output for row in rows]
            )
        except InvalidInputError as exc:
            raise _row_error(exc, rows) from None
        resumed = {handle.key for handle in handles if handle.done}
        delivery = _Delivery(client, jobs.journal, download_concurrency)
        by_key = {row.output: row for row in rows}

        async def finish(handle: JobHandle) -> None:
            row = by_key[handle.key]
            outcome = await delivery.outcome(
                row, handle, targets[row.output], delivered=handle.key in delivered
            )
            outcomes[handle.key] = replace(outcome, resumed=handle.key in resumed)

        async with anyio.create_task_group() as group:
            if on_progress is not None:
                group.start_soon(_report, on_progress, client, handles, delivery, outcomes)
            async for handle in jobs.as_completed(handles):
                group.start_soon(finish, handle)
            # Every job is done; the downloads end the group.
        if on_progress is not None:
            on_progress(_snapshot(client, handles, delivery, outcomes))
    ordered = sorted([*outcomes.values(), *(skipped or [])], key=lambda outcome: outcome.row)
    return BatchReport(ordered)


def _row_error(exc: InvalidInputError, rows: list[ManifestRow]) -> InvalidInputError:
    """Name the manifest row of a ``keys[i]`` error."""
    if exc.field.startswith("keys["):
        index = int(exc.field[5:].split("]")[0])
        return InvalidInputError(
            f"row {rows[index].row}: output",
            exc.value,
            f"{exc.allowed} (the row changed since the journal recorded it)",
        )
    return exc


class _Delivery:
    """Downloads the results of succeeded rows, a few at a time, and notes them in the journal."""

    def __init__(self, client: AsyncChanjingClient, journal: Journal, concurrency: int) -> None:
        self._client = client
        self._journal = journal
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
        if handle.error is not None:
            return RowOutcome(row.row, row.output, "failed", handle.task_id, _reason(handle.error))
        task = handle.result()
        video, preview = files
        if delivered and await anyio.Path(video).exists():
            return RowOutcome(row.row, row.output, "succeeded", task.id, files=files)
        self.downloading += 1
        try:
            async with self._slots:
                saved = await download_results(self._client, task, video, preview)
        except ChanjingError as exc:
            reason = f"download failed: {exc}"
            return RowOutcome(row.row, row.output, "failed", task.id, reason)
        finally:
            self.downloading -= 1
        self._journal.update(handle.key, delivered_at=time.time())
        await self._journal.flush()
        return RowOutcome(row.row, row.output, "succeeded", task.id, files=saved)


async def download_results(
    client: AsyncChanjingClient, task: LipSyncTask, video: Path, preview: Path
) -> tuple[Path, ...]:
    """Save a succeeded task's video (and preview, if it has one), each written atomically.

    A task without URLs (as the journal keeps it) is read again first; a URL refused as
    expired (HTTP 401/403/404/410) is replaced by a fresh one from ``detail``, twice at most.

    Raises:
        HTTPStatusError: the download still failed.
        ChanjingError: reading the task failed.
    """
    lip_sync = client.lip_sync
    if not task.video_url:
        task = await lip_sync.get(task.id)
    await anyio.Path(video.parent).mkdir(parents=True, exist_ok=True)
    for attempt in range(1, _DOWNLOAD_ATTEMPTS + 1):
        try:
            saved = [await lip_sync.download(task, video)]
            if task.preview_url:
                saved.append(await lip_sync.download(task, preview, preview=True))
            return tuple(saved)
        except HTTPStatusError as exc:
            if exc.status not in _EXPIRED or attempt == _DOWNLOAD_ATTEMPTS:
                raise
            task = await lip_sync.get(task.id)
    raise AssertionError("unreachable")  # pragma: no cover


def _reason(error: BaseException) -> str:
    """A one-line reason, without the job-key prefix of job errors."""
    if isinstance(error, JobFailedError):
        return f"task failed: {error.msg}"
    text = str(error)
    if text.startswith("job ") and "): " in text:
        text = text.split("): ", 1)[1]
    return f"{type(error).__name__}: {text}"


def _remove_partial_downloads(out: Path) -> None:
    """Delete what downloads cut off by a crash left behind (never a final file name)."""
    for partial in out.rglob(".*.part"):
        if _PARTIAL.fullmatch(partial.name):  # ours: .<name>.<8 hex>.part, nothing else
            partial.unlink(missing_ok=True)


async def _report(
    on_progress: Callable[[BatchProgress], None],
    client: AsyncChanjingClient,
    handles: list[JobHandle],
    delivery: _Delivery,
    outcomes: dict[str, RowOutcome],
) -> None:
    while len(outcomes) < len(handles):
        on_progress(_snapshot(client, handles, delivery, outcomes))
        await anyio.sleep(_PROGRESS_EVERY)


def _snapshot(
    client: AsyncChanjingClient,
    handles: list[JobHandle],
    delivery: _Delivery,
    outcomes: dict[str, RowOutcome],
) -> BatchProgress:
    stages = Counter(
        handle.stage.value for handle in handles if handle.key not in outcomes and not handle.done
    )
    stages.update(outcome.result for outcome in outcomes.values())
    if delivery.downloading:
        stages["downloading"] = delivery.downloading
    limiter = client.limiters.create
    now = time.monotonic()
    free = limiter.next_free()
    next_create = 0.0 if not math.isfinite(free) else max(0.0, free - now)
    waiting = stages[JobStage.UPLOADING.value] + stages[JobStage.QUEUED.value]
    # The greedy schedule: after the next create, one more window per `limit` creates.
    submitted_in = next_create + (waiting - 1) // limiter.limit * limiter.window if waiting else 0.0
    return BatchProgress(len(handles), dict(stages), len(outcomes), next_create, submitted_in)


async def journal_summary(path: str | Path) -> dict[str, object]:
    """What a journal holds, without any network call: counts per stage and every row.

    Raises:
        InvalidInputError: ``path`` is not an existing file.
        ConfigurationError: it is not a journal.
    """
    if not await anyio.Path(path).is_file():
        raise InvalidInputError("journal", str(path), "must be an existing journal file")
    async with Journal(path, readonly=True) as journal:
        rows = await journal.rows()
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
                "error": row.error,
                "delivered": row.delivered_at is not None,
            }
            for row in rows
        ],
    }
