"""Progress of ``chanjing batch run`` in words: the bar's text, and plain lines for logs.

On a terminal the run shows a live bar. Anywhere else (cron, systemd, CI, ``> log 2>&1``) a
bar would print nothing until the end, so the run writes plain lines instead, without ANSI
codes: one when it starts, one every 30 seconds of wall time (divided by ``--time-scale``,
so an emulator run at K times the pace reports K times as often), and one at the end. Each
line says the rows finished out of the total, the rows per stage, when the last waiting row
will be created (the create limit paces a long run) and, once rows finish, an estimate of
the end from the pace of this run.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..batch._runner import BatchProgress

EVERY = 30.0
"""Seconds of wall time between two plain progress lines, at time scale 1."""

STAGE_ORDER = (
    "uploading",
    "queued",
    "submitted",
    "generating",
    "downloading",
    "succeeded",
    "failed",
    "not sent",
    "unfinished",
    "changed",
)


def plural(count: int, noun: str) -> str:
    """``1 row``, ``2 rows``, ``0 rows``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def duration(seconds: float) -> str:
    """``45s``, ``3m05s``, ``2h10m``: short enough for a progress line."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def stage_counts(snapshot: BatchProgress) -> str:
    """``queued 3, generating 5, succeeded 2``: the stages that hold rows, in run order."""
    return ", ".join(
        f"{stage} {snapshot.stages[stage]}" for stage in STAGE_ORDER if snapshot.stages.get(stage)
    )


def created_in(snapshot: BatchProgress) -> str:
    """When the last waiting row will be created; empty once none waits."""
    if snapshot.submitted_in < 1:
        return ""
    return f"all created in ~{duration(snapshot.submitted_in)}"


class ProgressLines:
    """``on_progress`` for a run whose stderr is not a terminal: a line now and then.

    Args:
        write: prints one line.
        every: wall seconds between two lines.
        clock: the monotonic clock.
    """

    def __init__(
        self,
        write: Callable[[str], None],
        every: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self._every = every
        self._clock = clock
        self._started = clock()
        self._due = self._started  # the first snapshot is shown at once
        self._earlier: int | None = None  # rows finished before this run's first snapshot
        self._last: BatchProgress | None = None

    def __call__(self, snapshot: BatchProgress) -> None:
        if self._earlier is None:
            self._earlier = snapshot.finished
        self._last = snapshot
        now = self._clock()
        if now >= self._due:
            self._due = now + self._every
            self._write(self._line(snapshot, now))

    def end(self) -> None:
        """The last line: every row finished, and how long it took."""
        if self._last is not None:
            self._write(self._line(self._last, self._clock(), ended=True))

    def _line(self, snapshot: BatchProgress, now: float, *, ended: bool = False) -> str:
        elapsed = now - self._started
        parts = [f"lip-sync: {snapshot.finished}/{plural(snapshot.total, 'row')} finished"]
        counts = stage_counts(snapshot)
        if counts:
            parts.append(counts)
        if ended:
            parts.append(f"took {duration(elapsed)}")
            return " | ".join(parts)
        parts += [part for part in (created_in(snapshot), self._eta(snapshot, elapsed)) if part]
        parts.append(f"{duration(elapsed)} elapsed")
        return " | ".join(parts)

    def _eta(self, snapshot: BatchProgress, elapsed: float) -> str:
        """The end, at the pace rows finished in this run so far (resumed rows excluded)."""
        done = snapshot.finished - (self._earlier or 0)
        left = snapshot.total - snapshot.finished
        if done <= 0 or left <= 0 or elapsed <= 0:
            return ""
        return f"ends in ~{duration(left * elapsed / done)}"
