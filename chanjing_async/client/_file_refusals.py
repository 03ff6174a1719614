"""Which file a refused create names, when the SDK had taken that file's status as final.

Status 2 is ready for the SDK (``FileStatus.READY_LEGACY``), failed for some readings of the
docs: a create refused with a file error (a :class:`~chanjing_async.errors.FileNotReadyError`)
is then this server's verdict on the file, and the same file would be refused again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ChanjingError, UploadError
from ..models import FileStatus

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ..errors import FileNotReadyError
    from ..models import FileDetail

__all__ = ["blame_file"]


async def blame_file(
    body: dict[str, Any],
    refusal: FileNotReadyError,
    detail: Callable[[str], Awaitable[FileDetail]],
) -> UploadError | None:
    """The error naming the file of ``body`` that the refusal is about, or None.

    A file that reported status 2, or 98/99/100, is blamed; a file still at 0 leaves the
    refusal as it is (wait for it and send again), as does a failed lookup through ``detail``.
    """
    for field in ("video_file_id", "audio_file_id"):
        file_id = body.get(field)
        if not isinstance(file_id, str):
            continue
        try:
            found = await detail(file_id)
        except ChanjingError:
            return None
        if found.status == FileStatus.READY_LEGACY:
            reason = f"{field} refused by create ({refusal.msg}): status 2 means failed here"
        elif found.is_failed:
            reason = f"{field} refused by create ({refusal.msg})"
        else:
            continue
        return UploadError(file_id, found.status, reason)
    return None
