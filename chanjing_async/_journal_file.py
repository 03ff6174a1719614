"""Opening a journal file: created 0600, its schema made or checked, one writer at a time.

A writer claims the file twice over: in this process (a set of the real paths open for
writing here; a second :class:`~chanjing_async.journal.Journal` on the same file, say of a
second ``JobManager``, is refused as such), and against other processes, through an exclusive
``flock`` on ``<file>.lock`` (held while the file is open; released by the OS if the process
dies). Readers (``readonly``) claim nothing: ``chanjing batch status`` reads a journal while
a run writes it.

Every refusal is a ConfigurationError naming the file and what is wrong with it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import ConfigurationError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Opened", "open_readonly", "open_writable", "refusal"]

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

# Journal files open for writing in this process (real paths): the lock file tells other
# processes, but one process may take its own flock twice (once per open file description).
_OPEN_HERE: set[str] = set()
_OPEN_HERE_LOCK = threading.Lock()


def refusal(path: Path, reason: str) -> ConfigurationError:
    """The error refusing journal ``path``: ``journal '<path>': <reason>``."""
    return ConfigurationError(f"journal {str(path)!r}: {reason}")


@dataclass
class _Claim:
    """This process's claim to write one journal file: released once, by :meth:`release`."""

    path: Path
    real: str | None = None
    lock_file: int | None = None

    def take(self) -> None:
        """Claim the file in this process, then against other processes.

        Raises:
            ConfigurationError: it is open for writing already, here or elsewhere.
        """
        real = os.path.realpath(self.path)
        with _OPEN_HERE_LOCK:
            if real in _OPEN_HERE:
                raise refusal(
                    self.path,
                    "it is open already in this process (another JobManager or Journal on the "
                    "same file); use one manager per journal, or close the other first",
                )
            _OPEN_HERE.add(real)
        self.real = real
        try:
            self.lock_file = _exclusive(self.path.with_name(f"{self.path.name}.lock"))
        except BlockingIOError:
            self.release()
            raise refusal(
                self.path,
                "another process has it open (a run of the same batch?); wait for it to end",
            ) from None

    def release(self) -> None:
        """Give the file up (idempotent)."""
        if self.lock_file is not None:
            os.close(self.lock_file)  # closing the descriptor releases the lock
            self.lock_file = None
        if self.real is not None:
            with _OPEN_HERE_LOCK:
                _OPEN_HERE.discard(self.real)
            self.real = None


@dataclass
class Opened:
    """A journal open for writing.

    Attributes:
        db: the connection (autocommit; WAL mode, ``synchronous=FULL``).
        next_seq: the submission number of the next new row.
        uploads: the uploads it remembers: (sha256, service) -> (file id, upload wall time).
        claim: the claim to write the file, given up by :meth:`release`.
    """

    db: sqlite3.Connection
    next_seq: int
    uploads: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)
    claim: _Claim | None = None

    def release(self) -> None:
        """Give the file up for other writers (idempotent)."""
        if self.claim is not None:
            self.claim.release()


def open_readonly(path: Path) -> sqlite3.Connection:
    """Open a journal for reading (blocking).

    Raises:
        ConfigurationError: it cannot be read, or is not a journal.
    """
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    except (OSError, sqlite3.Error) as exc:
        raise refusal(path, f"cannot be read ({exc})") from None
    if "meta" not in tables or "jobs" not in tables:
        db.close()
        raise refusal(path, "not a journal database")
    return db


def open_writable(path: Path) -> Opened:
    """Open (or create, 0600, with its folder) a journal for writing (blocking).

    Raises:
        ConfigurationError: it is open for writing already (here or in another process), it
            cannot be opened or written, it is no journal, or a journal of another version.
    """
    claim = _Claim(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 before SQLite opens it; SQLite gives -wal and -shm the same mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        claim.take()
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        claim.release()
        raise refusal(path, f"cannot be opened ({exc})") from None
    except BaseException:
        claim.release()
        raise
    try:
        opened = _prepare(db, path)
    except sqlite3.OperationalError as exc:  # a full disk, a read-only file, ...
        db.close()
        claim.release()
        raise refusal(path, f"cannot be written ({exc})") from None
    except sqlite3.DatabaseError as exc:
        db.close()
        claim.release()
        raise refusal(path, f"not a journal database ({exc})") from None
    except BaseException:
        db.close()
        claim.release()
        raise
    opened.claim = claim
    return opened


def _prepare(db: sqlite3.Connection, path: Path) -> Opened:
    """Make or check the schema of an open journal; read what it remembers."""
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    if tables and "meta" not in tables:
        raise refusal(path, "not a journal database (it holds other tables)")
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
        raise refusal(
            path, f"schema version {version[0]}, this SDK reads version {_SCHEMA_VERSION}"
        )
    (next_seq,) = db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM jobs").fetchone()
    uploads = {
        (digest, service): (file_id, at)
        for digest, service, file_id, at in db.execute(
            "SELECT digest, service, file_id, uploaded_at FROM uploads"
        )
    }
    return Opened(db, next_seq, uploads)


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
