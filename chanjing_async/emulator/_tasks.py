"""Lip-sync task records and the task object derived from them on the clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._results import result_path

if TYPE_CHECKING:
    from collections.abc import Mapping

QUEUED_FRACTION = 0.1  # a task is queued (status 0) for the first 10 % of its duration


@dataclass(frozen=True)
class TaskRecord:
    """A created lip-sync task; its status and progress are derived from the clock on read.

    Attributes:
        id: The task (video) id, 32 hex.
        request: The create body as received.
        base_url: Origin of the create request, for result URLs.
        callback: Callback URL, or None.
        create_time: Unix seconds at creation on the server's wall clock (the real one plus
            ``clock_offset_seconds``; not scaled).
        created_at: Monotonic time of creation.
        ends_at: Monotonic time at which the task becomes terminal.
        duration: Result duration in milliseconds, reported on success.
        failure: The failure reason, or None for a task that will succeed.
        generation_end: Monotonic time at which generation would finish, the end of the
            progress scale; None means ``ends_at``. A task that fails early (an undecodable
            video) ends before it, with the progress it had reached.
        forced: A status set through the control route (``EmulatorState.set_task_status``):
            ``(status, msg, progress)`` shown instead of the clock's, with no result URLs;
            None follows the clock.
    """

    id: str
    request: Mapping[str, Any]
    base_url: str
    callback: str | None
    create_time: int
    created_at: float
    ends_at: float
    duration: int
    failure: str | None
    generation_end: float | None = None
    forced: tuple[int, str, int] | None = None

    def succeeded_by(self, now: float) -> bool:
        """Whether the task is in status 20, with its results, at monotonic time ``now``."""
        return self.forced is None and self.failure is None and now >= self.ends_at

    def to_object(self, now: float) -> dict[str, Any]:
        """The task object (of detail, list items and callbacks) at monotonic time ``now``.

        Queued (0) for the first 10 % of the duration, then generating (10) with progress
        rising linearly from 0 to 99, then 20 with results or 30 with the reason; a forced
        status overrides the clock. Result URLs are plain here; ``EmulatorState`` signs them
        when they expire.
        """
        status, progress, msg = 0, 0, ""
        video_url = preview_url = ""
        duration = 0
        if self.forced is not None:
            status, msg, progress = self.forced
        elif self.succeeded_by(now):
            status, progress, msg, duration = 20, 100, "success", self.duration
            video_url = self.base_url + result_path(self.id, "mp4")
            preview_url = self.base_url + result_path(self.id, "jpg")
        elif now >= self.ends_at:
            # Progress stays where generation had got to when the failure struck.
            status, progress, msg = 30, self._progress(self.ends_at), str(self.failure)
        elif now >= self._generating_from:
            status, progress = 10, self._progress(now)
        return {
            "id": self.id,
            "status": status,
            "progress": progress,
            "msg": msg,
            "video_url": video_url,
            "preview_url": preview_url,
            "duration": duration,
            "create_time": self.create_time,
        }

    @property
    def _generation_end(self) -> float:
        return self.ends_at if self.generation_end is None else self.generation_end

    @property
    def _generating_from(self) -> float:
        return self.created_at + QUEUED_FRACTION * (self._generation_end - self.created_at)

    def _progress(self, now: float) -> int:
        span = self._generation_end - self._generating_from
        if span <= 0:
            return 0
        return min(99, max(0, int(99 * (now - self._generating_from) / span)))
