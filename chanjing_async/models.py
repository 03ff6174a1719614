"""Pydantic v2 models of every request and response of the lip-sync Open API.

Wire names are kept as on the wire (``video_file_id``, ``create_time``, ``expire_in`` ...); the one
exception is a page's ``list`` field, exposed as ``Page.items`` with the alias ``list`` so that it
does not shadow the builtin. Responses ignore unknown fields (the API may add some); requests
forbid them (a typo must not be silently dropped) and validate every documented range *before*
anything is sent, raising :class:`~chanjing_async.errors.InvalidInputError` that names the field,
the value and what is allowed.
"""

from __future__ import annotations

import datetime as dt
from enum import IntEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Generic, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from .errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Callable

    from typing_extensions import Self

__all__ = [
    "AccessToken",
    "Envelope",
    "FileDetail",
    "FileStatus",
    "LipSyncRequest",
    "LipSyncTask",
    "Page",
    "PageInfo",
    "TaskStatus",
    "TtsConfig",
    "UploadUrl",
    "Voice",
    "check_page",
]

T = TypeVar("T")

MAX_PAGE_SIZE = 100
"""Largest ``page_size``/``size`` we send. Undocumented (reference §10 q10); the emulator agrees."""


class TaskStatus(IntEnum):
    """Status of a lip-sync task (reference §5.5).

    The lip-sync page documents 0, 10, 20 and 30. Chanjing's other task APIs also use 40, 41,
    50, 1100 and 1101; the lip-sync docs leave them open, so the SDK takes each for what it
    says: 40, 41, 50 and 1101 end the task as failed (never as a success), 1100 (manual
    review) keeps it waiting, like any status not listed here.
    """

    QUEUED = 0
    GENERATING = 10
    SUCCEEDED = 20
    FAILED = 30
    FAILED_RETRY = 40
    """任务失败，请重试: failed; a new create may succeed."""
    TIMED_OUT = 41
    CANCELLED = 50
    IN_REVIEW = 1100
    """Held for manual review: not ended, the task may still go on."""
    REVIEW_REJECTED = 1101

    @property
    def is_failure(self) -> bool:
        """True for the statuses that end a task without a result (30, 40, 41, 50, 1101)."""
        return self in _FAILURES

    @property
    def is_terminal(self) -> bool:
        """True for SUCCEEDED and every failure status."""
        return self is TaskStatus.SUCCEEDED or self.is_failure


_FAILURES = frozenset(
    {
        TaskStatus.FAILED,
        TaskStatus.FAILED_RETRY,
        TaskStatus.TIMED_OUT,
        TaskStatus.CANCELLED,
        TaskStatus.REVIEW_REJECTED,
    }
)


class FileStatus(IntEnum):
    """Status of an uploaded file (reference §4.3)."""

    PENDING = 0
    READY = 1
    # Ready under the vendor scripts' reading, failed under the OpenAPI file's: taken as ready,
    # and a create refused for it raises UploadError (README, Choices).
    READY_LEGACY = 2
    REJECTED = 98
    DELETED = 99
    PURGED = 100


