"""Uploads of a JobManager: each file content is uploaded once, a few at a time.

Contents are told apart by their SHA-256, read 1 MiB at a time in a worker thread (never on
the event loop), a few files at a time, so memory does not grow with the file; the upload
itself is streamed from disk (``Files.upload``). A file is hashed once while its device,
inode, size and modification time stay the same, however many jobs name it (the last
``_HASHES_KEPT`` files are remembered, so a million-row manifest does not grow this).

A file whose upload reported status 2 (ready under one reading of the docs, failed under
another: see ``FileStatus``) serves the jobs waiting for it but is not kept for reuse, so a
refused create of one job never condemns later jobs to the same file id.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

import anyio

from ..client._resources import unreadable
from ..models import FileStatus
from ._store import MemoryStore

if TYPE_CHECKING:
    from pathlib import Path

    from anyio.abc import TaskGroup

    from ..client._files import Files
    from ._store import JobStore

_CHUNK = 1 << 20
# An uploaded file is reused this long; Chanjing deletes uploaded files after 30 days.
_REUSE_FOR = 7 * 86400.0
_HASHES_KEPT = 1024

# What says a file is unchanged without reading it: device, inode, size, mtime (ns).
_Identity = tuple[int, int, int, int]


def _identity(stat: os.stat_result) -> _Identity:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _digest(path: Path) -> tuple[str, _Identity]:
    """The SHA-256 of a file (in a worker thread) and its identity when it was opened."""
    sha = hashlib.sha256()
    with path.open("rb") as stream:
        opened = _identity(os.fstat(stream.fileno()))
        while chunk := stream.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest(), opened


class _Hash:
    __slots__ = ("digest", "done", "identity")

    def __init__(self, identity: _Identity) -> None:
        self.identity = identity
        self.done = anyio.Event()
        self.digest: str | None = None  # None until hashed, or when hashing failed


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
        store: JobStore | None = None,
    ) -> None:
        self._files = files
        self._poll_interval = poll_interval
        self._store: JobStore = MemoryStore() if store is None else store
        self._task_group = task_group
        self._slots = anyio.CapacityLimiter(concurrency)
        self._hashing = anyio.CapacityLimiter(concurrency)
        self._hashes: OrderedDict[Path, _Hash] = OrderedDict()
        self._known: dict[tuple[str, str], _Upload] = {}
        self.uploaded = 0
        """Files actually uploaded (not counting reuses)."""
        self.hashed = 0
        """Files read to compute their digest (not counting unchanged files seen again)."""

    async def file_id(self, path: Path, service: str) -> str:
        """The id of ``path`` uploaded to ``service``, uploading it unless already done.

        Raises:
            UploadError, InvalidInputError, ChanjingError: the upload failed.
        """
        try:
            digest = await self._content(path)
        except OSError as exc:
            # Checked when the job was built, but gone or unreadable since.
            raise unreadable(path, exc) from None
        key = (digest, service)
        stored = self._store.upload_of(digest, service)
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

    async def _content(self, path: Path) -> str:
        """The SHA-256 of ``path``: remembered while the file is unchanged, else read once
        however many jobs ask at the same time."""
        while True:
            identity = _identity(await anyio.Path(path).stat())
            entry = self._hashes.get(path)
            if entry is None or entry.identity != identity:
                break
            await entry.done.wait()
            if entry.digest is not None:
                self._hashes.move_to_end(path)
                return entry.digest
            # The job hashing it failed or was cancelled: try again (its error was its own).
        entry = self._hashes[path] = _Hash(identity)
        self._hashes.move_to_end(path)
        if len(self._hashes) > _HASHES_KEPT:
            self._hashes.popitem(last=False)
        try:
            digest, opened = await anyio.to_thread.run_sync(_digest, path, limiter=self._hashing)
            self.hashed += 1
            if opened == identity:  # else it changed while we looked: not remembered
                entry.digest = digest
        finally:
            if entry.digest is None and self._hashes.get(path) is entry:
                del self._hashes[path]
            entry.done.set()
        return digest

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
            if detail.status == FileStatus.READY_LEGACY:
                del self._known[key]  # in doubt (see the module doc): used now, not kept
            else:
                self._store.remember_upload(key[0], key[1], detail.id)
        finally:
            upload.done.set()
