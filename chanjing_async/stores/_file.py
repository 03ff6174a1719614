"""Opening a journal file: ours alone (0600, no links), its schema made or checked, one writer.

A writer opens the journal, its lock file and the ``-wal`` / ``-shm`` / ``-journal`` companions
SQLite left (if any) as files of the current user only. Each is opened without following a
symbolic link (``O_NOFOLLOW``, after an ``lstat``): a link planted at any of these paths is
refused, and nothing is created or written at its target. A file of another user, or anything
but a regular file, is refused too. Each gets mode 0600 (an existing 0644 journal becomes
0600); SQLite creates missing companions with the journal's own mode. Once SQLite has opened
the journal, it must be the very file checked (same device and inode), else it is refused
before anything is written. What remains: a link swapped in during the instant between the
check of a missing companion and SQLite creating it; only someone who can write the journal's
folder can do that, so keep journals in a folder only you can write.

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
import stat
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Opened", "open_readonly", "open_writable", "refusal"]

_LINK_FIX = "remove the link (and give the journal's real path)"

_SCHEMA_VERSION = "1"
# The files SQLite keeps beside a journal: the write-ahead log, its index, a rollback journal.
_COMPANIONS = ("-wal", "-shm", "-journal")
# Never follow a link; never block on a FIFO; never leak the descriptor to a child process.
_OPEN_FLAGS = (
    os.O_RDWR
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
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
            self.lock_file = _exclusive(self.path, self.path.with_name(f"{self.path.name}.lock"))
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
            cannot be opened or written, it is no journal, or a journal of another version;
            it, its lock file or a companion is a symbolic link, not a regular file, or
            another user's file.
    """
    claim = _Claim(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = _connect(path, claim)
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


def _connect(path: Path, claim: _Claim) -> sqlite3.Connection:
    """Claim ``path`` and have SQLite open it, every file of it checked as the module says."""
    handle = _own(path, path, create=True)
    assert handle is not None
    try:
        claim.take()
        for suffix in _COMPANIONS:
            companion = _own(path, path.with_name(f"{path.name}{suffix}"), create=False)
            if companion is not None:
                os.close(companion)
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            checked, opened = os.fstat(handle), os.lstat(path)
            if (checked.st_dev, checked.st_ino) != (opened.st_dev, opened.st_ino):
                raise refusal(path, "it was replaced while being opened; try again")
        except BaseException:
            db.close()
            raise
        return db
    finally:
        os.close(handle)


def _own(journal: Path, path: Path, *, create: bool) -> int | None:
    """Open ``path`` (the journal or a file beside it) read-write as a file of ours, mode 0600.

    Returns:
        The descriptor; None when ``path`` does not exist and ``create`` is false.

    Raises:
        ConfigurationError: ``path`` is a symbolic link (not followed: nothing is created or
            written at its target), not a regular file, or another user's file.
        OSError: it cannot be opened (permissions, a full disk, ...).
    """
    what = "it" if path == journal else f"its file {str(path)!r}"
    linked = f"{what} is a symbolic link, which is never followed; {_LINK_FIX}"
    if os.path.islink(path):
        raise refusal(journal, linked)
    try:
        handle = os.open(path, _OPEN_FLAGS | (os.O_CREAT if create else 0), 0o600)
    except FileNotFoundError:
        if create:
            raise
        return None
    except OSError:
        if os.path.islink(path):  # planted since the check above (O_NOFOLLOW: ELOOP)
            raise refusal(journal, linked) from None
        raise
    try:
        found = os.fstat(handle)
        if not stat.S_ISREG(found.st_mode):
            raise refusal(journal, f"{what} is not a regular file")
        user = os.geteuid() if hasattr(os, "geteuid") else found.st_uid
        if found.st_uid != user:
            raise refusal(
                journal,
                f"{what} belongs to user id {found.st_uid}, not to the current user ({user}); "
                "a journal must be the running user's own file",
            )
        if stat.S_IMODE(found.st_mode) != 0o600 and hasattr(os, "fchmod"):
            os.fchmod(handle, 0o600)  # readable by the owner only, however it was made
    except BaseException:
        os.close(handle)
        raise
    return handle


def _exclusive(journal: Path, path: Path) -> int | None:
    """Hold an exclusive lock on ``path`` (as :func:`_own` opens it); None where flock does
    not exist.

    Raises:
        BlockingIOError: another process holds it.
        ConfigurationError: ``path`` is a link, not a regular file, or another user's.
    """
    try:
        import fcntl  # POSIX only
    except ImportError:  # pragma: no cover - Windows: no lock, documented
        return None
    handle = _own(journal, path, create=True)
    assert handle is not None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(handle)
        raise
    return handle
