"""The resources of a client: ``client.files``, ``client.lip_sync`` and ``client.voices``."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from pydantic import BaseModel, ValidationError

from ..errors import (
    ChanjingError,
    CreateOutcomeUnknown,
    FileNotReadyError,
    InvalidInputError,
    ResponseValidationError,
    UploadError,
)
from ..models import (
    FileDetail,
    FileStatus,
    LipSyncRequest,
    LipSyncTask,
    Page,
    UploadUrl,
    Voice,
    check_page,
)
from . import _transport as ep
from ._downloads import save

if TYPE_CHECKING:
    import os
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

    from ..limits._limits import Slot
    from ._attempts import Attempt, CreateLedger
    from ._auth import TokenProvider
    from ._downloads import DownloadPolicy
    from ._transport import Endpoint, Transport

M = TypeVar("M", bound=BaseModel)

# Buckets the lip-sync create accepts, with the formats the create page lists (reference §4, §5.1).
LIP_SYNC_FORMATS: dict[str, frozenset[str]] = {
    "lip_sync_video": frozenset({".mp4", ".mov", ".webm"}),
    "lip_sync_audio": frozenset({".mp3", ".m4a", ".wav"}),
}


@dataclass(frozen=True)
class Api:
    """What a resource needs from an open client."""

    transport: Transport
    auth: TokenProvider
    downloads: DownloadPolicy

    async def call(
        self,
        endpoint: Endpoint,
        model: type[M],
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
    ) -> M:
        """Call ``endpoint`` and parse its ``data`` as ``model``."""
        data = await self.transport.call(endpoint, params=params, json=json, auth=self.auth)
        return parse(endpoint, model, data)


def parse(endpoint: Endpoint, model: type[M], data: Any) -> M:
    """Validate a response's ``data``; the error names fields and rules, never values."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'data'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        )
    # Raised outside the except block, with ``data`` dropped: a tracker recording this frame's
    # locals or the chained ValidationError would otherwise see the body (a token answer).
    data = None
    raise ResponseValidationError(endpoint.path, problems)


class _Resource:
    def __init__(self, api: Callable[[], Api]) -> None:
        self._api = api


def unreadable(path: Path, exc: OSError) -> InvalidInputError:
    """The error for a local file that cannot be read (gone, a folder, no permission)."""
    reason = exc.strerror or type(exc).__name__
    return InvalidInputError("path", str(path), f"must be a readable file ({reason})")


