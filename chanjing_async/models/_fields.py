"""The fields of a lip-sync job, each named once: manifest column, CLI flag, request field,
how it is read, its check, its default and its help; and the rule that makes them one job.

Everything that takes a job from a user reads this table: the request models
(``LipSyncRequest``, ``TtsConfig``) take each field's check and default from it, a batch
manifest's row checker its columns and how to read a cell, and ``chanjing lipsync create`` its
flags and their help. A bad value is refused by the field's check, with the reason the table
gives, wherever it came from; :func:`drive_problems` words a missing or conflicting field
either for a manifest row (naming columns) or for the command line (naming flags).

A job is either text-driven (``text`` and ``voice``, optionally ``speed`` and ``pitch``) or
audio-driven (``audio`` or ``audio_file_id``), never both; it has exactly one video: a local
``video`` or an uploaded ``video_file_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ._rules import between, http_url, non_empty, one_of, positive, texts

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from collections.abc import Set as AbstractSet

__all__ = [
    "AUDIO_DRIVEN",
    "COLUMNS",
    "FIELD",
    "FIELDS",
    "OPTIONS",
    "TEXT_DRIVEN",
    "RequestField",
    "column_of",
    "drive_problems",
    "flag_message",
]

Kind = Literal["path", "string", "text", "integer", "number"]
Drive = Literal["video", "text", "audio", "option"]


@dataclass(frozen=True)
class RequestField:
    """One field of a lip-sync job as a user gives it.

    Attributes:
        column: its manifest column; the CLI flag is the same name dashed (``--video-file-id``).
        request: the field an ``InvalidInputError`` names when the value is refused: the wire
            path (``tts_config.speed``), or ``LipSyncJob``'s argument for a local file.
        kind: how a manifest cell is read: a local ``path``, a ``string``, a ``text`` (a string
            or a list of strings), an ``integer`` (a whole number) or a ``number``.
        drive: what it belongs to: the ``video``, a ``text``- or an ``audio``-driven job, or an
            ``option`` of either.
        help: the help of its CLI flag.
        check: the check of its value in the request (None: its type says all).
        default: the request's value when it is not given (None: left out of the request).
        aliases: other column names accepted for it.
    """

    column: str
    request: str
    kind: Kind
    drive: Drive
    help: str
    check: Callable[[Any], Any] | None = None
    default: Any = None
    aliases: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        """Its CLI flag: ``--`` and the column, dashed."""
        return "--" + self.column.replace("_", "-")


FIELDS: tuple[RequestField, ...] = (
    RequestField(
        "video", "video", "path", "video", "Local video (.mp4, .mov, .webm), uploaded first."
    ),
    RequestField(
        "video_file_id",
        "video_file_id",
        "string",
        "video",
        "Id of an uploaded video (service lip_sync_video).",
        non_empty,
    ),
    RequestField(
        "text",
        "tts_config.text",
        "text",
        "text",
        "Text to speak (text-driven); repeat it for several segments.",
        texts,
    ),
    RequestField(
        "voice",
        "tts_config.audio_man_id",
        "string",
        "text",
        "Voice id for --text; list them with `chanjing voices`.",
        non_empty,
        aliases=("audio_man_id",),
    ),
    RequestField(
        "speed",
        "tts_config.speed",
        "number",
        "text",
        "Speech speed for --text, 0.5 to 2 (default 1).",
        between(0.5, 2.0),
        1.0,
    ),
    # The create page defers to the TTS page; the vendor SDK documents a pitch of 0.1 - 3.0.
    RequestField(
        "pitch",
        "tts_config.pitch",
        "number",
        "text",
        "Speech pitch for --text, 0.1 to 3 (default 1).",
        between(0.1, 3.0),
        1.0,
    ),
    RequestField(
        "audio",
        "audio",
        "path",
        "audio",
        "Local audio (.mp3, .m4a, .wav) to drive the lips, uploaded first.",
    ),
    RequestField(
        "audio_file_id",
        "audio_file_id",
        "string",
        "audio",
        "Id of an uploaded audio (service lip_sync_audio).",
        non_empty,
    ),
    # 2 is not on the official create page but in the vendor's own skill; a server that
    # refuses it answers 40000 (InvalidRequestError).
    RequestField(
        "model",
        "model",
        "integer",
        "option",
        "0 basic, 1 high quality, 2 cartoon (default 0).",
        one_of(0, 1, 2, meaning="0 basic, 1 high quality, 2 cartoon"),
        0,
    ),
    RequestField(
        "screen_width",
        "screen_width",
        "integer",
        "option",
        "Output width in pixels (default 1080).",
        positive,
        1080,
    ),
    RequestField(
        "screen_height",
        "screen_height",
        "integer",
        "option",
        "Output height in pixels (default 1920).",
        positive,
        1920,
    ),
    RequestField(
        "backway",
        "backway",
        "integer",
        "option",
        "When the speech outlasts the video: 1 replay it forward, 2 play it in reverse "
        "(default 1).",
        one_of(1, 2, meaning="1 forward, 2 reverse"),
        1,
    ),
    RequestField(
        "drive_mode",
        "drive_mode",
        "string",
        "option",
        "'' (in order) or 'random' (default '').",
        one_of("", "random"),
        "",
    ),
    RequestField(
        "volume",
        "volume",
        "integer",
        "option",
        "Volume, 1 to 100 (default 100).",
        between(1, 100),
        100,
    ),
    RequestField(
        "callback",
        "callback",
        "string",
        "option",
        "http(s) URL the API notifies when the task ends.",
        http_url,
    ),
)

FIELD: Mapping[str, RequestField] = {field.column: field for field in FIELDS}
"""Each field by its column."""
COLUMNS: tuple[str, ...] = tuple(name for f in FIELDS for name in (f.column, *f.aliases))
"""Every column naming a field, aliases after the column they stand for."""
OPTIONS = tuple(f.column for f in FIELDS if f.drive == "option")
TEXT_DRIVEN = tuple(f.column for f in FIELDS if f.drive == "text")
AUDIO_DRIVEN = tuple(f.column for f in FIELDS if f.drive == "audio")
_BY_REQUEST = {f.request: f.column for f in FIELDS}
# What a text-driven job cannot do without: the words and the voice that speaks them.
_SPOKEN = ("text", "voice")


def column_of(request: str) -> str | None:
    """The column of the field an ``InvalidInputError`` names (``tts_config.speed``: ``speed``)."""
    return _BY_REQUEST.get(request)


def flag_message(column: str, value: object, reason: str) -> str:
    """A refused value as the CLI words it: ``--speed=3.0 (tts_config.speed): must be ...``."""
    field = FIELD.get(column)
    if field is None:
        return reason
    shown = "" if value is None else f"={value!r}"
    request = "" if field.request == field.column else f" ({field.request})"
    return f"{field.flag}{shown}{request}: {reason}"


def drive_problems(given: AbstractSet[str], *, flags: bool = False) -> list[tuple[str, str]]:
    """(column, reason) for each way the ``given`` columns do not make one job.

    For a manifest row each problem is on its column (``row`` for the row as a whole); with
    ``flags`` (the command line) each is a whole line naming the flags, on column ``row``, and
    a text-driven field given with an audio is one problem, not one per field.
    """
    found = [(column, _WORDS[kind][flags](column)) for kind, column in _drive_kinds(given)]
    if flags:
        return list(dict.fromkeys(("row", reason) for _, reason in found))
    return found


def _drive_kinds(given: AbstractSet[str]) -> list[tuple[str, str]]:
    """(kind of problem, column) for each way the given columns do not make one job."""
    found: list[tuple[str, str]] = []
    if "video" in given and "video_file_id" in given:
        found.append(("both", "video"))
    elif "video" not in given and "video_file_id" not in given:
        found.append(("no-video", "video"))
    text_driven = [column for column in TEXT_DRIVEN if column in given]
    if any(column in given for column in AUDIO_DRIVEN):
        if all(column in given for column in AUDIO_DRIVEN):
            found.append(("both", "audio"))
        found.extend(("mixed", column) for column in text_driven)
    elif text_driven:
        found.extend(("required", column) for column in _SPOKEN if column not in given)
    else:
        found.append(("nothing", "row"))
    return found


def _flags(columns: tuple[str, ...]) -> str:
    return "/".join(FIELD[column].flag for column in columns)


def _required_with(column: str) -> str:
    """``--voice (tts_config.audio_man_id): is required with --text (a voice id: ...)``."""
    (other,) = (name for name in _SPOKEN if name != column)
    hint = " (a voice id: see `chanjing voices`)" if column == "voice" else ""
    return flag_message(column, None, f"is required with {FIELD[other].flag}{hint}")


# kind -> (the manifest's reason, the command line's message), each given the column.
_WORDS: dict[str, tuple[Callable[[str], str], Callable[[str], str]]] = {
    "both": (
        lambda c: f"give only one of {c} (a local file) or {c}_file_id",
        lambda c: (
            f"--{c} and --{c}-file-id: give only one {c} (a local file or the id of an "
            "uploaded one)"
        ),
    ),
    "no-video": (
        lambda c: f"is required: give {c} (a local file) or {c}_file_id",
        lambda c: f"--{c} or --{c}-file-id: a {c} is required",
    ),
    "mixed": (
        lambda c: "is only for text-driven rows (text + voice); this row has audio",
        lambda c: (
            f"{_flags(TEXT_DRIVEN)} drive a task by text, {_flags(AUDIO_DRIVEN)} by "
            "audio: give one kind only"
        ),
    ),
    "required": (
        lambda c: "is required for a text-driven row (text + voice)",
        _required_with,
    ),
    "nothing": (
        lambda c: "needs text + voice (text-driven) or audio / audio_file_id (audio-driven)",
        lambda c: (
            "nothing to say: give --text with --voice (text-driven) or --audio / "
            "--audio-file-id (audio-driven)"
        ),
    ),
}
