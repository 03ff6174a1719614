"""The API's answers: the envelope, and the data of each call (tokens, files, tasks, voices).

Responses ignore unknown fields (the API may add some) and take a ``null`` for the default. Wire
names are kept as on the wire (``create_time``, ``expire_in`` ...), but for a page's ``list``,
exposed as ``Page.items`` so that it does not shadow the builtin.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from ._statuses import FAILURES, FileStatus, TaskStatus

__all__ = [
    "AccessToken",
    "Envelope",
    "FileDetail",
    "LipSyncTask",
    "Page",
    "PageInfo",
    "UploadUrl",
    "Voice",
]

T = TypeVar("T")


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        # A server may send `"video_url": null` for a task still running: take the default
        # rather than failing the poll. A required field sent as null is still an error.
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


class Envelope(_Response):
    """The envelope of every API answer: ``{trace_id, code, msg, data}``.

    ``data`` stays out of the ``repr`` (the token call's holds a token): an error tracker
    records the ``repr`` of the transport's locals.
    """

    trace_id: str = ""
    code: int
    msg: str = ""
    data: Any = Field(default=None, repr=False)


class AccessToken(_Response):
    """``POST /open/v1/access_token`` data. ``expire_in`` is an absolute Unix time, not a TTL."""

    access_token: SecretStr
    expire_in: int


class UploadUrl(_Response):
    """``GET /open/v1/common/create_upload_url`` data. ``sign_url`` is secret (signed query)."""

    sign_url: SecretStr
    mime_type: str
    file_id: str
    full_path: str = ""
    key: str = ""


class FileDetail(_Response):
    """``GET /open/v1/common/file_detail`` data."""

    id: str
    service: str = ""
    name: str = ""
    bytes: int = 0
    create_time: int = 0
    file_path: str = ""
    status: int
    msg: str = ""

    @property
    def is_ready(self) -> bool:
        """True once the file can be used (status 1, or the historic 2)."""
        return self.status in (FileStatus.READY, FileStatus.READY_LEGACY)

    @property
    def is_failed(self) -> bool:
        """True for the statuses a file never recovers from (98, 99, 100)."""
        return self.status in (FileStatus.REJECTED, FileStatus.DELETED, FileStatus.PURGED)


class LipSyncTask(_Response):
    """A lip-sync task as returned by detail, list and the callback.

    ``status`` stays a plain int so that a status the docs do not list is kept (and polled
    further) rather than crashing the parser; compare it with :class:`TaskStatus`. Only 20 is
    a success; 30, 40, 41, 50 and 1101 are failures (``failed``); 0, 10, 1100 and any other
    status mean the task has not ended.
    ``duration`` is kept raw: the docs say milliseconds, the callback example suggests otherwise.
    """

    id: str
    status: int
    progress: int = 0
    msg: str = ""
    video_url: str = ""
    preview_url: str = ""
    duration: int = 0
    create_time: int = 0

    @property
    def is_terminal(self) -> bool:
        """True when the task succeeded (20) or failed (see ``failed``)."""
        return self.succeeded or self.failed

    @property
    def succeeded(self) -> bool:
        """True when the task succeeded (20)."""
        return self.status == TaskStatus.SUCCEEDED

    @property
    def failed(self) -> bool:
        """True when the task ended without a result (30, 40, 41, 50, 1101); ``msg`` says why."""
        return self.status in FAILURES

    @property
    def created_at(self) -> dt.datetime:
        """``create_time`` (Unix seconds) as an aware UTC datetime.

        A value too large for seconds (beyond the year 5138) is read as milliseconds; one out of
        every range gives the earliest datetime rather than an error.
        """
        seconds = self.create_time
        if abs(seconds) >= 10**11:
            seconds //= 1000
        try:
            return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)
        except (OverflowError, OSError, ValueError):
            return dt.datetime.min.replace(tzinfo=dt.timezone.utc)


class PageInfo(_Response):
    """Paging data of a list answer."""

    page: int = 1
    size: int = 0
    total_count: int = 0
    total_page: int = 0


class Page(_Response, Generic[T]):
    """One page of a list answer; ``items`` is the wire field ``list``."""

    items: list[T] = Field(default_factory=list, alias="list")
    page_info: PageInfo = Field(default_factory=PageInfo)


class Voice(_Response):
    """A public TTS voice from ``list_common_audio``; use ``id`` as ``audio_man_id``."""

    id: str
    name: str = ""
    gender: int | str = ""
    lang: str = ""
    grade: int | str = 0
    desc: str = ""
    speed: float = 1.0
    pitch: float = 1.0
    audition: str = ""
