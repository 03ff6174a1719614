"""``Journal``: the SQLite write-ahead journal that lets a JobManager survive a crash.

Every job is a row keyed by its job key. The manager writes the row when the job is submitted,
marks it ``sent_at`` (and waits for that write to be committed) *before* its create goes on
the wire, then records the task id, every stage change and the result. After a crash, even
``kill -9`` between any two of these steps, a manager opened on the same file picks each job
up where the journal left it (``JobManager`` documents how).

What is never written: the secret key, access tokens, callback URLs we signed (they are
minted again from the job key) and result URLs (they expire; a fresh ``detail`` read gives
new ones). The file and its ``-wal`` / ``-shm`` companions are created readable by the owner
only (0600).

sqlite3 blocks, so every statement runs in a worker thread (``anyio.to_thread``), one batch at
a time under a lock. Writes queue up in memory and are committed in order, many per
transaction: :meth:`flush` commits everything queued so far (``synchronous=FULL``: a committed
write survives a crash of the process or of the machine).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from .errors import ConfigurationError

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["Journal", "JournalRow"]

_SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    spec TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    stage TEXT NOT NULL,
    task_id TEXT,
    sent_at REAL,
    request TEXT,
    answered_at REAL,
    task TEXT,
    error TEXT,
    delivered_at REAL,
    updated_at REAL NOT NULL,
    duplicates TEXT
);
CREATE TABLE IF NOT EXISTS uploads (
    digest TEXT NOT NULL,
    service TEXT NOT NULL,
    file_id TEXT NOT NULL,
    uploaded_at REAL NOT NULL,
    PRIMARY KEY (digest, service)
);
"""
_COLUMNS = (
    "key, seq, spec, fingerprint, stage, task_id, sent_at, request, answered_at, task, error, "
    "delivered_at, updated_at, duplicates"
)
# Columns a stage update may set (whitelisted: they are interpolated into the statement).
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
        ConfigurationError: on open, when the file is not a journal of this version or
            cannot be opened.
    """

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._db: sqlite3.Connection | None = None
        self._lock_file: int | None = None
        self._lock = anyio.Lock()
        self._queued: list[tuple[str, tuple[Any, ...]]] = []
        self._dirty = anyio.Event()
        self._next_seq = 0
        self.uploads: dict[tuple[str, str], tuple[str, float]] = {}
        """Files uploaded by any run: (sha256, service) -> (file id, upload wall time)."""

    def __repr__(self) -> str:
        state = "open" if self._db is not None else "closed"
        return f"<Journal {str(self.path)!r} {state} queued={len(self._queued)}>"

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
                another process has open for writing.
        """
        async with self._lock:
            if self._db is None:
                connect = self._connect_readonly if self.readonly else self._connect
                self._db = await anyio.to_thread.run_sync(connect)

    def _fail(self, reason: str) -> ConfigurationError:
        return ConfigurationError(f"journal {str(self.path)!r}: {reason}")

    def _connect_readonly(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        except (OSError, sqlite3.Error) as exc:
            raise self._fail(f"cannot be read ({exc})") from None
        if "meta" not in tables or "jobs" not in tables:
            db.close()
            raise self._fail("not a journal database")
        return db

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Created 0600 before SQLite opens it; SQLite gives -wal and -shm the same mode.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            self._lock_file = _exclusive(self.path.with_name(f"{self.path.name}.lock"))
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except BlockingIOError:
            raise self._fail(
                "another process has it open (a run of the same batch?); wait for it to end"
            ) from None
        except (OSError, sqlite3.Error) as exc:
            self._unlock()
            raise self._fail(f"cannot be opened ({exc})") from None
        try:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
            if tables and "meta" not in tables:
                raise self._fail("not a journal database (it holds other tables)")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
            if "duplicates" not in columns:  # a journal written before the column existed
                db.execute("ALTER TABLE jobs ADD COLUMN duplicates TEXT")
            version = db.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
            if version is None:
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (_SCHEMA_VERSION,))
            elif version[0] != _SCHEMA_VERSION:
                raise self._fail(
                    f"schema version {version[0]}, this SDK reads version {_SCHEMA_VERSION}"
                )
            self._next_seq = db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM jobs").fetchone()[0]
            self.uploads = {
                (digest, service): (file_id, at)
                for digest, service, file_id, at in db.execute(
                    "SELECT digest, service, file_id, uploaded_at FROM uploads"
                )
            }
        except sqlite3.DatabaseError as exc:
            db.close()
            self._unlock()
            raise self._fail(f"not a journal database ({exc})") from None
        except BaseException:
            db.close()
            self._unlock()
            raise
        return db

    def _unlock(self) -> None:
        if self._lock_file is not None:
            os.close(self._lock_file)  # closing the descriptor releases the lock
            self._lock_file = None

    async def close(self) -> None:
        """Commit what is queued and close the file; idempotent."""
        with anyio.CancelScope(shield=True):
            async with self._lock:
                db, self._db = self._db, None
                if db is None:
                    return
                try:
                    batch, self._queued = self._queued, []
                    if batch and not self.readonly:
                        await anyio.to_thread.run_sync(_commit, db, batch)
                finally:
                    await anyio.to_thread.run_sync(db.close)
                    self._unlock()

    async def claim(self, app_id: str, base_url: str) -> None:
        """Tie the journal to one account and server; refuse it for another.

        Its task ids mean nothing to another app id or another server (an emulator's journal
        used against the real API would resume tasks that do not exist there).

        Raises:
            ConfigurationError: the journal was written for another app id or base URL.
        """
        owner = json.dumps({"app_id": app_id, "base_url": base_url}, sort_keys=True)
        async with self._lock:
            db = self._require()
            found = await anyio.to_thread.run_sync(_meta, db, "owner")
            if found is None:
                self._queued.insert(0, ("INSERT INTO meta VALUES ('owner', ?)", (owner,)))
            elif found != owner:
                raise self._fail(f"it belongs to {found}, not to this client ({owner})")

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
        self._queued.append((sql, params))
        self._dirty.set()

    @property
    def queued(self) -> int:
        """Writes waiting for :meth:`flush`."""
        return len(self._queued)

    async def flush(self) -> None:
        """Commit every write queued so far, in one transaction.

        Once started, the commit runs to its end even if the caller is cancelled. A commit
        that fails puts its writes back at the head of the queue and raises, so no write is
        dropped and no waiting caller is told it succeeded.
        """
        async with self._lock:
            await self._commit_queued()

    async def _commit_queued(self) -> None:
        """Commit the queue; the caller holds the lock."""
        with anyio.CancelScope(shield=True):
            batch, self._queued = self._queued, []
            if not batch or self._db is None:
                return
            try:
                await anyio.to_thread.run_sync(_commit, self._db, batch)
            except BaseException:
                self._queued[:0] = batch
                raise

    async def autoflush(self, delay: float = 0.05) -> None:
        """Commit queued writes within ``delay`` seconds of the first, until cancelled."""
        while True:
            await self._dirty.wait()
            self._dirty = anyio.Event()
            await anyio.sleep(delay)
            await self.flush()

    # -- reads -------------------------------------------------------------------------------

    async def rows(self) -> list[JournalRow]:
        """Every job row, in submission order (queued writes are committed first)."""
        async with self._lock:
            db = self._require()
            await self._commit_queued()
            found = await anyio.to_thread.run_sync(_select_rows, db)
        return found


def _exclusive(path: Path) -> int | None:
    """Hold an exclusive lock on ``path`` (created 0600); None where flock does not exist.

    Raises:
        BlockingIOError: another process holds it.
    """
    try:
        import fcntl  # POSIX only
    except ImportError:  # pragma: no cover - Windows: no lock, documented
        return None
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(handle)
        raise
    return handle


def _meta(db: sqlite3.Connection, name: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def _commit(db: sqlite3.Connection, batch: list[tuple[str, tuple[Any, ...]]]) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        for sql, params in batch:
            db.execute(sql, params)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _select_rows(db: sqlite3.Connection) -> list[JournalRow]:
    rows = db.execute(f"SELECT {_COLUMNS} FROM jobs ORDER BY seq").fetchall()
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
