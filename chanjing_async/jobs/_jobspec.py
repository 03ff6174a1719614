"""``LipSyncJob``: a lip-sync request whose video or audio may still be a local file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..client._resources import LIP_SYNC_FORMATS
from ..errors import InvalidInputError
from ..models import LipSyncRequest

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["LipSyncJob"]

# Stands in for the id of a file not uploaded yet; replaced before the request is sent.
_PENDING_UPLOAD = "<pending-upload>"


def _local_file(field: str, value: object, service: str) -> Path:
    """Check a local input file now, so a bad path fails at submit, not after an upload."""
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise InvalidInputError(field, value, "must be a path to a local file")
    path = Path(value)
    formats = LIP_SYNC_FORMATS[service]
    if path.suffix.lower() not in formats:
        raise InvalidInputError(field, str(path), f"must be a {', '.join(sorted(formats))} file")
    try:
        exists = path.is_file()
    except (OSError, ValueError) as exc:  # a name too long for the system, a NUL byte
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidInputError(field, str(path), f"must be a usable path ({reason})") from None
    if not exists:
        raise InvalidInputError(field, str(path), "must be an existing file")
    return path


def _one_source(field: str, path: object, file_id: object) -> None:
    if (path is None) == (file_id is None):
        raise InvalidInputError(
            field, None, f"give exactly one of {field} (a local file) or {field}_file_id"
        )


@dataclass(frozen=True)
class LipSyncJob:
    """A job for :meth:`JobManager.submit` that names local files instead of file ids.

    The manager uploads each local file (once per content and bucket, whatever the number of
    jobs using it) and sends the request with the new ids. Every field is validated when the
    job is built, so a bad job fails before anything is uploaded or sent.

    Build it with :meth:`tts` or :meth:`audio`::

        job = LipSyncJob.tts("talk.mp4", text="你好", audio_man_id="C-...")
        job = LipSyncJob.audio("talk.mp4", audio="speech.wav", model=1)

    Attributes:
        template: the request, with a placeholder id for each file still to upload.
        video_path: the local video, or None when ``template`` names an uploaded one.
        audio_path: the local audio, or None (text-driven, or an uploaded audio).
    """

    template: LipSyncRequest
    video_path: Path | None = None
    audio_path: Path | None = None

    @classmethod
    def tts(
        cls,
        video: str | os.PathLike[str] | None = None,
        *,
        video_file_id: str | None = None,
        text: str | list[str],
        audio_man_id: str,
        speed: float = 1.0,
        pitch: float = 1.0,
        **options: Any,
    ) -> LipSyncJob:
        """A text-driven job; ``options`` are the other create fields (wire names).

        Raises:
            InvalidInputError: a field is invalid, or a local file is missing or of a type
                the bucket refuses.
        """
        _one_source("video", video, video_file_id)
        local = None if video is None else _local_file("video", video, "lip_sync_video")
        template = LipSyncRequest.tts(
            video_file_id or _PENDING_UPLOAD,
            text=text,
            audio_man_id=audio_man_id,
            speed=speed,
            pitch=pitch,
            **options,
        )
        return cls(template, local)

    @classmethod
    def audio(
        cls,
        video: str | os.PathLike[str] | None = None,
        *,
        video_file_id: str | None = None,
        audio: str | os.PathLike[str] | None = None,
        audio_file_id: str | None = None,
        **options: Any,
    ) -> LipSyncJob:
        """An audio-driven job; ``options`` are the other create fields (wire names).

        Raises:
            InvalidInputError: as for :meth:`tts`.
        """
        _one_source("video", video, video_file_id)
        _one_source("audio", audio, audio_file_id)
        local_video = None if video is None else _local_file("video", video, "lip_sync_video")
        local_audio = None if audio is None else _local_file("audio", audio, "lip_sync_audio")
        template = LipSyncRequest.audio(
            video_file_id or _PENDING_UPLOAD,
            audio_file_id=audio_file_id or _PENDING_UPLOAD,
            **options,
        )
        return cls(template, local_video, local_audio)

    def uploads(self) -> list[tuple[Path, str]]:
        """The local files to upload, each with its bucket."""
        pairs = [(self.video_path, "lip_sync_video"), (self.audio_path, "lip_sync_audio")]
        return [(path, service) for path, service in pairs if path is not None]

    def to_request(self, file_ids: Mapping[Path, str]) -> LipSyncRequest:
        """The request to send, given the id each local file got when uploaded."""
        update: dict[str, str] = {}
        if self.video_path is not None:
            update["video_file_id"] = file_ids[self.video_path]
        if self.audio_path is not None:
            update["audio_file_id"] = file_ids[self.audio_path]
        return self.template.model_copy(update=update)
