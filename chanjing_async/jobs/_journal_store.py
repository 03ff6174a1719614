"""``JournalStore``: a JobManager's jobs in its SQLite journal, and how a key it holds is taken up.

Each job is one row keyed by its job key, written when it is submitted (``begin``), marked
*sending* in a committed write before its create leaves (``going_out``), then given its task
id, every stage change and its end. A key the journal holds is never written as a new row;
submitting it again gives:

* the same handle, while the job is live in this manager;
* the same done handle, once the row says the job ended (in this run or an earlier one);
* a **new handle that resumes the row**, when the row is unfinished but the job is not live
  here: a row of an earlier run, or one this run left unfinished when its handle ended without
  the job ending (its deadline passed while the task ran on; its create's outcome stayed
  unknown with no candidate, as when the task list could not be read; it was never sent, see
  ``_journal_rules``). The new handle picks the job up exactly as a later run would: a
  created task is tracked again (with a new deadline), an unexplained create is reconciled
  again, a job never sent is queued.

A submit whose writes cannot be committed withdraws them (``Journal.flush(writes)``) and
raises ``JournalError``; the manager then forgets the jobs (``undo``), so the same submit,
made again, writes each row once and creates each job once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import JournalError
from ..stores._journal import Journal
from ._handle import JobHandle, JobStage
from ._journal_rules import (
    doubt,
    error_text,
    expect,
    finish_from,
    never_sent,
    retryable,
    seed,
    spec,
    stays_unfinished,
    task_record,
)

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Collection, Iterable

    from ..client._client import AsyncChanjingClient
    from ..models import LipSyncRequest
    from ..stores._journal import JournalRow
    from ._jobspec import LipSyncJob

__all__ = ["FINISHED_KEPT", "JournalStore", "read_journal"]

logger = logging.getLogger("chanjing_async")

FINISHED_KEPT = 4096
"""Done handles kept for repeated keys; older ones are read back from the journal."""
OWNED_SECONDS = 7200.0
"""Tasks of earlier runs created this recently count as owned (a create's window is minutes)."""


class JournalStore:
    """A JobManager's jobs in its SQLite journal: a ``JobStore`` (see the module doc).

    Args:
        journal: the journal (opened by :meth:`open`).
        retry_failed: a failed row submitted again starts afresh (see ``JobManager``).

    Attributes:
        journal: the journal.
    """

    durable = True

    def __init__(self, journal: Journal, *, retry_failed: bool) -> None:
        self.journal: Journal | None = journal
        self._journal = journal
        self.retry_failed = retry_failed
        # Rows not taken up by a handle yet: every row of earlier runs at first, and the rows
        # this run left unfinished once a submit or ``resume`` asks for them again.
        self._rows: dict[str, JournalRow] = {}
        # The done handle (and fingerprint) of the latest jobs (``FINISHED_KEPT``) whose row
        # says it ended; older ones are read back from the journal when their key is submitted
        # again (a done handle again, a new object).
        self._finished: OrderedDict[str, tuple[JobHandle, str]] = OrderedDict()
        self._closing = False  # the manager closes: the jobs it cancels stay unfinished
        self._forgotten = False  # some finished jobs are only in the journal now
        # Task ids of earlier runs recent enough to fall in a create's window (this run's are
        # owned by the client's ledger): a batch of any length keeps a bounded set.
        self._tasks: set[str] = set()
        self._live: dict[str, tuple[JobStage, str]] = {}  # stage last written, fingerprint
        self._left: set[str] = set()  # keys this run left unfinished, not taken up again

    async def open(self, client: AsyncChanjingClient) -> None:
        """Open the journal for ``client``'s account and read every row.

        The create limiter learns the creates of the last window, and the ledger the tasks
        that will date the server's clock once read.

        Raises:
            ConfigurationError: the file is no journal of this version, is open already, or
                belongs to another app id or server.
            JournalError: the journal cannot be written.
        """
        await self._journal.open()
        try:
            await self._journal.claim(client.app_id, client.base_url)
            rows = await self._journal.rows()
        except BaseException:
            with contextlib.suppress(JournalError):  # the first error is the one to tell
                await self._journal.close()
            raise
        self._rows = {row.key: row for row in rows}
        recent = time.time() - OWNED_SECONDS
        self._tasks = {
            row.task_id
            for row in rows
            if row.task_id is not None and (row.answered_at is None or row.answered_at > recent)
        }
        seed(client.limiters.create, rows, doubt(client))
        expect(client.lip_sync.ledger, rows)

    async def run(self) -> None:
        """Commit queued writes within moments of the first, until cancelled."""
        await self._journal.autoflush()

    def closing(self) -> None:
        """The manager closes: the jobs it cancels now stay unfinished."""
        self._closing = True

    async def close(self, raised: BaseException | None) -> None:
        """Close the journal; a failure to commit its last writes is raised, unless the
        manager's block raised already (that exception is the one to see: this one is logged).
        """
        try:
            await self._journal.close()
        except JournalError as exc:
            if raised is None:
                raise
            logger.warning("%s (while closing after an error)", exc)

    def owns(self, task_id: str) -> bool:
        """True for a task id of an earlier run's row, created within ``OWNED_SECONDS``."""
        return task_id in self._tasks

    async def recall(self, keys: Iterable[object] | None = None) -> None:
        """Read back the rows of jobs this run left unfinished (``keys`` of them, or all), and
        of ``keys`` whose done handle is no longer kept, so that a submit or ``resume`` takes
        them up again. Keys not checked yet are welcome: what is no such key is skipped.

        Raises:
            JournalError: queued writes could not be committed before the read.
        """
        if keys is None:
            wanted = set(self._left)
        else:
            named = {key for key in keys if isinstance(key, str)}
            wanted = named & self._left
            if self._forgotten:
                wanted |= {
                    key
                    for key in named
                    if key not in self._live and key not in self._finished and key not in self._rows
                }
        if wanted:
            for row in await self._journal.rows(wanted):
                self._rows[row.key] = row
            self._left -= wanted

    def unfinished(self) -> list[JournalRow]:
        """The rows not taken up yet whose job has not ended, in submission order."""
        rows = [row for row in self._rows.values() if not JobStage(row.stage).is_final]
        return sorted(rows, key=lambda row: row.seq)

    def row(self, key: str) -> JournalRow | None:
        """The row of job ``key`` not taken up yet, if any."""
        return self._rows.get(key)

    def finished(self, key: str) -> tuple[JobHandle, str] | None:
        """The done handle and fingerprint of job ``key``, if kept (see ``FINISHED_KEPT``)."""
        return self._finished.get(key)

    # -- one job -------------------------------------------------------------------------------

    async def write_down(self, begin: Callable[[], None]) -> None:
        """Call ``begin`` and commit the rows it wrote, shielded (a cancelled caller cannot
        leave jobs half submitted); if the commit fails, its writes are withdrawn.

        Raises:
            JournalError: the commit failed.
        """
        with self._journal.recording() as mine:
            begin()
        with anyio.CancelScope(shield=True):
            await self._journal.flush(mine)

    def begin(
        self,
        handle: JobHandle,
        job: LipSyncRequest | LipSyncJob,
        row: JournalRow | None,
        fingerprint: str,
    ) -> JournalRow | None:
        """Write a job down as it starts, and follow its changes from then on.

        A new job gets a new row. A job taken up from ``row`` ends at once if the row says it
        ended (its handle is then done), or starts afresh if it failed and ``retry_failed``
        is set (a failed create whose outcome stayed unknown excepted: its task may exist).

        Returns:
            The row to resume from; None to start afresh.
        """
        key = handle.key
        if row is not None and row.fingerprint != fingerprint:  # never created (``replaceable``)
            self._journal.forget(key)
            del self._rows[key]
            row = None
        if row is None:
            self._journal.add(key, spec(job), fingerprint, handle.stage.value)
        else:
            handle.duplicates = row.duplicates
            del self._rows[key]
            if self.retry_failed and retryable(row):
                self._journal.update(
                    key, stage=handle.stage.value, task_id=None, sent_at=None, task=None, error=None
                )
                row = None
            elif JobStage(row.stage).is_final:
                finish_from(handle, row)
                self._keep(key, handle, fingerprint)
                return row
        self._live[key] = (handle.stage, fingerprint)
        handle._set_watcher(self._changed)
        return row

    def undo(self, handle: JobHandle, row: JournalRow | None) -> None:
        """Forget a job whose writes were withdrawn: its submit failed, it was never begun."""
        self._live.pop(handle.key, None)
        if self._finished.get(handle.key, (None, ""))[0] is handle:
            del self._finished[handle.key]
        if row is not None:
            self._rows[handle.key] = row

    async def going_out(self, key: str, request: dict[str, Any]) -> None:
        """Commit that job ``key``'s create is leaving now, with the request (as JSON) it sends.

        Raises:
            JournalError: it could not be committed; the write is withdrawn, so the row does
                not say the create left. The create must not be sent.
        """
        with self._journal.recording() as mine:
            self._journal.update(key, sent_at=time.time(), request=request)
        await self._journal.flush(mine)

    def created(self, key: str, task_id: str) -> None:
        """Job ``key``'s create answered with ``task_id``."""
        self._journal.update(key, task_id=task_id, answered_at=time.time())

    def requeued(self, key: str) -> None:
        """Job ``key``'s create was refused, or created nothing: none of it is pending."""
        self._journal.update(key, sent_at=None)

    def duplicates(self, key: str, task_ids: Iterable[str]) -> None:
        """The tasks job ``key``'s create may also have made."""
        self._journal.update(key, duplicates=json.dumps(sorted(task_ids)))

    def upload_of(self, digest: str, service: str) -> tuple[str, float] | None:
        """The file id and upload wall time of content ``digest`` in ``service``, if kept."""
        return self._journal.uploads.get((digest, service))

    def remember_upload(self, digest: str, service: str, file_id: str) -> None:
        """Keep an uploaded file for later jobs and runs."""
        self._journal.remember_upload(digest, service, file_id)

    async def rows(self, keys: Collection[str] | None = None) -> list[JournalRow]:
        """Every row (or those of ``keys``) as committed, in submission order.

        Raises:
            JournalError: the queued writes could not be committed.
        """
        return await self._journal.rows(keys)

    async def mark_delivered(self, key: str) -> None:
        """Commit that job ``key``'s results were saved.

        Raises:
            JournalError: it could not be committed.
        """
        self._journal.update(key, delivered_at=time.time())
        await self._journal.flush()

    def _keep(self, key: str, handle: JobHandle, fingerprint: str) -> None:
        """Keep a done handle for a repeated key; the oldest go back to the journal alone."""
        self._finished[key] = (handle, fingerprint)
        self._finished.move_to_end(key)
        if len(self._finished) > FINISHED_KEPT:
            self._finished.popitem(last=False)
            self._forgotten = True

    def _changed(self, handle: JobHandle) -> None:
        """Write a job's new stage, or its end."""
        key = handle.key
        live = self._live.get(key)
        if live is None:
            return  # undone: its submit failed
        written, fingerprint = live
        if not handle.done:
            if written is not handle.stage:
                self._live[key] = (handle.stage, fingerprint)
                self._journal.update(key, stage=handle.stage.value)
            return
        del self._live[key]
        error = handle.error
        if stays_unfinished(error, closing=self._closing):
            # The task runs on; nothing was sent; left by a closing manager; or a create whose
            # outcome the task list could not tell (its sent_at stays): the row stays
            # unfinished, for a submit of the key, resume() or a later run.
            self._left.add(key)
            if error is not None and never_sent(error):
                # Its create was refused, or never left: none of it is pending.
                self._journal.update(key, sent_at=None, error=error_text(error))
            return
        self._keep(key, handle, fingerprint)
        self._journal.update(
            key,
            stage=handle.stage.value,
            task=task_record(handle.last),
            error=None if error is None else error_text(error),
        )


async def read_journal(path: str | os.PathLike[str]) -> list[JournalRow]:
    """Every row of the journal file ``path``, opened read-only, in submission order.

    Raises:
        ConfigurationError: it is not a journal.
    """
    async with Journal(path, readonly=True) as journal:
        return await journal.rows()
