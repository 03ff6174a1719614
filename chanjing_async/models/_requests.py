"""The create request: ``LipSyncRequest`` and its ``TtsConfig``, checked before anything is sent.

Requests forbid unknown fields (a typo must not be silently dropped) and check every documented
range with the field table's checks (``_fields``), raising
:class:`~chanjing_async.errors.InvalidInputError` that names the field, the value and what is
allowed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from ..errors import InvalidInputError
from ._fields import FIELD
from ._rules import one_of, text_list

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["LipSyncRequest", "TtsConfig"]


def _checked(column: str) -> AfterValidator:
    """The check of the field table's ``column``, for an ``Annotated`` request field."""
    check = FIELD[column].check
    assert check is not None, column
    return AfterValidator(check)


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

    text: Annotated[list[str], BeforeValidator(text_list), _checked("text")]
    audio_man_id: Annotated[str, _checked("voice")]
    speed: Annotated[float, _checked("speed")] = FIELD["speed"].default
    pitch: Annotated[float, _checked("pitch")] = FIELD["pitch"].default


class LipSyncRequest(_Request):
    """Body of ``POST /open/v1/video_lip_sync/create``.

    Build it with :meth:`tts` or :meth:`audio`, or with keyword arguments using wire names.
    Each field's check and default are the field table's (``_fields``). ``model`` accepts 0
    (basic), 1 (high quality) and 2 (cartoon material only): 2 is not on the official page but
    documented by the vendor's own skill; a server that refuses it answers 40000, which
    surfaces as InvalidRequestError.

    Example:
        >>> req = LipSyncRequest.tts("e284db4d95de", text="你好", audio_man_id="C-f2429d07")
        >>> req.to_wire()["tts_config"]["text"]
        ['你好']
    """

    video_file_id: Annotated[str, _checked("video_file_id")]
    audio_type: Annotated[str, AfterValidator(one_of("tts", "audio"))] = "tts"
    tts_config: TtsConfig | None = None
    audio_file_id: Annotated[str, _checked("audio_file_id")] | None = None
    screen_width: Annotated[int, _checked("screen_width")] = FIELD["screen_width"].default
    screen_height: Annotated[int, _checked("screen_height")] = FIELD["screen_height"].default
    backway: Annotated[int, _checked("backway")] = FIELD["backway"].default
    drive_mode: Annotated[str, _checked("drive_mode")] = FIELD["drive_mode"].default
    model: Annotated[int, _checked("model")] = FIELD["model"].default
    volume: Annotated[int, _checked("volume")] = FIELD["volume"].default
    # repr=False: a callback URL may carry a signature in its query (a per-job capability).
    callback: Annotated[str, _checked("callback")] | None = Field(default=None, repr=False)

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
