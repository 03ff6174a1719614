"""One record per live job of a JobManager, and the handles of the jobs that ended lately.

Everything the manager keeps for a job until it ends is on its :class:`JobRecord`, so ending a
job drops one entry (:meth:`Registry.end`); its handle then stays findable by key among the
last ``RECENT_KEYS`` that ended, so that a late repeat of its callback is a duplicate, not
unknown.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import anyio

    from ..models import LipSyncRequest
    from ._handle import JobHandle

__all__ = ["RECENT_KEYS", "JobRecord", "Registry"]

RECENT_KEYS = 4096
"""Handles of ended jobs kept findable by key."""


@dataclass(eq=False)
class JobRecord:
    """A live job of the manager.

    Attributes:
        handle: its handle.
        fingerprint: the digest of its fields (a key submitted again must match it); empty
            for a task attached by id.
        timeout: its own deadline once created, or None for the manager's.
        request: the create request, once its files are uploaded and until a task is made.
        uploading: the scope of its uploads while they run (cancelling the job cancels it).
    """

    handle: JobHandle
    fingerprint: str = ""
    timeout: float | None = None
    request: LipSyncRequest | None = None
    uploading: anyio.CancelScope | None = None


class Registry:
    """The live jobs of a manager by key, and the handles of those that ended lately."""

    def __init__(self) -> None:
        self.live: dict[str, JobRecord] = {}
        self._recent: OrderedDict[str, JobHandle] = OrderedDict()

    def __len__(self) -> int:
        return len(self.live)

    def add(self, record: JobRecord) -> None:
        self.live[record.handle.key] = record

    def record(self, key: str) -> JobRecord | None:
        """The record of live job ``key``."""
        return self.live.get(key)

    def handle(self, key: str) -> JobHandle | None:
        """The handle of job ``key``, live or ended lately."""
        record = self.live.get(key)
        return record.handle if record is not None else self._recent.get(key)

    def ended(self, key: str) -> JobHandle | None:
        """The handle of job ``key`` if it ended lately (and is not live again)."""
        return self._recent.get(key)

    def drop(self, key: str) -> None:
        """Forget a job as if it had never been submitted."""
        self.live.pop(key, None)

    def end(self, handle: JobHandle) -> None:
        """A job ended: drop its record; its handle joins those that ended lately."""
        if self.live.pop(handle.key, None) is not None:
            self._recent[handle.key] = handle
            if len(self._recent) > RECENT_KEYS:
                self._recent.popitem(last=False)
