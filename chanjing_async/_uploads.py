"""Uploads of a JobManager: each file content is uploaded once, a few at a time."""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING

import anyio

from .errors import InvalidInputError

if TYPE_CHECKING:
    from pathlib import Path

    from anyio.abc import TaskGroup

    from ._resources import Files
    from .journal import Journal

_CHUNK = 1 << 20
# An uploaded file is reused this long; Chanjing deletes files after 30 days (reference §4).
_REUSE_FOR = 7 * 86400.0


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


class _Upload:
    __slots__ = ("at", "done", "error", "file_id")

    def __init__(self) -> None:
        self.at = time.monotonic()
        self.done = anyio.Event()
        self.file_id: str | None = None
        self.error: BaseException | None = None


class Uploads:
    """Uploads local files for jobs, deduplicated by content and bucket.

    Two jobs naming the same bytes (under any path) in the same bucket share one upload; with
    a journal, so do jobs of later runs (for up to seven days). The
    upload runs in the manager's task group, not in the job that asked first, so cancelling
    that job does not fail the others waiting for the same file. A failed upload is forgotten,
    so a later job tries again.
    """

    def __init__(
        self,
        files: Files,
        task_group: TaskGroup,
        *,
        concurrency: int,
        poll_interval: float,
        journal: Journal | None = None,
    ) -> None:
        self._files = files
        self._poll_interval = poll_interval
        self._journal = journal
        self._task_group = task_group
        self._slots = anyio.CapacityLimiter(concurrency)
        self._known: dict[tuple[str, str], _Upload] = {}
        self.uploaded = 0
        """Files actually uploaded (not counting reuses)."""

    async def file_id(self, path: Path, service: str) -> str:
        """The id of ``path`` uploaded to ``service``, uploading it unless already done.

        Raises:
            UploadError, InvalidInputError, ChanjingError: the upload failed.
        """
        try:
            digest = await anyio.to_thread.run_sync(_digest, path)
        except OSError as exc:
            # Checked when the job was built, but gone or unreadable since.
            reason = exc.strerror or type(exc).__name__
            raise InvalidInputError(
                "path", str(path), f"must be a readable file ({reason})"
            ) from None
        key = (digest, service)
        if self._journal is not None:
            stored = self._journal.uploads.get(key)
            if stored is not None and stored[1] > time.time() - _REUSE_FOR:
                return stored[0]
        upload = self._known.get(key)
        if (
            upload is not None
            and upload.done.is_set()
            and upload.at < time.monotonic() - _REUSE_FOR
        ):
            del self._known[key]  # Chanjing deletes files after 30 days: upload it again
            upload = None
        if upload is None:
            upload = self._known[key] = _Upload()
            self._task_group.start_soon(self._upload, key, upload, path)
        await upload.done.wait()
        if upload.error is not None:
            raise upload.error
        assert upload.file_id is not None
        return upload.file_id

    async def _upload(self, key: tuple[str, str], upload: _Upload, path: Path) -> None:
        try:
            async with self._slots:
                detail = await self._files.upload(
                    path, service=key[1], poll_interval=self._poll_interval
                )
        except Exception as exc:  # handed to every job waiting for this file
            upload.error = exc
            del self._known[key]
        else:
            upload.file_id = detail.id
            self.uploaded += 1
            if self._journal is not None:
                self._journal.remember_upload(key[0], key[1], detail.id)
        finally:
            upload.done.set()
