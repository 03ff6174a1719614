"""``client.files``: upload a local file and wait until the API can use it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from ..errors import InvalidInputError, UploadError
from ..models import FileDetail, UploadUrl
from . import _endpoints as ep
from ._resources import LIP_SYNC_FORMATS, Resource, require_id, unreadable

if TYPE_CHECKING:
    import os

__all__ = ["Files"]


class Files(Resource):
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
