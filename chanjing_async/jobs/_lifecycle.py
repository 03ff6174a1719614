"""Opening and closing a JobManager's background work.

Opening opens the store (the create limiter and the ledger learn the creates of earlier
runs), then starts, in one anyio task group, the submitter, the shared poller, the store's
commits and the callback receiver. Closing ends every unfinished job as cancelled, lets the
creates in flight finish (at most one request timeout, so a task they create is recorded on
its handle instead of being lost), stops the group, then closes the receiver and the store.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from ._book import Running
from ._poller import Poller
from ._submit import Submitter
from ._uploads import Uploads

if TYPE_CHECKING:
    from ._book import JobBook

__all__ = ["Settings", "close_running", "open_running"]


@dataclass(frozen=True)
class Settings:
    """The settings of a manager's background work (see ``JobManager``)."""

    upload_concurrency: int
    reconcile_settle: float
    reconcile_margin: float
    max_create_attempts: int


async def open_running(book: JobBook, settings: Settings) -> Running:
    """Open the store and start the background work of ``book``'s manager.

    Raises:
        RuntimeError: the client is not open.
        ConfigurationError, JournalError: the store could not be opened.
    """
    client = book.client
    limiter = client.limiters.create  # raises if the client is not open
    await book.store.open(client)
    group = anyio.create_task_group()
    await group.__aenter__()
    submitter = Submitter(
        client.lip_sync,
        limiter,
        book,
        group=group,
        serial=book.store.durable,
        proof=book.callbacks is not None,
        settle=settings.reconcile_settle,
        margin=settings.reconcile_margin,
        max_attempts=settings.max_create_attempts,
        backoff=lambda attempt: client.retry.delay(attempt, random.random()),
    )
    poller = Poller(client.lip_sync, book.policy, on_untracked=book.forget)
    uploads = Uploads(
        client.files,
        group,
        concurrency=settings.upload_concurrency,
        poll_interval=book.policy.file_interval,
        store=book.store,
    )
    try:
        if book.callbacks is not None:
            await book.callbacks.open(book.side.on_callback, group)
    except BaseException as exc:
        group.cancel_scope.cancel()
        await group.__aexit__(None, None, None)
        await book.store.close(exc)
        raise
    group.start_soon(submitter.run)
    group.start_soon(poller.run)
    group.start_soon(book.store.run)
    book.running = Running(group, submitter, poller, uploads)
    return book.running


async def close_running(book: JobBook, raised: BaseException | None) -> None:
    """End every unfinished job as cancelled and stop the background work.

    Raises:
        JournalError: the store's last writes could not be committed (only when ``raised``,
            the exception of the manager's block, is None; otherwise it is logged).
    """
    book.store.closing()
    for record in list(book.registry.live.values()):
        record.handle._end_cancelled("the JobManager closed before the job finished")
    running, book.running = book.running, None
    assert running is not None
    try:
        running.group.cancel_scope.cancel()
        # The body's own exception is not handed to the task group, which would wrap it
        # in an ExceptionGroup: it propagates as raised. Errors of the background work
        # (bugs) still surface from here.
        await running.group.__aexit__(None, None, None)
    finally:
        try:
            if book.callbacks is not None:
                await book.callbacks.close()
        finally:
            await book.store.close(raised)
