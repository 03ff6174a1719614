"""``Journal``: the SQLite write-ahead journal that lets a JobManager survive a crash.

Every job is a row keyed by its job key. The manager writes the row when the job is submitted,
marks it ``sent_at`` (and waits for that write to be committed) *before* its create goes on
the wire, then records the task id, every stage change and the result. After a crash, even
``kill -9`` between any two of these steps, a manager opened on the same file picks each job
up where the journal left it (``JobManager`` documents how).

What is never written: the secret key, access tokens, callback URLs we signed (they are
minted again from the job key) and result URLs (they expire; a fresh ``detail`` read gives
new ones). The file, its lock and its ``-wal`` / ``-shm`` companions are the running user's
own: never opened through a symbolic link, mode 0600 on every open (``_file``).

sqlite3 blocks, so every statement runs in a worker thread (``anyio.to_thread``), one batch at
a time under a lock. Writes queue up in memory and are committed in order, many per
transaction: :meth:`flush` commits everything queued so far (``synchronous=FULL``: a committed
write survives a crash of the process or of the machine). A commit that fails (a full disk)
raises ``JournalError`` and keeps its writes queued, or withdraws those of the caller that
recorded them (``_writes`` tells how).

One journal file is open for writing by one :class:`Journal` at a time: in another process
(a lock file next to it) or in this one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import JournalError
from ._file import Opened, open_readonly, open_writable, refusal
from ._writes import Write, WriteQueue

if TYPE_CHECKING:
    import os
    import sqlite3
    from collections.abc import Collection, Iterator
    from contextlib import AbstractContextManager
    from types import TracebackType

__all__ = ["Journal", "JournalRow"]

_COLUMNS = (
    "key, seq, spec, fingerprint, stage, task_id, sent_at, request, answered_at, task, error, "
    "delivered_at, updated_at, duplicates"
)
# Columns a stage update may set (whitelisted: they are interpolated into the statement).
# Rows read per statement when reading some keys only.
_KEYS_PER_READ = 500
_UPDATABLE = frozenset(
    {
        "stage",
        "task_id",
        "sent_at",
        "request",
        "answered_at",
        "task",
        "error",
        "delivered_at",
        "duplicates",
    }
)


@dataclass(frozen=True)
class JournalRow:
    """One job as the journal last recorded it.

    Attributes:
        key: the job key.
        seq: submission order (FIFO across runs).
        spec: the job as submitted (JSON-ready; see ``JobManager``).
        fingerprint: a digest of ``spec``, to notice a key reused for another job.
        stage: the last recorded :class:`JobStage` value.
        task_id: the task id, once known.
        sent_at: wall time the pending create was sent; None when no create is pending.
        request: the create request as sent (file ids resolved; our signed callback URL is
            not in it), so that a create cut off by a crash is reconciled or resent without
            its local files.
        answered_at: wall time the create was answered with the task id.
        task: the last task object read (result URLs removed), as a dict.
        error: why the job did not succeed, as ``"ErrorType: message"``.
        delivered_at: wall time its results were saved (batch downloads), or None.
        updated_at: wall time of the last write.
        duplicates: tasks reported as possibly made by this job's create too (a create that
            was sent again after its processing horizon, then appeared); empty normally.
    """

    key: str
    seq: int
    spec: dict[str, Any]
    fingerprint: str
    stage: str
    task_id: str | None
    sent_at: float | None
    request: dict[str, Any] | None
    answered_at: float | None
    task: dict[str, Any] | None
    error: str | None
    delivered_at: float | None
    updated_at: float
    duplicates: tuple[str, ...] = ()


class Journal:
    """A job journal in one SQLite file (WAL mode); see the module doc.

    Use it as an async context manager, or hand it (or just its path) to
    ``JobManager(journal=...)``, which opens and closes it::

        async with JobManager(client, journal="jobs.sqlite") as jobs:
            handle = await jobs.submit(request, key="order-1234")

    Args:
        path: the database file; created (0600) with its folder if missing.

    Raises:
        ConfigurationError: on open, when the file is not a journal of this version, cannot
            be opened, or is open for writing already (in this process or another).
        JournalError: a commit failed (a full disk, a read-only file): see :meth:`flush`.
    """

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._db: sqlite3.Connection | None = None
        self._opened: Opened | None = None  # a writer's claim on the file
        self._lock = anyio.Lock()
        self._writes = WriteQueue(str(self.path))
        self._next_seq = 0
        self.uploads: dict[tuple[str, str], tuple[str, float]] = {}
        """Files uploaded by any run: (sha256, service) -> (file id, upload wall time)."""

    def __repr__(self) -> str:
        state = "open" if self._db is not None else "closed"
        return f"<Journal {str(self.path)!r} {state} queued={len(self._writes)}>"

    async def __aenter__(self) -> Journal:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Open (or create) the file and load the uploads it remembers.

        Raises:
            ConfigurationError: not a journal, a journal of another version, or a journal
                open for writing already (by another process, or in this one).
        """
        async with self._lock:
            if self._db is not None:
                return
            if self.readonly:
                self._db = await anyio.to_thread.run_sync(open_readonly, self.path)
                return
            opened = await anyio.to_thread.run_sync(open_writable, self.path)
            self._opened, self._db = opened, opened.db
            self._next_seq, self.uploads = opened.next_seq, opened.uploads

    async def close(self) -> None:
        """Commit what is queued and close the file; idempotent.

        Raises:
            JournalError: the writes still queued could not be committed. The file is closed
                and released all the same; it holds what a crash at that moment would have
                left, which a later run picks up.
        """
        with anyio.CancelScope(shield=True):
            async with self._lock:
                db, self._db = self._db, None
                if db is None:
                    return
                try:
                    if not self.readonly:
                        await self._writes.commit(db)
                finally:
                    self._writes.clear()
                    await anyio.to_thread.run_sync(db.close)
                    opened, self._opened = self._opened, None
                    if opened is not None:
                        opened.release()

    async def claim(self, app_id: str, base_url: str) -> None:
        """Tie the journal to one account and server; refuse it for another.

        Its task ids mean nothing to another app id or another server (an emulator's journal
        used against the real API would resume tasks that do not exist there). A journal
        that never sent a create (no task, no send time, no duplicate on any row: a first run
        with a wrong app id or base URL) passes to the new owner, and forgets its uploads,
        whose file ids belong to the old one.

        Raises:
            ConfigurationError: the journal was written for another app id or base URL.
        """
        owner = json.dumps({"app_id": app_id, "base_url": base_url}, sort_keys=True)
        async with self._lock:
            db = self._require()
            found = await anyio.to_thread.run_sync(_meta, db, "owner")
            if found is None:
                self._queue("INSERT INTO meta VALUES ('owner', ?)", (owner,))
            elif found != owner:
                if await anyio.to_thread.run_sync(_sent_a_create, db):
                    reason = (
                        f"it belongs to {found}, not to this client ({owner}), and holds"
                        " creates sent there: give another --journal for this account"
                    )
                    raise refusal(self.path, reason)
                self._queue("UPDATE meta SET value = ? WHERE name = 'owner'", (owner,))
                self._queue("DELETE FROM uploads", ())
                self.uploads.clear()

    def _require(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"journal {str(self.path)!r} is not open")
        return self._db

    # -- writes (queued; committed in order by flush) ----------------------------------------

    def add(self, key: str, spec: dict[str, Any], fingerprint: str, stage: str) -> None:
        """Queue a new job row."""
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        self._queue(
            "INSERT INTO jobs (key, seq, spec, fingerprint, stage, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (key, seq, json.dumps(spec, ensure_ascii=False), fingerprint, stage, time.time()),
        )

    def forget(self, key: str) -> None:
        """Queue the removal of a job row (one that never made a task, replaced by another)."""
        self._queue("DELETE FROM jobs WHERE key = ?", (key,))

    def update(self, key: str, **values: Any) -> None:
        """Queue new values for some columns of a job (dicts are stored as JSON)."""
        unknown = set(values) - _UPDATABLE
        if unknown:
            raise ValueError(f"not journal columns: {sorted(unknown)}")
        columns = ", ".join(f"{name} = ?" for name in values)
        params = [
            json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value
            for value in values.values()
        ]
        self._queue(
            f"UPDATE jobs SET {columns}, updated_at = ? WHERE key = ?",
            (*params, time.time(), key),
        )

    def remember_upload(self, digest: str, service: str, file_id: str) -> None:
        """Queue an uploaded file, for reuse by later jobs and runs."""
        at = time.time()
        self.uploads[(digest, service)] = (file_id, at)
        self._queue(
            "INSERT OR REPLACE INTO uploads VALUES (?, ?, ?, ?)", (digest, service, file_id, at)
        )

    def _queue(self, sql: str, params: tuple[Any, ...]) -> None:
        self._require()
        if self.readonly:
            raise RuntimeError(f"journal {str(self.path)!r} is open read-only")
        self._writes.put(sql, params)

    def recording(self) -> AbstractContextManager[list[Write]]:
        """Collect the writes queued inside the block (which must not await), for
        :meth:`flush`: ``with journal.recording() as mine: journal.add(...)``."""
        return self._writes.recording()

    @property
    def queued(self) -> int:
        """Writes waiting for :meth:`flush`."""
        return len(self._writes)

    async def flush(self, writes: list[Write] | None = None) -> None:
        """Commit every write queued so far, in one transaction.

        Once started, the commit runs to its end even if the caller is cancelled.

        Args:
            writes: the caller's own writes (from :meth:`recording`). If the commit fails,
                they are withdrawn, as if never made, so that the call that made them can be
                made again; if an earlier commit took them, their fate was decided then and
                this returns.

        Raises:
            JournalError: the commit failed (a full disk, a read-only file). Nothing of it
                was committed; its writes stay queued, first, except ``writes``.
        """
        async with self._lock:
            try:
                await self._commit_queued()
            except JournalError:
                if writes is None or self._writes.withdraw(writes):
                    raise

    async def _commit_queued(self) -> None:
        """Commit the queue; the caller holds the lock."""
        if self._db is not None:
            await self._writes.commit(self._db)

    async def autoflush(self, delay: float = 0.05) -> None:
        """Commit queued writes within ``delay`` seconds of the first, until cancelled.

        It never raises for a failed commit: it logs a warning (once per outage) and tries
        again, the pause doubling up to 5 s.
        """
        await self._writes.autoflush(self.flush, delay)

    # -- reads -------------------------------------------------------------------------------

    async def rows(self, keys: Collection[str] | None = None) -> list[JournalRow]:
        """Every job row (or those of ``keys``), in submission order.

        Queued writes are committed first.

        Raises:
            JournalError: they could not be.
        """
        async with self._lock:
            db = self._require()
            await self._commit_queued()
            found = await anyio.to_thread.run_sync(_select_rows, db, keys)
        return found


