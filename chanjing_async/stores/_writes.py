"""The writes of a journal: queued in memory, committed in order, many per transaction.

A write is one SQL statement and its parameters. Writes wait in a queue; a commit takes all
of them in one transaction (the journal runs ``synchronous=FULL``: once committed, a write
survives a crash of the process or of the machine).

**A commit that fails** (a full disk, a read-only or vanished file, an I/O error) is rolled
back whole, and its writes go back to the head of the queue in their order: none is dropped,
none is reported committed. Then it depends on who needed them:

* A caller that must know its writes committed before it goes on (``JobManager.submit``; the
  "this create is going out" write) records them (:meth:`WriteQueue.recording`) and commits
  them with :meth:`Journal.flush(writes) <chanjing_async.journal.Journal.flush>`. If that
  fails, its writes are **withdrawn**, as if never made, and it gets ``JournalError``: the
  same call, made again once the cause is fixed, repeats nothing and writes each row once.
* The background flush (:meth:`WriteQueue.autoflush`) logs one warning per outage and tries
  again with a growing pause. It never raises: a write that keeps failing must not stop the
  manager that runs it, nor the other jobs.

No write can fail for its content and block the queue behind it: text that UTF-8 cannot
encode (a lone surrogate, say in a server's message) is stored with ``\\udcxx`` escapes,
which JSON text reads back as the same character.

A ``JournalError`` carries SQLite's message, never a statement or its parameters, and is
raised outside any ``except`` block, so it chains no other exception.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import JournalError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

__all__ = ["Write", "WriteQueue"]

logger = logging.getLogger("chanjing_async")

Write = tuple[str, tuple[Any, ...]]
"""One statement and its parameters."""

# Seconds between two tries of the background flush while commits fail: doubling to the cap.
_RETRY_CAP = 5.0


class WriteQueue:
    """Writes waiting for their commit (see the module doc).

    Args:
        path: the journal file, for messages.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._queued: list[Write] = []
        self._recording: list[Write] | None = None
        self._dirty = anyio.Event()
        self._failing = False

    def __len__(self) -> int:
        return len(self._queued)

    def put(self, sql: str, params: tuple[Any, ...]) -> None:
        """Queue a write (its text made encodable first)."""
        write = (sql, tuple(_encodable(param) for param in params))
        self._queued.append(write)
        if self._recording is not None:
            self._recording.append(write)
        self._dirty.set()

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[Write]]:
        """Collect the writes queued inside the block, to commit or withdraw them together.

        The block must not await: then no other task can queue a write in between, and a
        commit takes either all of them or none.
        """
        mine: list[Write] = []
        outer, self._recording = self._recording, mine
        try:
            yield mine
        finally:
            self._recording = outer
            if outer is not None:
                outer.extend(mine)

    def withdraw(self, writes: list[Write]) -> bool:
        """Take ``writes`` out of the queue; False if a commit had taken them already.

        Call it with the journal's lock held, so that no commit is under way.
        """
        mine = {id(write) for write in writes}
        kept = [write for write in self._queued if id(write) not in mine]
        withdrawn = len(self._queued) - len(kept)
        self._queued = kept
        return withdrawn > 0

    def clear(self) -> int:
        """Drop every queued write (the journal is closing); return how many there were."""
        count = len(self._queued)
        self._queued = []
        return count

    async def commit(self, db: sqlite3.Connection) -> None:
        """Commit every queued write in one transaction, in a worker thread.

        Call it with the journal's lock held. Once started it runs to its end, even if the
        caller is cancelled.

        Raises:
            JournalError: nothing of it was committed; the writes are queued again, first.
        """
        with anyio.CancelScope(shield=True):
            batch, self._queued = self._queued, []
            if not batch:
                return
            try:
                failure = await anyio.to_thread.run_sync(_commit, db, batch)
            except BaseException:
                self._queued[:0] = batch
                raise
        if failure is not None:
            self._queued[:0] = batch
            raise JournalError(self._path, f"{len(batch)} write(s) not committed ({failure})")

    async def autoflush(self, flush: Callable[[], Awaitable[None]], delay: float) -> None:
        """Call ``flush`` within ``delay`` seconds of the first write queued, until cancelled.

        A failed flush is logged (once per outage) and tried again, after a pause doubling up
        to ``_RETRY_CAP`` seconds; it never raises.
        """
        pause = delay
        while True:
            await self._dirty.wait()
            self._dirty = anyio.Event()
            await anyio.sleep(pause)
            try:
                await flush()
            except JournalError as exc:
                if not self._failing:
                    logger.warning("%s; trying again (queued writes are kept)", exc)
                self._failing = True
                pause = min(2 * pause, _RETRY_CAP)
                self._dirty.set()
            else:
                if self._failing:
                    logger.info("journal %s: writes are committed again", self._path)
                self._failing = False
                pause = delay


def _commit(db: sqlite3.Connection, batch: list[Write]) -> str | None:
    """Commit ``batch`` in one transaction; on an SQLite error, roll back and say why."""
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in batch:
                db.execute(sql, params)
            db.execute("COMMIT")  # in WAL mode the pages are written here: it may fail too
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                if db.in_transaction:  # SQLite may have rolled back already (a full disk)
                    db.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _encodable(value: object) -> object:
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode()
    return value
