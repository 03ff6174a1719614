"""``JobStore``: what a JobManager keeps of its jobs beyond its own memory, and where.

The manager talks to persistence through this interface only. Two stores implement it: the
SQLite journal (``_journal_store.JournalStore``, what ``JobManager(journal=...)`` gives) and
:class:`MemoryStore`, which keeps nothing, for a manager without a journal. Another store
(a database server) implements the same operations and is chosen in :func:`open_store`;
the manager does not change.

The contract, whatever the store:

* each job is one record keyed by its job key, written by ``begin`` when it is submitted and
  committed (``write_down``) before ``submit`` returns;
* ``going_out`` commits that a job's create is leaving before it does; a store that cannot
  commit it raises ``JournalError`` and the create is not sent;
* every other write (task id, stage, end, duplicates, uploads, deliveries) may be queued and
  committed soon after (``run``), or at ``close``;
* a store whose records outlive the process is ``durable``: the manager then sends creates one
  at a time, so that a crash leaves at most one create unexplained.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..stores._journal import Journal
from ._journal_store import JournalStore

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Collection, Iterable

    from ..client._client import AsyncChanjingClient
    from ..models import LipSyncRequest
    from ..stores._journal import JournalRow
    from ._handle import JobHandle
    from ._jobspec import LipSyncJob

__all__ = ["JobStore", "MemoryStore", "open_store"]


class JobStore(Protocol):
    """The persistence of a JobManager's jobs (see the module doc for the contract).

    Attributes:
        journal: the SQLite journal behind the store, if that is what it is
            (``JobManager.journal``); None otherwise.
        durable: records survive the process, so creates go out one at a time.
    """

    journal: Journal | None
    durable: bool

    # -- the store itself -------------------------------------------------------------------------

    async def open(self, client: AsyncChanjingClient) -> None:
        """Open for ``client``'s account and read the records of earlier runs.

        Raises:
            ConfigurationError: the store belongs to another account or server, or is in use.
            JournalError: it cannot be written.
        """

    async def run(self) -> None:
        """Commit queued writes soon after they are made, until cancelled (or return at once
        when there is nothing to commit)."""

    def closing(self) -> None:
        """The manager is closing: the jobs it cancels now stay unfinished in the store."""

    async def close(self, raised: BaseException | None) -> None:
        """Commit what is queued and close. A failure to commit is raised, unless the manager's
        block raised ``raised`` already (then it is logged).

        Raises:
            JournalError: the last writes could not be committed.
        """

    # -- records not taken up by a live job ------------------------------------------------------

    async def recall(self, keys: Iterable[object] | None = None) -> None:
        """Read back the records of ``keys`` (or of every job this run left unfinished) that are
        no longer in memory, so that a submit or ``resume`` takes them up.

        Raises:
            JournalError: queued writes could not be committed before the read.
        """

    def row(self, key: str) -> JournalRow | None:
        """The record of job ``key`` not taken up yet, if any."""

    def finished(self, key: str) -> tuple[JobHandle, str] | None:
        """The done handle and fingerprint of job ``key``, if its record says it ended."""

    def unfinished(self) -> list[JournalRow]:
        """The records not taken up yet whose job has not ended, in submission order."""

    def owns(self, task_id: str) -> bool:
        """Whether a recent earlier run created task ``task_id``."""

    # -- one job ----------------------------------------------------------------------------------

    async def write_down(self, begin: Callable[[], None]) -> None:
        """Call ``begin`` (synchronous: it calls :meth:`begin` for some jobs) and commit what it
        wrote, shielded from cancellation.

        Raises:
            JournalError: the commit failed; what ``begin`` wrote is withdrawn.
        """

    def begin(
        self,
        handle: JobHandle,
        job: LipSyncRequest | LipSyncJob,
        row: JournalRow | None,
        fingerprint: str,
    ) -> JournalRow | None:
        """Write a job down as it starts (resuming ``row``), and follow its handle from then on.

        Returns:
            The record to resume from; None to start afresh. The handle is done when the
            record says the job ended.
        """

    def undo(self, handle: JobHandle, row: JournalRow | None) -> None:
        """Forget a job whose writes were withdrawn (its submit failed)."""

    async def going_out(self, key: str, request: dict[str, Any]) -> None:
        """Commit that job ``key``'s create is leaving now, with its request (as JSON).

        Raises:
            JournalError: it could not be committed; the create must not be sent.
        """

    def created(self, key: str, task_id: str) -> None:
        """Job ``key``'s create answered with ``task_id``."""

    def requeued(self, key: str) -> None:
        """Job ``key``'s create was refused, or created nothing: none of it is pending."""

    def duplicates(self, key: str, task_ids: Iterable[str]) -> None:
        """The tasks job ``key``'s create may also have made."""

    # -- uploads and deliveries ----------------------------------------------------------------

    def upload_of(self, digest: str, service: str) -> tuple[str, float] | None:
        """The file id and upload wall time of content ``digest`` in ``service``, if kept."""

    def remember_upload(self, digest: str, service: str, file_id: str) -> None:
        """Keep an uploaded file for later jobs and runs."""

    async def rows(self, keys: Collection[str] | None = None) -> list[JournalRow]:
        """Every record (or those of ``keys``), in submission order, queued writes committed.

        Raises:
            JournalError: the queued writes could not be committed.
        """

    async def mark_delivered(self, key: str) -> None:
        """Commit that job ``key``'s results were saved (batch downloads).

        Raises:
            JournalError: it could not be committed.
        """


class MemoryStore:
    """The store of a manager without a journal: nothing outlives the manager."""

    journal: Journal | None = None
    durable = False

    async def open(self, client: AsyncChanjingClient) -> None:
        pass

    async def run(self) -> None:
        pass

    def closing(self) -> None:
        pass

    async def close(self, raised: BaseException | None) -> None:
        pass

    async def recall(self, keys: Iterable[object] | None = None) -> None:
        pass

    def row(self, key: str) -> JournalRow | None:
        return None

    def finished(self, key: str) -> tuple[JobHandle, str] | None:
        return None

    def unfinished(self) -> list[JournalRow]:
        return []

    def owns(self, task_id: str) -> bool:
        return False

    async def write_down(self, begin: Callable[[], None]) -> None:
        begin()

    def begin(
        self,
        handle: JobHandle,
        job: LipSyncRequest | LipSyncJob,
        row: JournalRow | None,
        fingerprint: str,
    ) -> JournalRow | None:
        return None

    def undo(self, handle: JobHandle, row: JournalRow | None) -> None:
        pass

    async def going_out(self, key: str, request: dict[str, Any]) -> None:
        pass

    def created(self, key: str, task_id: str) -> None:
        pass

    def requeued(self, key: str) -> None:
        pass

    def duplicates(self, key: str, task_ids: Iterable[str]) -> None:
        pass

    def upload_of(self, digest: str, service: str) -> tuple[str, float] | None:
        return None

    def remember_upload(self, digest: str, service: str, file_id: str) -> None:
        pass

    async def rows(self, keys: Collection[str] | None = None) -> list[JournalRow]:
        return []

    async def mark_delivered(self, key: str) -> None:
        pass


def open_store(journal: Journal | str | os.PathLike[str] | None, *, retry_failed: bool) -> JobStore:
    """The store of a manager given ``journal`` (a Journal, its path, or None)."""
    if journal is None:
        return MemoryStore()
    return JournalStore(
        journal if isinstance(journal, Journal) else Journal(journal), retry_failed=retry_failed
    )
