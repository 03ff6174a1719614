"""Checking manifest rows one at a time: values converted, the job built, every problem named.

``RowChecker.check`` turns one record (``_manifest_files``) into a :class:`ManifestRow` or the
list of its :class:`RowError` (``_manifest_types``), numbered by data row (the caller adds the
line of the file); the columns and rules are documented in ``_manifest``. It keeps no per-row
state: what it remembers (resolved paths, the verdicts on values already seen) is bounded, so
a manifest of any length is checked in constant memory.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from ..jobs._jobspec import LipSyncJob
from ..models import LipSyncRequest
from ._output_names import check_output
from ._types import MANIFEST_FIELDS, ManifestRow, RowError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from collections.abc import Set as AbstractSet

__all__ = ["MANIFEST_FIELDS", "ManifestRow", "RowChecker", "RowError", "check_output", "printable"]

_INTEGERS = frozenset({"model", "screen_width", "screen_height", "backway", "volume"})
_NUMBERS = frozenset({"speed", "pitch"})
_PATHS = frozenset({"video", "audio"})
# Create fields passed through unchanged (after conversion) as the job's options.
_OPTIONS = ("model", "screen_width", "screen_height", "backway", "drive_mode", "volume", "callback")
_TEXT_DRIVEN = ("text", "voice", "speed", "pitch")
_AUDIO_DRIVEN = ("audio", "audio_file_id")
# Stands in for the other fields when one field is checked on its own.
_FILLER = "x"

_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
# Values remembered (resolved paths, verdicts on a value): forgotten past this many.
_MEMORY = 4096
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_REASON = (
    "must be valid Unicode text: it contains a lone surrogate ({found}), which no UTF-8 "
    "file or request can carry"
)


class _Bad(Exception):
    """A value refused before any model sees it; the message is the reason."""


# --------------------------------------------------------------------------------------------
# Rows


class RowChecker:
    """Checks rows one by one; duplicate outputs are the caller's to find (``check`` returns
    each row's output key)."""

    def __init__(self, base: Path, *, fingerprints: bool = True) -> None:
        """Rows are read relative to ``base``; without ``fingerprints`` (a pass that only
        counts) a row's fingerprint is left empty."""
        self.base = base
        self._fingerprints = fingerprints
        self._paths: dict[str, Path] = {}
        self._checked: dict[tuple[str, object], InvalidInputError | None] = {}

    def check(
        self, row: int, raw: Mapping[str, object], problems: list[RowError]
    ) -> tuple[ManifestRow | None, str | None]:
        """Check one row's known columns; ``problems`` holds those its reader already found,
        and gets every problem this check finds.

        Returns:
            The row, or None if it has a problem; and its output's key (case-folded) when the
            output itself is valid, else None.
        """
        output = self._output(row, raw.get("output"), problems)
        values, failed = self._convert(row, raw, problems)
        job = self._job(row, raw, values, failed, problems)
        key = None if output is None else output.casefold()
        if problems or job is None or output is None:
            return None, key
        values["output"] = output
        fingerprint = _fingerprint(values) if self._fingerprints else ""
        return ManifestRow(row, output, job, fingerprint), key

    def _output(self, row: int, value: object, problems: list[RowError]) -> str | None:
        if _missing(value):
            problems.append(RowError(row, "output", None, "is required"))
            return None
        try:
            if not isinstance(value, str):
                raise _Bad("must be a string")
            _refuse_surrogates(value)
            output = unicodedata.normalize("NFC", value.strip())
            if output.lower().endswith(".mp4"):
                output = output[:-4]
            problem = check_output(output)
            if problem is not None:
                raise _Bad(problem)
        except _Bad as bad:
            problems.append(RowError(row, "output", value, str(bad)))
            return None
        return output

    def _convert(
        self, row: int, raw: Mapping[str, object], problems: list[RowError]
    ) -> tuple[dict[str, Any], set[str]]:
        """The given values, converted, and the fields whose value could not be.

        A voice given as ``audio_man_id`` is returned as ``voice``.
        """
        values: dict[str, Any] = {}
        failed: set[str] = set()
        for column, value in raw.items():
            if column == "output" or _missing(value):
                continue
            try:
                values[column] = self._value(column, value)
            except _Bad as bad:
                problems.append(RowError(row, column, value, str(bad)))
                failed.add("voice" if column == "audio_man_id" else column)
        if "audio_man_id" in values:
            alias = values.pop("audio_man_id")
            if "voice" in values or "voice" in failed:
                reason = "is another name for voice: give only one of them"
                problems.append(RowError(row, "audio_man_id", raw["audio_man_id"], reason))
            else:
                values["voice"] = alias
        return values, failed

    def _value(self, column: str, value: object) -> Any:
        _refuse_surrogates(value)
        if column in _INTEGERS:
            return _integer(value)
        if column in _NUMBERS:
            return _number(value)
        if column == "text":
            if isinstance(value, list) and all(isinstance(part, str) for part in value):
                return [part.strip() for part in value]
            if not isinstance(value, str):
                raise _Bad("must be a string or a list of strings")
            return [value.strip()]
        if not isinstance(value, str):
            raise _Bad("must be a string")
        if column in _PATHS:
            return self._path(value.strip())
        return value.strip()

    def _path(self, value: str) -> Path:
        known = self._paths.get(value)
        if known is None:
            try:
                known = (self.base / Path(value).expanduser()).resolve()
                known.is_file()  # a name too long for the system fails here, not later
            except (RuntimeError, OSError, ValueError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                raise _Bad(f"is not a usable path ({reason})") from None
            _remember(self._paths, value, known)
        return known

    def _diagnose(self, values: Mapping[str, Any], skip: set[str]) -> list[InvalidInputError]:
        """Check each given field on its own, so that every bad one is reported.

        Results are remembered: a bad manifest often repeats the same bad value.
        """
        found: list[InvalidInputError] = []
        for name, value in values.items():
            if name in skip:
                continue
            key = (name, tuple(value) if isinstance(value, list) else value)
            if key not in self._checked:
                _remember(self._checked, key, _check_field(name, value))
            problem = self._checked[key]
            if problem is not None:
                found.append(problem)
        return found

    def _job(
        self,
        row: int,
        raw: Mapping[str, object],
        values: dict[str, Any],
        failed: set[str],
        problems: list[RowError],
    ) -> LipSyncJob | None:
        """Build the job; or add every problem found with the fields, each on its own."""
        structure = _structure(values.keys() | failed)
        job: LipSyncJob | None = None
        found: list[InvalidInputError] = []
        if structure or failed:
            found = self._diagnose(values, {field for field, _ in structure})
        else:
            try:
                job = _build(values)
            except InvalidInputError as exc:
                found = self._diagnose(values, set()) or [exc]
        for field, reason in structure:
            column = _column(field, raw)
            problems.append(RowError(row, column, _shown(column, raw), reason))
        for problem in found:
            column = _column(problem.field, raw)
            value = _shown(column, raw) if column in raw else problem.value
            problems.append(RowError(row, column, value, _reason(problem, values)))
        return job


def _remember(memory: dict[Any, Any], key: object, value: object) -> None:
    """Remember ``value``, forgetting everything once ``_MEMORY`` values are held."""
    if len(memory) >= _MEMORY:
        memory.clear()
    memory[key] = value


def printable(text: str) -> str:
    """``text`` with lone surrogates written as escapes (``\\udc00``): safe to encode."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _refuse_surrogates(value: object) -> None:
    """Refuse a string (or list of strings) holding a lone surrogate (JSON's ``"\\udc00"``):
    it can be neither encoded for the request nor written down."""
    for part in value if isinstance(value, list) else [value]:
        found = _SURROGATE.search(part) if isinstance(part, str) else None
        if found is not None:
            raise _Bad(_SURROGATE_REASON.format(found=printable(found.group())))


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _integer(value: object) -> int:
    if isinstance(value, bool):
        raise _Bad("must be a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            try:
                return int(text)
            except ValueError:  # more digits than int() converts (4,300): no request field
                raise _Bad("must be a whole number of at most 4,300 digits") from None
        if _NUMBER.fullmatch(text):
            value = float(text)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _Bad("must be a whole number")


def _number(value: object) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = float(value.strip())
    else:
        raise _Bad("must be a number")
    if not math.isfinite(number):
        raise _Bad("must be a number")
    return number


def _structure(values: AbstractSet[str]) -> list[tuple[str, str]]:
    """(field, reason) for each way the given fields do not make one job."""
    found: list[tuple[str, str]] = []
    if "video" in values and "video_file_id" in values:
        found.append(("video", "give only one of video (a local file) or video_file_id"))
    elif "video" not in values and "video_file_id" not in values:
        found.append(("video", "is required: give video (a local file) or video_file_id"))
    text_driven = [field for field in _TEXT_DRIVEN if field in values]
    if "audio" in values or "audio_file_id" in values:
        if "audio" in values and "audio_file_id" in values:
            found.append(("audio", "give only one of audio (a local file) or audio_file_id"))
        reason = "is only for text-driven rows (text + voice); this row has audio"
        found.extend((field, reason) for field in text_driven)
    elif text_driven:
        if "text" not in values:
            found.append(("text", "is required for a text-driven row (text + voice)"))
        if "voice" not in values:
            found.append(("voice", "is required for a text-driven row (text + voice)"))
    else:
        reason = "needs text + voice (text-driven) or audio / audio_file_id (audio-driven)"
        found.append(("row", reason))
    return found


def _build(values: Mapping[str, Any]) -> LipSyncJob:
    options = {name: values[name] for name in _OPTIONS if name in values}
    video = values.get("video")
    video_file_id = values.get("video_file_id")
    if "audio" in values or "audio_file_id" in values:
        return LipSyncJob.audio(
            video,
            video_file_id=video_file_id,
            audio=values.get("audio"),
            audio_file_id=values.get("audio_file_id"),
            **options,
        )
    for name in ("speed", "pitch"):
        if name in values:
            options[name] = values[name]
    return LipSyncJob.tts(
        video,
        video_file_id=video_file_id,
        text=values["text"],
        audio_man_id=values["voice"],
        **options,
    )


def _check_field(name: str, value: Any) -> InvalidInputError | None:
    """Check one field on its own, the others given valid stand-ins."""
    if name == "video":
        return _problem(LipSyncJob.audio, value, audio_file_id=_FILLER)
    if name == "audio":
        return _problem(LipSyncJob.audio, video_file_id=_FILLER, audio=value)
    if name in _OPTIONS:
        return _problem(LipSyncRequest.audio, _FILLER, audio_file_id=_FILLER, **{name: value})
    if name in _TEXT_DRIVEN:
        tts: dict[str, Any] = {"text": _FILLER, "audio_man_id": _FILLER}
        tts["audio_man_id" if name == "voice" else name] = value
        return _problem(LipSyncRequest.tts, _FILLER, **tts)
    return None


def _problem(check: Callable[..., object], *args: Any, **kwargs: Any) -> InvalidInputError | None:
    try:
        check(*args, **kwargs)
    except InvalidInputError as exc:
        return exc
    return None


def _column(field: str, raw: Mapping[str, object]) -> str:
    """The manifest column of a request field (``tts_config.speed`` -> ``speed``)."""
    parts = field.split(".")
    name = parts[1] if parts[0] == "tts_config" and len(parts) > 1 else parts[0]
    if name == "audio_man_id":
        name = "voice" if _given(raw, "voice") or not _given(raw, "audio_man_id") else name
    elif name in ("video_file_id", "audio_file_id") and not _given(raw, name):
        name = name.removesuffix("_file_id")
    elif name == "voice" and not _given(raw, "voice") and _given(raw, "audio_man_id"):
        name = "audio_man_id"
    return name if name in MANIFEST_FIELDS else "row"


def _given(raw: Mapping[str, object], column: str) -> bool:
    return not _missing(raw.get(column))


def _shown(column: str, raw: Mapping[str, object]) -> object:
    """The value of ``column`` as written, or None when not given."""
    return None if _missing(raw.get(column)) else raw.get(column)


def _reason(exc: InvalidInputError, values: Mapping[str, Any]) -> str:
    column = exc.field.split(".")[0]
    if column in _PATHS and column in values and "existing file" in exc.allowed:
        return f"{exc.allowed} (looked for {values[column]})"
    return exc.allowed


def _fingerprint(values: Mapping[str, Any]) -> str:
    canonical = {
        name: str(value) if isinstance(value, Path) else value for name, value in values.items()
    }
    encoded = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()
