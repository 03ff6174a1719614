"""What a batch run holds while it runs, and what it reports: each row's outcome, progress.

``run_batch`` (``batch``) reads the rows and submits them; :class:`Run` holds the rows in
progress and the counts the progress snapshots are made of, and stops the run when told to
(refused credentials): :func:`left_behind` then gives the rows that did not end an outcome.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

import anyio

from ..jobs._handle import JobStage
from ._manifest import ManifestRow

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from ..client._client import AsyncChanjingClient
    from ..errors import InvalidInputError
    from ..jobs._handle import JobHandle
    from ..jobs._store import JobStore
    from ._manifest import RowError

__all__ = ["BatchProgress", "BatchReport", "Result", "RowOutcome"]

_PROGRESS_EVERY = 0.1
_CHANGED = (
    "changed since an earlier run journaled it under this output name, so it was not run: "
    "give the row a new output name to run it anew (what the earlier run made stays)"
)

Result = Literal["succeeded", "failed", "skipped", "not sent", "unfinished", "changed"]


@dataclass(frozen=True)
class RowOutcome:
    """How one manifest row ended.

    Attributes:
        row: its row in the manifest.
        output: its output name (also its job key in the journal).
        result: ``succeeded``; ``failed`` (the service refused or failed it, its download
            failed, or its create may have made tasks that could not be told apart);
            ``not sent`` (no create of it was sent: running the batch again runs it);
            ``unfinished`` (created, or its create's outcome still unknown, when it stopped:
            running again finishes it, no new task); ``changed`` (its output name was
            journaled for a different row, so it was not run); ``skipped`` (an invalid row,
            with --skip-invalid).
        task_id: its task, if one was created.
        reason: why it did not succeed.
        files: the files saved for it.
        resumed: True when an earlier run had already finished it.
    """

    row: int
    output: str
    result: Result
    task_id: str | None = None
    reason: str | None = None
    files: tuple[Path, ...] = ()
    resumed: bool = False


@dataclass
class BatchReport:
    """Every row's outcome, in manifest order.

    Attributes:
        outcomes: one per row.
        stopped: why the batch stopped before its end (the credentials were refused), or None.
    """

    outcomes: list[RowOutcome] = field(default_factory=list)
    stopped: str | None = None

    def count(self, result: Result) -> int:
        """Rows that ended with ``result``."""
        return sum(outcome.result == result for outcome in self.outcomes)

    @property
    def exit_code(self) -> int:
        """0 when every row succeeded, else 1 (a batch stopped by refused credentials too:
        the API refused a request, as for every command; 2 is for input refused before
        anything is sent)."""
        return 0 if all(outcome.result == "succeeded" for outcome in self.outcomes) else 1


@dataclass(frozen=True)
class BatchProgress:
    """A snapshot of a running batch, for progress displays.

    Attributes:
        total: valid rows of this run (those still in the manifest count as queued).
        stages: rows per stage (``JobStage`` values, plus ``downloading``), and the rows
            ended per result (``RowOutcome.result``: succeeded, failed, not sent ...).
        finished: rows ended (whatever their result, or finished earlier).
        next_create: seconds until the create limiter admits the next create (0: now).
        submitted_in: estimated seconds until every row waiting for a create is created.
    """

    total: int
    stages: dict[str, int]
    finished: int
    next_create: float
    submitted_in: float


def skipped(errors: list[RowError]) -> RowOutcome:
    reason = "; ".join(str(error) for error in errors)
    return RowOutcome(errors[0].row, "-", "skipped", reason=reason)


def refused(row: ManifestRow, exc: InvalidInputError, *, known: bool) -> RowOutcome:
    """A row submit refused: its output name journaled for another row by an earlier run
    (``known``: used by another row of this run), or a file leaving the output folder."""
    if exc.field == "key" and not known:
        return RowOutcome(row.row, row.output, "changed", reason=_CHANGED)
    return RowOutcome(row.row, row.output, "failed", reason=f"refused: {exc.field}: {exc.allowed}")


async def left_behind(
    store: JobStore, run: Run, unread: Iterator[ManifestRow | list[RowError]]
) -> None:
    """The outcomes of a stopped batch's rows that did not end: those in progress (left
    unfinished in the journal by the closing manager) and those not read yet (not submitted)."""
    assert run.stopped is not None
    reason = f"the batch stopped: {run.stopped}"
    rows = {row.key: row for row in await store.rows(list(run.live))}
    for key, (item, handle) in list(run.live.items()):
        row = rows.get(key)
        sent = handle.task_id is not None or (row is not None and row.sent_at is not None)
        run.ended(RowOutcome(item.row, key, "unfinished" if sent else "not sent", reason=reason))
    if run.reading is not None and run.reading.output not in rows:
        run.ended(RowOutcome(run.reading.row, run.reading.output, "not sent", reason=reason))
    for rest in unread:
        if isinstance(rest, ManifestRow):
            run.ended(RowOutcome(rest.row, rest.output, "not sent", reason=reason))
        else:
            run.outcomes.append(skipped(rest))


class Run:
    """What a running batch holds: the rows in progress (at most the window) and counts.

    Attributes:
        live: the rows in progress and their handles, by output name.
        submitting: rows are still read and submitted.
        reading: the row being read and submitted, if any.
        scope: the cancel scope of the rows in progress, cancelled by :meth:`stop`.
        stopped: why the batch stopped, or None.
    """

    def __init__(
        self, delivery: Downloading, total: int | None, outcomes: list[RowOutcome]
    ) -> None:
        self.delivery = delivery
        self.total = total
        self.outcomes = outcomes
        self.live: dict[str, tuple[ManifestRow, JobHandle]] = {}
        self.results: Counter[str] = Counter()
        self.submitting = True
        self.reading: ManifestRow | None = None
        self.scope: anyio.CancelScope | None = None
        self.stopped: str | None = None

    def ended(self, outcome: RowOutcome) -> None:
        self.live.pop(outcome.output, None)
        self.results[outcome.result] += 1
        self.outcomes.append(outcome)

    def stop(self, why: str) -> None:
        """Stop reading and following rows (the first reason is kept)."""
        if self.stopped is None:
            self.stopped = why
            assert self.scope is not None
            self.scope.cancel()

    @property
    def finished(self) -> int:
        return sum(self.results.values())


class Downloading(Protocol):
    """What progress needs of a batch's downloads."""

    downloading: int


