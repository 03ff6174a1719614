"""Batch manifests: one lip-sync job per row of a CSV or JSONL file, validated as a whole.

``read_manifest`` checks every row before anything is submitted and reports every problem it
finds as a :class:`RowError` (line number, column, value, reason); a batch runs only when the
list of errors is empty.

Files
    ``.csv``: UTF-8 (a leading BOM is accepted), a header row naming the columns, one job per
    row. Cells are strings: surrounding whitespace is stripped and an empty cell means "not
    given". A row shorter than the header leaves the missing cells empty; a value beyond the
    header's columns, or a record that is not valid CSV, is an error of that row.

    ``.jsonl`` or ``.ndjson``: UTF-8, one JSON object per line. Values may be strings or
    numbers (``"1080"`` and ``1080`` are the same); strings are stripped; ``null`` or an
    empty string means "not given"; ``text`` may also be a list of strings. A line that is
    not a JSON object is an error of that row.

    Numbers are read by the manifest: the integer columns take whole numbers (``720`` or
    ``720.0``), ``speed`` and ``pitch`` any finite number; the ranges are the request's.

    Blank lines, rows whose cells are all empty and objects without a value are skipped. A
    row's number is its line in the file: in a CSV the header is line 1 (a record spanning
    several lines is numbered by its first line). Any other extension, an unreadable file, a
    file that is not UTF-8, a file without rows, and a CSV header without an ``output`` column
    or with a column named twice are refused as a whole (``InvalidInputError`` with field
    ``manifest``).

Columns (:data:`MANIFEST_FIELDS`)
    ``output`` (required)
        Name of the result, relative to the output folder, without extension: the video is
        saved as ``<output>.mp4`` and its cover as ``<output>.jpg``. A trailing ``.mp4`` is
        dropped. Folders are separated by ``/``; the name must stay inside the output folder:
        no absolute path, no ``..`` or ``.`` part, no empty part, no ``\\`` or ``:`` (drive
        letters), none of ``* ? " < > |``, no control character, no leading ``-``, no part
        starting or ending with a space or ending with a dot, no part over 200 bytes. It
        identifies the job: two rows may not share it, compared case-insensitively.
    ``video`` or ``video_file_id`` (exactly one)
        A local video file (.mp4, .mov, .webm), or the id of a video already uploaded.
    Text-driven: ``text`` and ``voice`` (both required), ``speed``, ``pitch``
        The words to say and the voice id (``audio_man_id`` is accepted as another name for
        ``voice``); ``speed`` 0.5-2.0, ``pitch`` 0.1-3.0.
    Audio-driven: ``audio`` or ``audio_file_id`` (exactly one)
        A local audio file (.mp3, .m4a, .wav), or the id of an audio already uploaded.
    Optional: ``model``, ``screen_width``, ``screen_height``, ``backway``, ``drive_mode``,
    ``volume``, ``callback``
        As in the create request: ``model`` 0 (basic), 1 (high quality) or 2 (cartoon);
        ``screen_width``/``screen_height`` positive integers; ``backway`` 1 or 2;
        ``drive_mode`` ``random`` (or empty); ``volume`` 1-100; ``callback`` an http(s) URL.

    A row is either text-driven or audio-driven: ``text``, ``voice``, ``speed`` or ``pitch``
    together with ``audio`` or ``audio_file_id`` is an error. Local paths are relative to the
    folder of the manifest (``~`` is expanded); each file must exist and have an accepted
    extension. An unknown CSV column is reported once, on the header's line (the rows are still
    checked); an unknown JSONL key is reported on its line.

Example (CSV)::

    output,video,text,voice,speed,audio,model
    greetings/hello,media/talk.mp4,你好,C-f2429d07,1.2,,1
    greetings/bye,media/talk.mp4,,,,media/bye.wav,
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._jobspec import LipSyncJob
from .errors import InvalidInputError
from .models import LipSyncRequest

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Mapping
    from collections.abc import Set as AbstractSet

__all__ = [
    "MANIFEST_FIELDS",
    "Manifest",
    "ManifestRow",
    "RowError",
    "output_paths",
    "read_manifest",
]

MANIFEST_FIELDS: tuple[str, ...] = (
    "output",
    "video",
    "video_file_id",
    "text",
    "voice",
    "audio_man_id",
    "speed",
    "pitch",
    "audio",
    "audio_file_id",
    "model",
    "screen_width",
    "screen_height",
    "backway",
    "drive_mode",
    "volume",
    "callback",
)
"""The columns a manifest may have; see the module documentation for their meaning."""

_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_INTEGERS = frozenset({"model", "screen_width", "screen_height", "backway", "volume"})
_NUMBERS = frozenset({"speed", "pitch"})
_PATHS = frozenset({"video", "audio"})
# Create fields passed through unchanged (after conversion) as the job's options.
_OPTIONS = ("model", "screen_width", "screen_height", "backway", "drive_mode", "volume", "callback")
_TEXT_DRIVEN = ("text", "voice", "speed", "pitch")
_AUDIO_DRIVEN = ("audio", "audio_file_id")
# Stands in for the other fields when one field is checked on its own.
_FILLER = "x"

_UNKNOWN_COLUMN = f"is not a known column; allowed: {', '.join(MANIFEST_FIELDS)}"
_OUTSIDE = "must be a relative name inside the output folder (no '..', no absolute path)"
_NOT_PORTABLE = re.compile(r'[\\:*?"<>|\x00-\x1f\x7f]')
_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
# File systems limit a name to 255 bytes; leave room for the extension and temporary suffixes.
_MAX_PART_BYTES = 200
_EXCERPT = 80


@dataclass(frozen=True)
class RowError:
    """A problem with one row (or, on the header's line, with a CSV column).

    Attributes:
        row: line number in the file (CSV: the header is line 1; JSONL: the line).
        field: the manifest column, e.g. ``speed``, or ``row`` for the row as a whole.
        value: the rejected value as written in the manifest (None when missing).
        reason: what is wrong, or what is allowed.
    """

    row: int
    field: str
    value: object
    reason: str

    def __str__(self) -> str:
        if self.field == "row":
            shown = "" if self.value is None else f" {self.value!r}:"
            return f"row {self.row}:{shown} {self.reason}"
        if self.value is None:
            return f"row {self.row}: {self.field}: {self.reason}"
        return f"row {self.row}: {self.field}={self.value!r}: {self.reason}"


@dataclass(frozen=True)
class ManifestRow:
    """A valid row: the job to submit and what identifies it.

    Attributes:
        row: line number in the file.
        output: normalised relative POSIX name without extension (``greetings/clip-01``); the
            job key.
        job: the job, its local files given as absolute paths.
        fingerprint: sha256 (hex) of the row's values in canonical form (local paths resolved),
            to notice a row changed between two runs. The content of a local file is not part
            of it.
    """

    row: int
    output: str
    job: LipSyncJob
    fingerprint: str


@dataclass(frozen=True)
class Manifest:
    """A manifest read and checked by :func:`read_manifest`.

    Attributes:
        path: the manifest, as an absolute path.
        rows: the valid rows, in file order.
        errors: every problem found, in file order; submit nothing unless it is empty.
    """

    path: Path
    rows: list[ManifestRow]
    errors: list[RowError]


class _Bad(Exception):
    """A value refused before any model sees it; the message is the reason."""


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and check a CSV or JSONL manifest (format in the module documentation).

    Row-level problems do not raise: they are collected in :attr:`Manifest.errors`, every one
    of them, and the rows without problems are in :attr:`Manifest.rows`.

    Raises:
        InvalidInputError: (field ``manifest``) the file as a whole is unusable: an extension
            other than .csv, .jsonl or .ndjson, missing or unreadable, not UTF-8, no rows, or a
            CSV header without an ``output`` column or naming a column twice.
    """
    given = Path(path)
    kind = _SUFFIXES.get(given.suffix.lower())
    if kind is None:
        raise InvalidInputError("manifest", str(path), "must be a .csv, .jsonl or .ndjson file")
    try:
        data = given.read_bytes()
    except OSError as exc:
        raise InvalidInputError(
            "manifest", str(path), f"cannot be read: {exc.strerror or exc}"
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInputError(
            "manifest", str(path), f"must be UTF-8 text (line {line} is not)"
        ) from None
    checker = _Checker(given.absolute().parent)
    if kind == "csv":
        _read_csv(text, checker, str(path))
    else:
        _read_jsonl(text, checker)
    if not checker.seen_rows:
        raise InvalidInputError("manifest", str(path), "has no rows")
    return Manifest(given.absolute(), checker.rows, checker.errors)


def output_paths(out_dir: Path, output: str) -> tuple[Path, Path]:
    """The video and cover files of ``output``: ``out_dir/<output>.mp4`` and ``.jpg``.

    Raises:
        InvalidInputError: (field ``output``) the name is not a normalised relative name, or
            a file would land outside ``out_dir`` (e.g. through a symbolic link).
    """
    try:
        _check_output(output)
    except _Bad as bad:
        raise InvalidInputError("output", output, str(bad)) from None
    base = out_dir.resolve()
    paths = (out_dir / f"{output}.mp4", out_dir / f"{output}.jpg")
    for candidate in paths:
        resolved = candidate.resolve()
        if resolved == base or not resolved.is_relative_to(base):
            raise InvalidInputError("output", output, _OUTSIDE)
    return paths


# --------------------------------------------------------------------------------------------
# Files


def _read_csv(text: str, checker: _Checker, name: str) -> None:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    header_line = 0
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if header is None:
                reason = f"must start with a header row (line {start} is not valid CSV: {exc})"
                raise InvalidInputError("manifest", name, reason) from None
            checker.seen_rows = True
            checker.fail(start, "row", None, f"is not valid CSV: {exc}")
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if header is None:
            header, header_line = [cell.strip() for cell in cells], start
            _check_header(header, checker, header_line, name)
            continue
        checker.seen_rows = True
        _csv_row(header, cells, start, checker)
    if header is None:
        raise InvalidInputError("manifest", name, "is empty: a CSV manifest needs a header row")


def _check_header(header: list[str], checker: _Checker, line: int, name: str) -> None:
    named = [column for column in header if column]
    twice = sorted({column for column in named if named.count(column) > 1})
    if twice:
        raise InvalidInputError(
            "manifest", name, f"names the column(s) {', '.join(twice)} more than once"
        )
    if "output" not in named:
        raise InvalidInputError(
            "manifest", name, f"has no 'output' column (header: {', '.join(header)})"
        )
    for column in named:
        if column not in MANIFEST_FIELDS:
            checker.fail(line, column, None, _UNKNOWN_COLUMN)


def _csv_row(header: list[str], cells: list[str], line: int, checker: _Checker) -> None:
    problems: list[RowError] = []
    extra = [cell for cell in cells[len(header) :] if cell.strip()]
    if extra:
        reason = f"has {len(cells)} cells but the header has {len(header)} columns"
        problems.append(RowError(line, "row", None, reason))
    raw: dict[str, object] = {}
    for index, (column, cell) in enumerate(zip(header, cells, strict=False)):
        if column in MANIFEST_FIELDS:
            raw[column] = cell
        elif not column and cell.strip():
            reason = f"has a value in column {index + 1}, which has no name in the header"
            problems.append(RowError(line, "row", cell, reason))
    checker.check(line, raw, problems)


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(key)
        found[key] = value
    return found


def _read_jsonl(text: str, checker: _Checker) -> None:
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line, object_pairs_hook=_unique_keys)
        except _DuplicateKey as exc:
            checker.seen_rows = True
            checker.fail(number, str(exc.args[0]), None, "is given more than once")
            continue
        except (ValueError, RecursionError) as exc:
            checker.seen_rows = True
            reason = f"is not valid JSON ({getattr(exc, 'msg', exc)})"
            checker.fail(number, "row", _excerpt(line.strip()), reason)
            continue
        if isinstance(item, dict) and all(_missing(value) for value in item.values()):
            continue
        checker.seen_rows = True
        if not isinstance(item, dict):
            reason = 'must be a JSON object, e.g. {"output": "clip-01", ...}'
            checker.fail(number, "row", _excerpt(line.strip()), reason)
            continue
        problems = [
            RowError(number, key, value, _UNKNOWN_COLUMN)
            for key, value in item.items()
            if key not in MANIFEST_FIELDS
        ]
        raw = {key: value for key, value in item.items() if key in MANIFEST_FIELDS}
        checker.check(number, raw, problems)


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


# --------------------------------------------------------------------------------------------
# Rows


class _Checker:
    """Checks rows one by one, remembering outputs to refuse duplicates."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.rows: list[ManifestRow] = []
        self.errors: list[RowError] = []
        self.seen_rows = False
        self._outputs: dict[str, int] = {}
        self._paths: dict[str, Path] = {}
        self._checked: dict[tuple[str, object], InvalidInputError | None] = {}

    def fail(self, row: int, field: str, value: object, reason: str) -> None:
        self.errors.append(RowError(row, field, value, reason))

    def check(self, row: int, raw: Mapping[str, object], problems: list[RowError]) -> None:
        """Check one row's known columns; ``problems`` are those its reader already found."""
        output = self._output(row, raw.get("output"), problems)
        values, failed = self._convert(row, raw, problems)
        job = self._job(row, raw, values, failed, problems)
        if problems:
            self.errors.extend(problems)
        elif job is not None and output is not None:
            values["output"] = output
            self.rows.append(ManifestRow(row, output, job, _fingerprint(values)))

    def _output(self, row: int, value: object, problems: list[RowError]) -> str | None:
        if _missing(value):
            problems.append(RowError(row, "output", None, "is required"))
            return None
        try:
            if not isinstance(value, str):
                raise _Bad("must be a string")
            output = unicodedata.normalize("NFC", value.strip())
            if output.lower().endswith(".mp4"):
                output = output[:-4]
            _check_output(output)
        except _Bad as bad:
            problems.append(RowError(row, "output", value, str(bad)))
            return None
        key = output.casefold()
        first = self._outputs.setdefault(key, row)
        if first != row:
            reason = f"duplicates the output of row {first}"
            problems.append(RowError(row, "output", value, reason))
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
            except (RuntimeError, OSError) as exc:
                raise _Bad(f"is not a usable path ({exc})") from None
            self._paths[value] = known
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
                self._checked[key] = _check_field(name, value)
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
            return int(text)
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


def _check_output(output: str) -> None:
    """Refuse a name that could leave the output folder or is not portable.

    Raises:
        _Bad: the reason.
    """
    if not output:
        raise _Bad("must name a file (it is empty without its .mp4)")
    if output.startswith("/") or re.match(r"[A-Za-z]:", output):
        raise _Bad(_OUTSIDE)
    if _NOT_PORTABLE.search(output):
        raise _Bad(
            "must not contain \\ (use / between folders), ':' (no drive letters), "
            '* ? " < > | or control characters'
        )
    if output.startswith("-"):
        raise _Bad("must not start with '-'")
    for part in output.split("/"):
        if part in ("", ".", ".."):
            raise _Bad(f"{_OUTSIDE}; no '.' or empty parts either")
        if part != part.strip() or part.endswith("."):
            raise _Bad("must not have a part that starts or ends with a space, or ends with '.'")
        if len(part.encode()) > _MAX_PART_BYTES:
            raise _Bad(f"must not have a part longer than {_MAX_PART_BYTES} bytes")


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
