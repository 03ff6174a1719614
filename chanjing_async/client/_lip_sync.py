"""``client.lip_sync``: create, read, list, wait for and download lip-sync tasks."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import ChanjingError, CreateOutcomeUnknown, FileNotReadyError, InvalidInputError
from ..models import FileDetail, LipSyncRequest, LipSyncTask, Page, check_page
from . import _endpoints as ep
from ._downloads import save
from ._file_refusals import blame_file
from ._resources import Api, Resource, require_id

if TYPE_CHECKING:
    import os
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

    from ..limits import Slot
    from ._attempts import Attempt, CreateLedger

__all__ = ["LipSync"]


class LipSync(Resource):
    """Lip-sync tasks: create, read, list, wait and download.

    Every create is written down in :attr:`ledger` (``_attempts``): sent, answered, refused
    or unknown, and for how long the server may still handle it. Tasks read through
    :meth:`get` and :meth:`list` tell the ledger what the server's clock says.
    """

    def __init__(self, api: Callable[[], Api], ledger: CreateLedger) -> None:
        super().__init__(api)
        self.ledger = ledger

    async def create(
        self,
        request: LipSyncRequest | Mapping[str, Any],
        *,
        slot: Slot | None = None,
        key: str | None = None,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> str:
        """Create a task and return its id (the create limit is 10 per minute).

        A mapping is validated as a :class:`LipSyncRequest` first: nothing is sent when a field
        is invalid. The call is never retried blindly (see ``_transport``).

        Args:
            request: the create request.
            slot: a slot already taken from ``client.limiters.create.slot()``: the create is
                then sent in it, once, and a refusal (40001, 10400, no connection) is raised
                for the caller to resend. This is how a JobManager keeps its own FIFO order.
            key: the job this create is for (a JobManager's job key), kept in the ledger.
            before_send: awaited right before the request leaves (a JobManager's journal
                writes the send down then); if it raises, nothing is sent.

        Raises:
            InvalidInputError: a field is invalid (nothing was sent).
            CreateOutcomeUnknown: the request may have created a task (timeout, dropped
                connection, gateway page, 50000); it was not resent. Its ``attempt`` stays
                open in :attr:`ledger` until the processing horizon, and a JobManager on this
                client never adopts the task it may have made.
            UploadError: the server refused it for a file that reported status 2 (read as
                ready, which this server does not share) or 98/99/100: the error names the
                file, its status and the server's message (the FileNotReadyError is its
                ``__cause__``). Never retried: the same file would be refused again.
            FileNotReadyError, InvalidRequestError, APIError: the server refused it.
        """
        # Validated again even when given a model: model_copy(update=...) skips validation.
        fields = request.model_dump() if isinstance(request, LipSyncRequest) else request
        body = LipSyncRequest(**fields).to_wire()
        api = self._api()
        attempt = self.ledger.begin(key)
        return await self._send(api, body, attempt, slot=slot, before_send=before_send)

    async def _send(
        self,
        api: Api,
        body: dict[str, Any],
        attempt: Attempt,
        *,
        slot: Slot | None,
        before_send: Callable[[], Awaitable[None]] | None,
    ) -> str:
        """Send the create of ``attempt`` once; the ledger learns how it ended, whatever it was."""
        ledger = self.ledger
        try:
            task_id: str = await api.transport.call(
                ep.LIP_SYNC_CREATE,
                json=body,
                auth=api.auth,
                slot=slot,
                on_send=functools.partial(ledger.sending, attempt, before_send),
            )
        except CreateOutcomeUnknown as exc:
            await ledger.ended_without_task(attempt, closed=False)
            exc.attempt = attempt.id
            raise
        except FileNotReadyError as exc:
            await ledger.ended_without_task(attempt, closed=True)
            blamed = await blame_file(body, exc, functools.partial(self._file_detail, api))
            if blamed is None:
                raise
            raise blamed from exc
        except ChanjingError:
            # Answered without a task, or never sent.
            await ledger.ended_without_task(attempt, closed=True)
            raise
        except BaseException:
            # Cancelled (or a bug) while the request may have been out: never erased.
            await ledger.ended_without_task(attempt, closed=False)
            raise
        await ledger.ended_with_task(attempt, task_id)
        return task_id

    @staticmethod
    async def _file_detail(api: Api, file_id: str) -> FileDetail:
        return await api.call(ep.FILE_DETAIL, FileDetail, params={"id": file_id})

    async def get(self, task_id: str) -> LipSyncTask:
        """One task's detail."""
        require_id("task_id", task_id)
        task = await self._api().call(ep.LIP_SYNC_DETAIL, LipSyncTask, params={"id": task_id})
        self.ledger.observe(task.id, task.create_time)
        return task

    async def list(self, *, page: int = 1, page_size: int = 10) -> Page[LipSyncTask]:
        """One page of tasks. Ordering is undocumented: never rely on it for correctness."""
        check_page(page, page_size)
        result = await self._api().call(
            ep.LIP_SYNC_LIST, Page[LipSyncTask], json={"page": page, "page_size": page_size}
        )
        for task in result.items:
            self.ledger.observe(task.id, task.create_time)
        return result

    async def iter_all(self, *, page_size: int = 50) -> AsyncIterator[LipSyncTask]:
        """Every task, page by page; a task seen on two pages (the list shifted) comes once."""
        seen: set[str] = set()
        page = 1
        while True:
            result = await self.list(page=page, page_size=page_size)
            for task in result.items:
                if task.id not in seen:
                    seen.add(task.id)
                    yield task
            if not result.items or page >= result.page_info.total_page:
                return
            page += 1

    async def wait(
        self, task_id: str, *, timeout: float, poll_interval: float = 5.0
    ) -> LipSyncTask:
        """Poll one task until it succeeds or fails and return it (check ``.failed``).

        This is the simple single-task wait; a JobManager tracks many tasks with fewer calls.

        Raises:
            TimeoutError: ``timeout`` seconds passed first (the task may still finish).
        """
        with anyio.fail_after(timeout):
            while True:
                task = await self.get(task_id)
                if task.is_terminal:
                    return task
                await anyio.sleep(poll_interval)

    async def download(
        self,
        task: LipSyncTask,
        dest: str | os.PathLike[str],
        *,
        preview: bool = False,
        within: str | os.PathLike[str] | None = None,
    ) -> Path:
        """Download the result video (or the preview image) to ``dest``, written atomically.

        The body is streamed to a hidden ``.<name>.<random>.part`` file beside ``dest``,
        renamed to ``dest`` once whole; a failed download removes it, so ``dest`` is either
        complete or untouched. A symbolic link at ``dest`` is replaced, never followed. The
        client's ``downloads`` policy bounds the size, the redirects, the time and the
        addresses fetched from (``_downloads``); memory does not grow with the file.

        Args:
            task: a succeeded task.
            dest: the file to write.
            preview: download the preview image instead of the video.
            within: a folder ``dest`` must stay inside: the folders between them are opened
                at write time without following symbolic links (created if missing), so a
                folder swapped for a link is refused rather than followed (``_output_files``).

        Raises:
            InvalidInputError: the task has not succeeded or has no such URL.
            DownloadRefusedError: the policy refused the URL, a redirect or the body;
                DownloadTooLargeError when it is over ``DownloadPolicy.max_bytes``.
            HTTPStatusError, TransportError: the download failed (an expired URL answers 403;
                RequestTimeoutError past ``DownloadPolicy.timeout``).
            ChanjingError: ``dest`` could not be written (disk full, no permission, a folder
                under ``within`` that is a symbolic link ...).
        """
        url = task.preview_url if preview else task.video_url
        if not task.succeeded or not url:
            raise InvalidInputError("task", task.id, "must be a succeeded task with a result URL")
        inside = None if within is None else Path(within)
        return await save(url, Path(dest), self._api().downloads, within=inside)