async def report_progress(
    on_progress: Callable[[BatchProgress], None], client: AsyncChanjingClient, run: Run
) -> None:
    while run.submitting or run.live:
        on_progress(snapshot(client, run))
        await anyio.sleep(_PROGRESS_EVERY)


def snapshot(client: AsyncChanjingClient, run: Run) -> BatchProgress:
    stages = Counter(handle.stage.value for _, handle in run.live.values() if not handle.done)
    stages.update({result: count for result, count in run.results.items() if result != "skipped"})
    total = run.finished + len(run.live) if run.total is None else run.total
    unread = max(0, total - run.finished - len(run.live))  # still in the manifest
    if unread:
        stages[JobStage.QUEUED.value] += unread
    if run.delivery.downloading:
        stages["downloading"] = run.delivery.downloading
    limiter = client.limiters.create
    now = time.monotonic()
    free = limiter.next_free()
    next_create = 0.0 if not math.isfinite(free) else max(0.0, free - now)
    waiting = stages[JobStage.UPLOADING.value] + stages[JobStage.QUEUED.value]
    # The greedy schedule: after the next create, one more window per `limit` creates.
    submitted_in = next_create + (waiting - 1) // limiter.limit * limiter.window if waiting else 0.0
    return BatchProgress(total, dict(stages), run.finished, next_create, submitted_in)
