"""Saving a succeeded task's video and preview, with fresh URLs when the old ones expired.

Used by ``chanjing lipsync download`` for one task and by the batch runner for each row; it
needs only the client (``lip_sync.get`` and ``lip_sync.download``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from ..errors import HTTPStatusError

if TYPE_CHECKING:
    from pathlib import Path

    from ..models import LipSyncTask
    from ._client import AsyncChanjingClient

__all__ = ["download_results"]

# Result URLs that fail with these statuses are read again from `detail` (they expire).
_EXPIRED = frozenset({401, 403, 404, 410})
_DOWNLOAD_ATTEMPTS = 3


async def download_results(
    client: AsyncChanjingClient,
    task: LipSyncTask,
    video: Path,
    preview: Path,
    *,
    within: Path | None = None,
) -> tuple[Path, ...]:
    """Save a succeeded task's video (and preview, if it has one), each written atomically.

    A task without URLs (as the journal keeps it) is read again first; a URL refused as
    expired (HTTP 401/403/404/410) is replaced by a fresh one from ``detail``, twice at most.
    With ``within`` (the output folder of a batch), the files are written relative to it at
    write time, without following symbolic links (see ``LipSync.download``); without it,
    their folder is created as named.

    Raises:
        HTTPStatusError: the download still failed.
        DownloadRefusedError: the download policy refused it.
        ChanjingError: reading the task failed, or the file could not be written (a folder
            under ``within`` turned into a symbolic link).
    """
    lip_sync = client.lip_sync
    if not task.video_url:
        task = await lip_sync.get(task.id)
    if within is None:
        await anyio.Path(video.parent).mkdir(parents=True, exist_ok=True)
    for attempt in range(1, _DOWNLOAD_ATTEMPTS + 1):
        try:
            saved = [await lip_sync.download(task, video, within=within)]
            if task.preview_url:
                saved.append(await lip_sync.download(task, preview, preview=True, within=within))
            return tuple(saved)
        except HTTPStatusError as exc:
            if exc.status not in _EXPIRED or attempt == _DOWNLOAD_ATTEMPTS:
                raise
            task = await lip_sync.get(task.id)
    raise AssertionError("unreachable")  # pragma: no cover