# --------------------------------------------------------------------------------------------
# Responses


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
    """A lip-sync task as returned by detail, list and the callback (reference §5.4).

    ``status`` stays a plain int so that a status the docs do not list is kept (and polled
    further) rather than crashing the parser; compare it with :class:`TaskStatus`. Only 20 is
    a success; 30, 40, 41, 50 and 1101 are failures (``failed``); 0, 10, 1100 and any other
    status mean the task has not ended.
    ``duration`` is kept raw: the docs say milliseconds, the callback example suggests otherwise
    (reference §10 q14).
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
        return self.status in _FAILURES

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


# --------------------------------------------------------------------------------------------
# Requests


def _between(low: float, high: float) -> Callable[[float], float]:
    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}")
        return value

    return check


def _one_of(*allowed: Any, meaning: str = "") -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value not in allowed:
            choices = " or ".join(repr(a) for a in allowed)
            raise ValueError(f"must be {choices}{f' ({meaning})' if meaning else ''}")
        return value

    return check


def _positive(value: int) -> int:
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def _text_list(value: Any) -> Any:
    # The table types text as array[string] while the page's example sends a string; the vendor
    # fixed its own script to send a list (reference §5.1). Accept both, always send a list.
    return [value] if isinstance(value, str) else value


# The create page sets no text limit; the TTS page does: "文本长度限制为4000字以下" (reference §7).
# The emulator refuses longer texts alike (40000), counting characters of the parts joined.
MAX_TEXT_CHARS = 3999


def _texts(value: list[str]) -> list[str]:
    if not value or any(not part.strip() for part in value):
        raise ValueError("must be a non-empty string or a non-empty list of non-empty strings")
    length = sum(len(part) for part in value)
    if length > MAX_TEXT_CHARS:
        # The value shown is the length: the text itself would fill the message.
        raise InvalidInputError(
            "tts_config.text",
            f"{length:,} characters",
            f"must be at most {MAX_TEXT_CHARS:,} characters in all (the TTS limit: under 4,000)",
        )
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return value


class _Request(BaseModel):
    """Base of request models: strict, frozen, and raising InvalidInputError on bad input."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)
    _wire_prefix: ClassVar[str] = ""

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _input_error(exc, self._wire_prefix) from None

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        """As pydantic's, but bad input raises InvalidInputError like the constructor."""
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            raise _input_error(exc, cls._wire_prefix) from None

    def to_wire(self) -> dict[str, Any]:
        """The JSON body as sent: wire names, unset optional fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    @model_validator(mode="before")
    @classmethod
    def _encodable(cls, data: Any) -> Any:
        # Every text goes out as UTF-8 JSON (and into the journal): a lone surrogate (from
        # os.fsdecode, or a broken decoder) cannot be encoded, so it is refused here, naming
        # its field, rather than failing later as a raw UnicodeEncodeError.
        if isinstance(data, dict):
            prefix = f"{cls._wire_prefix}." if cls._wire_prefix else ""
            for name, value in data.items():
                parts = value if isinstance(value, list) else [value]
                for part in parts:
                    if isinstance(part, str) and not _utf8(part):
                        raise InvalidInputError(
                            f"{prefix}{name}",
                            part,
                            "must be text that UTF-8 can encode (no lone surrogates)",
                        )
        return data


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _input_error(exc: ValidationError, prefix: str) -> InvalidInputError:
    """Turn pydantic's report into one InvalidInputError naming field, value and rule."""
    problems: list[InvalidInputError] = []
    for err in exc.errors():
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, InvalidInputError):
            problems.append(cause)
            continue
        # An empty key is named as such ('') rather than vanishing from the field name.
        parts = [prefix] if prefix else []
        parts += [str(part) if part != "" else "''" for part in err["loc"]]
        field = ".".join(parts) or "request"
        if err["type"] == "missing":
            problems.append(InvalidInputError(field, None, "is required"))
        elif err["type"] == "extra_forbidden":
            problems.append(InvalidInputError(field, err["input"], "is not a known field"))
        else:
            allowed = str(cause) if cause is not None else err["msg"]
            problems.append(InvalidInputError(field, err["input"], allowed))
    first = problems[0]
    if len(problems) == 1:
        return first
    others = "; ".join(str(p) for p in problems[1:])
    return InvalidInputError(first.field, first.value, f"{first.allowed} (also: {others})")


class TtsConfig(_Request):
    """Text-drive settings (``tts_config``). ``text`` may be given as one string."""

    _wire_prefix: ClassVar[str] = "tts_config"

    text: Annotated[list[str], BeforeValidator(_text_list), AfterValidator(_texts)]
    audio_man_id: Annotated[str, AfterValidator(_non_empty)]
    speed: Annotated[float, AfterValidator(_between(0.5, 2.0))] = 1.0
    # The create page defers to the TTS page; the vendor SDK documents 0.1 - 3.0 (reference §7).
    pitch: Annotated[float, AfterValidator(_between(0.1, 3.0))] = 1.0


