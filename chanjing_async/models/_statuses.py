"""The status codes of a lip-sync task and of an uploaded file."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["FAILURES", "FileStatus", "TaskStatus"]


class TaskStatus(IntEnum):
    """Status of a lip-sync task.

    The lip-sync page documents 0, 10, 20 and 30. Chanjing's other task APIs also use 40, 41,
    50, 1100 and 1101; the lip-sync docs leave them open, so the SDK takes each for what it
    says: 40, 41, 50 and 1101 end the task as failed (never as a success), 1100 (manual
    review) keeps it waiting, like any status not listed here.
    """

    QUEUED = 0
    GENERATING = 10
    SUCCEEDED = 20
    FAILED = 30
    FAILED_RETRY = 40
    """任务失败，请重试: failed; a new create may succeed."""
    TIMED_OUT = 41
    CANCELLED = 50
    IN_REVIEW = 1100
    """Held for manual review: not ended, the task may still go on."""
    REVIEW_REJECTED = 1101

    @property
    def is_failure(self) -> bool:
        """True for the statuses that end a task without a result (30, 40, 41, 50, 1101)."""
        return self in FAILURES

    @property
    def is_terminal(self) -> bool:
        """True for SUCCEEDED and every failure status."""
        return self is TaskStatus.SUCCEEDED or self.is_failure


FAILURES = frozenset(
    {
        TaskStatus.FAILED,
        TaskStatus.FAILED_RETRY,
        TaskStatus.TIMED_OUT,
        TaskStatus.CANCELLED,
        TaskStatus.REVIEW_REJECTED,
    }
)
"""The statuses that end a task without a result."""


class FileStatus(IntEnum):
    """Status of an uploaded file (``file_detail``'s ``status``)."""

    PENDING = 0
    READY = 1
    # Ready under the vendor scripts' reading, failed under the OpenAPI file's: taken as ready,
    # and a create refused for it raises UploadError (README, Choices).
    READY_LEGACY = 2
    REJECTED = 98
    DELETED = 99
    PURGED = 100