def require_id(field: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(field, value, "must be a non-empty string")
    return value


class Files(_Resource):
    """File management: upload a local file and wait until the API can use it."""

    async def upload(
        self,
        path: str | os.PathLike[str],
        *,
        service: str,
        timeout: float = 120.0,
        poll_interval: float = 1.0,
    ) -> FileDetail:
        """Upload a local file and wait until it is ready.

        The file is streamed from disk (and again from its start if the PUT is retried):
        memory does not grow with its size.

        Args:
            path: the local file.
            service: the bucket; lip-sync uses ``lip_sync_video`` and ``lip_sync_audio``.
            timeout: seconds to wait for the file to become ready (the docs allow ~1 minute).
            poll_interval: first delay between readiness checks (grows ×1.5 up to 5 s).

        Returns:
            The file detail with status 1 (ready), or 2 (see ``FileStatus.READY_LEGACY``);
            its ``id`` goes into a create request.

        Raises:
            InvalidInputError: missing or unreadable file, empty service or a format the
                bucket refuses.
            UploadError: the file was rejected (98), deleted (99/100) or not ready in time.
        """
        local = Path(path)
        require_id("service", service)
        formats = LIP_SYNC_FORMATS.get(service)
        if formats is not None and local.suffix.lower() not in formats:
            allowed = ", ".join(sorted(formats))
            raise InvalidInputError("path", str(local), f"{service} accepts {allowed} files")
        if not await anyio.Path(local).is_file():
            raise InvalidInputError("path", str(local), "must be an existing file")
        try:
            async with await anyio.open_file(local, "rb"):
                pass  # readable: checked before anything is sent
        except OSError as exc:
            raise unreadable(local, exc) from None
        target = await self._api().call(
            ep.UPLOAD_URL, UploadUrl, params={"service": service, "name": local.name}
        )
        try:
            # Streamed from disk: memory does not grow with the file (see Transport.put).
            await self._api().transport.put(target.sign_url, local, target.mime_type)
        except OSError as exc:  # gone or unreadable since it was checked
            raise unreadable(local, exc) from None
        return await self.wait_ready(target.file_id, timeout=timeout, poll_interval=poll_interval)

    async def get(self, file_id: str) -> FileDetail:
        """The detail of an uploaded file (``status`` 0 pending, 1 ready, 98/99/100 failed;
        2 counts as ready, see ``FileStatus.READY_LEGACY``)."""
        require_id("file_id", file_id)
        return await self._api().call(ep.FILE_DETAIL, FileDetail, params={"id": file_id})

    async def wait_ready(
        self, file_id: str, *, timeout: float = 120.0, poll_interval: float = 1.0
    ) -> FileDetail:
        """Poll a file until it is ready; raise UploadError if it fails or the deadline passes."""
        delay = poll_interval
        detail: FileDetail | None = None
        with anyio.move_on_after(timeout):
            while True:
                detail = await self.get(file_id)
                if detail.is_ready:
                    return detail
                if detail.is_failed:
                    reason = {98: "content check failed", 99: "file deleted"}.get(
                        detail.status, "file purged"
                    )
                    raise UploadError(file_id, detail.status, f"{reason}: {detail.msg}")
                await anyio.sleep(delay)
                delay = min(delay * 1.5, 5.0)
        status = detail.status if detail is not None else None
        raise UploadError(file_id, status, f"not ready after {timeout:g} s")


class LipSync(_Resource):
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
        ledger = self.ledger
        attempt = ledger.begin(key)
        try:
            task_id: str = await api.transport.call(
                ep.LIP_SYNC_CREATE,
                json=body,
                auth=api.auth,
                slot=slot,
                on_send=functools.partial(ledger.sending, attempt, before_send),
            )
        except CreateOutcomeUnknown as exc:
            await self._ended(attempt, closed=False)
            exc.attempt = attempt.id
            raise
        except FileNotReadyError as exc:
            await self._ended(attempt, closed=True)
            blamed = await self._blame_file(body, exc)
            if blamed is None:
                raise
            raise blamed from exc
        except ChanjingError:
            await self._ended(attempt, closed=True)  # answered without a task, or never sent
            raise
        except BaseException:
            # Cancelled (or a bug) while the request may have been out: never erased.
            await self._ended(attempt, closed=False)
            raise
        ledger.answered(attempt, task_id)
        if ledger.store is not None:
            await ledger.store.ended(attempt.id, closed=True, task_id=task_id)
        return task_id

    async def _blame_file(
        self, body: dict[str, Any], refusal: FileNotReadyError
    ) -> UploadError | None:
        """The file a refused create names, if it reported a status the SDK took as final.

        Status 2 is ready for the SDK (``FileStatus.READY_LEGACY``), failed for some readings
        of the docs: a refusal is then this server's verdict on the file. A file still at 0
        leaves the refusal as it is (wait for it and send again), as does a failed lookup.
        """
        for field in ("video_file_id", "audio_file_id"):
            file_id = body.get(field)
            if not isinstance(file_id, str):
                continue
            try:
                detail = await self._api().call(ep.FILE_DETAIL, FileDetail, params={"id": file_id})
            except ChanjingError:
                return None
            if detail.status == FileStatus.READY_LEGACY:
                reason = f"{field} refused by create ({refusal.msg}): status 2 means failed here"
            elif detail.is_failed:
                reason = f"{field} refused by create ({refusal.msg})"
            else:
                continue
            return UploadError(file_id, detail.status, reason)
        return None

    async def _ended(self, attempt: Attempt, *, closed: bool) -> None:
        """Record a create that got no task id: refused (``closed``) or of unknown outcome."""
        ledger = self.ledger
        sent = attempt.state != "queued"
        if closed:
            ledger.refused(attempt)
        else:
            ledger.unknown(attempt)
        if ledger.store is not None:  # published even if what came next failed
            await ledger.store.ended(attempt.id, closed=closed or not sent)

    async def get(self, task_id: str) -> LipSyncTask:
        """One task's detail (reference §5.2)."""
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


class Voices(_Resource):
    """Public TTS voices; a voice's ``id`` is the ``audio_man_id`` of a TTS request."""

    async def list(self, *, page: int = 1, size: int = 10) -> Page[Voice]:
        """One page of public voices."""
        check_page(page, size, size_field="size")
        return await self._api().call(
            ep.VOICES, Page[Voice], params={"page": str(page), "size": str(size)}
        )
