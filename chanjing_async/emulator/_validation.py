"""Validation of request parameters, answering 40000 with the offending field named."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ._protocol import param_error
from ._voices import CATALOGUE_IDS, unknown_voice_reason

AUDIO_TYPES = ("tts", "audio")
MAX_PAGE_SIZE = 100  # the docs leave it open; 100 is generous without being unbounded
# The create page sets no text limit; the TTS page does: "文本长度限制为4000字以下", "单次请求长度
# 限制小于4千字". Counted in characters (code points), the parts joined.
MAX_TEXT_CHARS = 3999


@dataclass(frozen=True)
class CreateRequest:
    """What the emulator needs from a valid create body.

    Attributes:
        video_file_id: The driving video's file id.
        audio_type: ``"tts"`` or ``"audio"``.
        text: The TTS text joined into one string (empty in audio mode).
        audio_file_id: The driving audio's file id (None in TTS mode).
        callback: The callback URL, or None.
    """

    video_file_id: str
    audio_type: str
    text: str
    audio_file_id: str | None
    callback: str | None


def parse_create(body: Mapping[str, Any], extra_voices: Collection[str]) -> CreateRequest:
    """Validate a create body as documented on the create page.

    Fields are checked in the order of the documented table and the first failure is reported.
    Unknown fields are ignored, and ``null`` counts as absent for optional fields. The text may
    hold at most ``MAX_TEXT_CHARS`` characters, and ``audio_man_id`` must name a voice of the
    catalogue or of ``extra_voices`` (the live TTS endpoint answers "没有找到对应的声音ID"; a
    40000 here, like every other parameter error, so that a client knows nothing was created).

    Args:
        body: The decoded JSON object.
        extra_voices: Voice ids accepted besides the catalogue's.

    Returns:
        The parts of the request the emulator acts on.

    Raises:
        ApiError: 40000 naming the first invalid field.
    """
    video_file_id = _required_string(body, "video_file_id")
    audio_type = body.get("audio_type")
    if audio_type is None:
        audio_type = "tts"  # documented default
    elif audio_type not in AUDIO_TYPES:
        raise param_error("audio_type", 'must be "tts" or "audio"')
    text, audio_file_id = "", None
    if audio_type == "tts":
        config = body.get("tts_config")
        if config is None:
            raise param_error("tts_config", "is required when audio_type is tts")
        if not isinstance(config, Mapping):
            raise param_error("tts_config", "must be an object")
        text = _text(config.get("text"))
        voice = _required_string(config, "audio_man_id", prefix="tts_config.")
        if voice not in CATALOGUE_IDS and voice not in extra_voices:
            raise param_error("tts_config.audio_man_id", unknown_voice_reason(voice))
        _number_between(config, "speed", 0.5, 2, prefix="tts_config.")
        # Pitch range per the vendor SDK docs; the create page defers to the TTS docs.
        _number_between(config, "pitch", 0.1, 3, prefix="tts_config.")
    else:
        audio_file_id = _required_string(body, "audio_file_id")
    optional_int(body, "volume", 100, 100)
    _choice(body, "backway", (1, 2), "must be 1 or 2")
    _choice(body, "drive_mode", ("", "random"), 'must be "" or "random"')
    # 2 (cartoon) appears only in the vendor's newer tooling, not the create page; accepted.
    _choice(body, "model", (0, 1, 2), "must be 0, 1 or 2")
    optional_int(body, "screen_width", 1080, None)
    optional_int(body, "screen_height", 1920, None)
    return CreateRequest(video_file_id, audio_type, text, audio_file_id, _callback(body))


def int_param(name: str, value: object, low: int, high: int | None) -> int:
    """Check an integer parameter against its range.

    Booleans and floats are rejected, as a typed server would reject them.

    Args:
        name: The field name to report.
        value: The value.
        low: Smallest allowed value.
        high: Largest allowed value, or None for no upper bound.

    Returns:
        The value.

    Raises:
        ApiError: 40000 naming the field.
    """
    if type(value) is int and value >= low and (high is None or value <= high):
        return value
    if high is not None:
        raise param_error(name, f"must be an integer between {low} and {high}")
    raise param_error(name, "must be a positive integer" if low == 1 else f"must be >= {low}")


def optional_int(body: Mapping[str, Any], name: str, default: int, high: int | None) -> int:
    """A positive integer field of ``body`` (at most ``high``), ``default`` when absent or null.

    Raises:
        ApiError: 40000 naming the field.
    """
    value = body.get(name)
    return default if value is None else int_param(name, value, 1, high)


def _required_string(body: Mapping[str, Any], name: str, *, prefix: str = "") -> str:
    value = body.get(name)
    if value is None:
        raise param_error(prefix + name, "is required")
    if not isinstance(value, str) or not value.strip():
        raise param_error(prefix + name, "must be a non-empty string")
    return value


def _text(value: object) -> str:
    # The table types text as array[string]; the page's example sends a string. Both pass.
    if isinstance(value, str) and value.strip():
        text = value
    elif (
        isinstance(value, list)
        and value
        and all(isinstance(part, str) and part.strip() for part in value)
    ):
        text = "".join(value)
    else:
        reason = "must be a non-empty string or a non-empty list of non-empty strings"
        raise param_error("tts_config.text", reason)
    if len(text) > MAX_TEXT_CHARS:
        reason = f"must be at most {MAX_TEXT_CHARS} characters in all, got {len(text)}"
        raise param_error("tts_config.text", reason)
    return text


def _number_between(
    body: Mapping[str, Any], name: str, low: float, high: float, *, prefix: str
) -> None:
    value = body.get(name)
    if value is None:
        return
    number_ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    # The negated chained comparison also rejects NaN.
    if not number_ok or not low <= value <= high:
        raise param_error(prefix + name, f"must be between {low:g} and {high:g}")


def _choice(body: Mapping[str, Any], name: str, choices: tuple[object, ...], reason: str) -> None:
    value = body.get(name)
    # Same type as the choices, so True does not pass for 1 nor 1.0 for an int field.
    if value is not None and not (type(value) is type(choices[0]) and value in choices):
        raise param_error(name, reason)


def _callback(body: Mapping[str, Any]) -> str | None:
    value = body.get("callback")
    if value is None or value == "":
        return None
    if isinstance(value, str):
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and parts.netloc:
            return value
    raise param_error("callback", "must be an http(s) URL")


def query_int(query: Mapping[str, str], name: str, default: int, high: int | None) -> int:
    """A positive integer query parameter (at most ``high``), ``default`` when absent.

    Raises:
        ApiError: 40000 naming the parameter.
    """
    value = query.get(name)
    if value is None:
        return default
    number = int(value) if value.isascii() and value.isdigit() else value
    return int_param(name, number, 1, high)