def _meta(db: sqlite3.Connection, name: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def _sent_a_create(db: sqlite3.Connection) -> bool:
    """Whether some row shows a create that may have reached the journal's owner."""
    found = db.execute(
        "SELECT 1 FROM jobs WHERE task_id IS NOT NULL OR sent_at IS NOT NULL"
        " OR duplicates IS NOT NULL OR task IS NOT NULL LIMIT 1"
    ).fetchone()
    return found is not None


def _select_rows(db: sqlite3.Connection, keys: Collection[str] | None) -> list[JournalRow]:
    if keys is None:
        rows = db.execute(f"SELECT {_COLUMNS} FROM jobs ORDER BY seq").fetchall()
    else:
        rows = []
        for chunk in _chunks(list(keys), _KEYS_PER_READ):
            marks = ", ".join("?" * len(chunk))
            rows += db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE key IN ({marks})", chunk)
        rows.sort(key=lambda row: row[1])  # seq
    return [
        JournalRow(
            key=key,
            seq=seq,
            spec=json.loads(spec),
            fingerprint=fingerprint,
            stage=stage,
            task_id=task_id,
            sent_at=sent_at,
            request=json.loads(request) if request else None,
            answered_at=answered_at,
            task=json.loads(task) if task else None,
            error=error,
            delivered_at=delivered_at,
            updated_at=updated_at,
            duplicates=tuple(json.loads(duplicates)) if duplicates else (),
        )
        for (
            key,
            seq,
            spec,
            fingerprint,
            stage,
            task_id,
            sent_at,
            request,
            answered_at,
            task,
            error,
            delivered_at,
            updated_at,
            duplicates,
        ) in rows
    ]


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