class LipSyncRequest(_Request):
    """Body of ``POST /open/v1/video_lip_sync/create`` (reference §5.1).

    Build it with :meth:`tts` or :meth:`audio`, or with keyword arguments using wire names.
    ``model`` accepts 0 (basic), 1 (high quality) and 2 (cartoon material only): 2 is not on the
    official page but documented by the vendor's own skill (reference §5.1, §10 q8); a server
    that refuses it answers 40000, which surfaces as InvalidRequestError.

    Example:
        >>> req = LipSyncRequest.tts("e284db4d95de", text="你好", audio_man_id="C-f2429d07")
        >>> req.to_wire()["tts_config"]["text"]
        ['你好']
    """

    video_file_id: Annotated[str, AfterValidator(_non_empty)]
    audio_type: Annotated[str, AfterValidator(_one_of("tts", "audio"))] = "tts"
    tts_config: TtsConfig | None = None
    audio_file_id: Annotated[str, AfterValidator(_non_empty)] | None = None
    screen_width: Annotated[int, AfterValidator(_positive)] = 1080
    screen_height: Annotated[int, AfterValidator(_positive)] = 1920
    backway: Annotated[int, AfterValidator(_one_of(1, 2, meaning="1 forward, 2 reverse"))] = 1
    drive_mode: Annotated[str, AfterValidator(_one_of("", "random"))] = ""
    model: Annotated[
        int, AfterValidator(_one_of(0, 1, 2, meaning="0 basic, 1 high quality, 2 cartoon"))
    ] = 0
    volume: Annotated[int, AfterValidator(_between(1, 100))] = 100
    # repr=False: a callback URL may carry a signature in its query (a per-job capability).
    callback: Annotated[str, AfterValidator(_http_url)] | None = Field(default=None, repr=False)

    @model_validator(mode="after")
    def _drive_inputs(self) -> LipSyncRequest:
        if self.audio_type == "tts":
            if self.tts_config is None:
                raise InvalidInputError("tts_config", None, "is required when audio_type='tts'")
            if self.audio_file_id is not None:
                raise InvalidInputError(
                    "audio_file_id", self.audio_file_id, "must be omitted when audio_type='tts'"
                )
        else:
            if self.audio_file_id is None:
                raise InvalidInputError(
                    "audio_file_id", None, "is required when audio_type='audio'"
                )
            if self.tts_config is not None:
                raise InvalidInputError(
                    "tts_config", "<TtsConfig>", "must be omitted when audio_type='audio'"
                )
        return self

    @classmethod
    def tts(
        cls,
        video_file_id: str,
        *,
        text: str | list[str],
        audio_man_id: str,
        speed: float = 1.0,
        pitch: float = 1.0,
        **options: Any,
    ) -> LipSyncRequest:
        """A text-driven request; ``options`` are the other create fields (wire names)."""
        config = TtsConfig(
            text=[text] if isinstance(text, str) else text,
            audio_man_id=audio_man_id,
            speed=speed,
            pitch=pitch,
        )
        _check_options("tts", options, ("audio_type", "tts_config"))
        return cls(video_file_id=video_file_id, audio_type="tts", tts_config=config, **options)

    @classmethod
    def audio(cls, video_file_id: str, *, audio_file_id: str, **options: Any) -> LipSyncRequest:
        """An audio-driven request; ``options`` are the other create fields (wire names)."""
        _check_options("audio", options, ("audio_type",))
        return cls(
            video_file_id=video_file_id, audio_type="audio", audio_file_id=audio_file_id, **options
        )


def _check_options(factory: str, options: dict[str, Any], reserved: tuple[str, ...]) -> None:
    """Options may not set what the factory sets itself."""
    for name in reserved:
        if name in options:
            raise InvalidInputError(
                name, options[name], f"is set by LipSyncRequest.{factory}; leave it out"
            )


def check_page(page: int, page_size: int, *, size_field: str = "page_size") -> None:
    """Validate list paging before sending: ``page`` >= 1, size 1..MAX_PAGE_SIZE."""
    # type() rather than isinstance(): True is an int, but page=True is a bug.
    if type(page) is not int or page < 1:
        raise InvalidInputError("page", page, "must be an integer >= 1")
    if type(page_size) is not int:
        raise InvalidInputError(size_field, page_size, f"must be an integer 1..{MAX_PAGE_SIZE}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInputError(size_field, page_size, f"must be between 1 and {MAX_PAGE_SIZE}")
