"""``PollPolicy``: how often the shared poller reads each task, and when it gives one up."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .._checks import check_setting
from ..models import MAX_PAGE_SIZE


@dataclass(frozen=True)
class PollPolicy:
    """How often the shared poller reads each task, in seconds of real time.

    A task is first read ``first`` seconds after its create, then after an interval that
    starts at ``min_interval`` and grows ×``growth`` up to ``max_interval``. Once the task
    reports progress, the interval is also cut to the estimated time left (from the progress
    rate), so the end is seen soon after it happens. Intervals get ±``jitter`` (a fraction).
    Jobs whose callback URL is ours grow to ``callback_interval`` instead: the callback brings
    the end, polling is the safety net for a callback that never comes.

    Attributes:
        first: delay before the first read of a new task.
        min_interval: shortest interval between two reads of a task.
        max_interval: longest interval, without callbacks.
        growth: factor applied to the interval after each read (1 keeps it fixed).
        callback_interval: longest interval for jobs with a callback receiver.
        batch_threshold: fewest due tasks for which ``list`` pages are read instead of
            ``detail`` (more are needed when the tasks in flight fill several pages).
        page_size: tasks per list page (at most 100).
        jitter: relative random spread of each interval, 0 to 0.5.
        error_backoff: delay before reading again a task whose read failed.
        file_interval: first delay between readiness checks of a file the manager uploaded
            (``files.upload(poll_interval=...)``).
        missing_reads: how many ``detail`` reads must answer 40000 (the server does not know
            the task) before the job ends with TaskNotFoundError; at least 1.
        missing_window: the least time between the first and the last of those reads; a task
            just created on a lagging replica, or a server briefly confused, gets this long to
            show up again. The last word is a list reading that does not show the task.

    Raises:
        ConfigurationError: (a ValueError) a value out of range.
    """

    first: float = 5.0
    min_interval: float = 2.0
    max_interval: float = 30.0
    growth: float = 1.5
    callback_interval: float = 120.0
    batch_threshold: int = 2
    page_size: int = MAX_PAGE_SIZE
    jitter: float = 0.1
    error_backoff: float = 2.0
    file_interval: float = 1.0
    missing_reads: int = 3
    missing_window: float = 30.0

    def __post_init__(self) -> None:
        for name in ("first", "min_interval", "error_backoff", "file_interval"):
            check_setting(f"PollPolicy.{name}", getattr(self, name), above=True, unit="seconds")
        for name in ("max_interval", "callback_interval"):
            check_setting(
                f"PollPolicy.{name}", getattr(self, name), minimum=self.min_interval, unit="seconds"
            )
        check_setting("PollPolicy.growth", self.growth, minimum=1)
        check_setting("PollPolicy.batch_threshold", self.batch_threshold, integer=True, minimum=1)
        check_setting(
            "PollPolicy.page_size", self.page_size, integer=True, minimum=1, maximum=MAX_PAGE_SIZE
        )
        check_setting("PollPolicy.jitter", self.jitter, maximum=0.5)
        check_setting("PollPolicy.missing_reads", self.missing_reads, integer=True, minimum=1)
        check_setting("PollPolicy.missing_window", self.missing_window, unit="seconds")

    def scaled(self, time_scale: float) -> PollPolicy:
        """The same policy on a clock running ``time_scale`` times faster (emulator tests)."""
        check_setting("time_scale", time_scale, above=True)
        k = time_scale
        return replace(
            self,
            first=self.first / k,
            min_interval=self.min_interval / k,
            max_interval=self.max_interval / k,
            callback_interval=self.callback_interval / k,
            error_backoff=self.error_backoff / k,
            file_interval=self.file_interval / k,
            missing_window=self.missing_window / k,
        )

    @property
    def missing_spacing(self) -> float:
        """Delay between two reads of a task the server said it does not know: the
        ``missing_reads`` reads spread over ``missing_window`` (never below ``error_backoff``)."""
        return max(self.error_backoff, self.missing_window / max(1, self.missing_reads - 1))
