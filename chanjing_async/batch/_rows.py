"""Checking a job's values one row at a time: values converted, the job built, every problem named.

``RowChecker.check`` turns one manifest record (``_files``) into a :class:`ManifestRow` or the
list of its :class:`RowError` (``_types``), numbered by data row (the caller adds the line of
the file); ``RowChecker.job`` does the same for the values of ``chanjing lipsync create``'s
flags, which the command line has typed already: they go to the request models as given, the
job's shape is checked first, and a bad value is the models' error as raised (its value as the
models show it, e.g. a text's length, and every other bad value in its ``(also: ...)``). The
columns, how a cell is read and the rule that makes them one job are the field
table's (``models._fields``). It keeps no per-row state: what it remembers (resolved paths, the
verdicts on values already seen) is bounded, so a manifest of any length is checked in constant
memory.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from ..jobs._jobspec import LipSyncJob
from ..models import LipSyncRequest
from ..models._fields import AUDIO_DRIVEN, FIELD, FIELDS, OPTIONS, column_of, drive_problems
from ._cells import CellError, integer, number, printable, refuse_surrogates
from ._output_names import check_output
from ._types import MANIFEST_FIELDS, ManifestRow, RowError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["MANIFEST_FIELDS", "ManifestRow", "RowChecker", "RowError", "check_output", "printable"]

# How a column's value is read, aliases included.
_KINDS = {name: field.kind for field in FIELDS for name in (field.column, *field.aliases)}
# Stands in for the other fields when one field is checked on its own.
_FILLER = "x"
# Values remembered (resolved paths, verdicts on a value): forgotten past this many.
_MEMORY = 4096


class RowChecker:
    """Checks rows one by one; duplicate outputs are the caller's to find (``check`` returns
    each row's output key)."""

    def __init__(self, base: Path, *, fingerprints: bool = True, flags: bool = False) -> None:
        """Local paths are read relative to ``base``; without ``fingerprints`` (a pass that
        only counts) a row's fingerprint is left empty. With ``flags`` the values are a command
        line's: typed already and passed to the models as given (a blank value is a value:
        nothing is stripped; a path is neither resolved nor read here, so ``base`` is unused),
        and a job's missing or conflicting fields are worded for flags."""
        self.base = base
        self._fingerprints = fingerprints
        self._flags = flags
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

    def job(
        self, row: int, raw: Mapping[str, object], problems: list[RowError]
    ) -> LipSyncJob | None:
        """The job ``raw`` (values by column, no ``output``) describes, or None when
        ``problems`` got at least one problem (the job's shape first, then each bad value)."""
        values, failed = self._convert(row, raw, problems)
        job = self._job(row, raw, values, failed, problems)
        return None if problems else job

    def _missing(self, value: object) -> bool:
        """Whether ``value`` means "not given": None, or in a manifest a blank string."""
        if self._flags:
            return value is None
        return value is None or (isinstance(value, str) and not value.strip())

    def _output(self, row: int, value: object, problems: list[RowError]) -> str | None:
        if self._missing(value):
            problems.append(RowError(row, "output", None, "is required"))
            return None
        try:
            if not isinstance(value, str):
                raise CellError("must be a string")
            refuse_surrogates(value)
            output = unicodedata.normalize("NFC", value.strip())
            if output.lower().endswith(".mp4"):
                output = output[:-4]
            problem = check_output(output)
            if problem is not None:
                raise CellError(problem)
        except CellError as bad:
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
            if column == "output" or self._missing(value):
                continue
            try:
                values[column] = self._value(column, value)
            except CellError as bad:
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
        kind = _KINDS[column]
        if self._flags:  # typed by the command line; the models check the rest
            return Path(str(value)) if kind == "path" else value
        refuse_surrogates(value)
        if kind == "integer":
            return integer(value)
        if kind == "number":
            return number(value)
        if kind == "text":
            if isinstance(value, list) and all(isinstance(part, str) for part in value):
                return [part.strip() for part in value]
            if not isinstance(value, str):
                raise CellError("must be a string or a list of strings")
            return [value.strip()]
        if not isinstance(value, str):
            raise CellError("must be a string")
        if kind == "path":
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
                raise CellError(f"is not a usable path ({reason})") from None
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
        """Build the job; or add every problem found with the fields, each on its own (for a
        command line: the job's shape, else the models' one error naming every bad value)."""
        structure = drive_problems(values.keys() | failed, flags=self._flags)
        job: LipSyncJob | None = None
        found: list[InvalidInputError] = []
        if structure or failed:
            if not self._flags:  # a command line's shape is reported before any of its values
                found = self._diagnose(values, {field for field, _ in structure})
        else:
            try:
                job = _build(values)
            except InvalidInputError as exc:
                found = [exc] if self._flags else self._diagnose(values, set()) or [exc]
        for field, reason in structure:
            column = self._column(field, raw)
            problems.append(RowError(row, column, self._shown(column, raw), reason))
        for problem in found:
            column = self._column(problem.field, raw)
            if self._flags:
                problems.append(RowError(row, column, problem.value, problem.allowed))
                continue
            value = self._shown(column, raw) if column in raw else problem.value
            problems.append(RowError(row, column, value, _reason(problem, values)))
        return job

    def _column(self, field: str, raw: Mapping[str, object]) -> str:
        """The column of a field an error names (``tts_config.speed``: ``speed``), as given."""
        name = column_of(field) or field
        if name == "voice" and not self._given(raw, "voice") and self._given(raw, "audio_man_id"):
            name = "audio_man_id"
        elif name in ("video_file_id", "audio_file_id") and not self._given(raw, name):
            name = name.removesuffix("_file_id")
        return name if name in MANIFEST_FIELDS else "row"

    def _given(self, raw: Mapping[str, object], column: str) -> bool:
        return not self._missing(raw.get(column))

    def _shown(self, column: str, raw: Mapping[str, object]) -> object:
        """The value of ``column`` as written, or None when not given."""
        return raw.get(column) if self._given(raw, column) else None


def _remember(memory: dict[Any, Any], key: object, value: object) -> None:
    """Remember ``value``, forgetting everything once ``_MEMORY`` values are held."""
    if len(memory) >= _MEMORY:
        memory.clear()
    memory[key] = value


def _build(values: Mapping[str, Any]) -> LipSyncJob:
    options = {name: values[name] for name in OPTIONS if name in values}
    video = values.get("video")
    video_file_id = values.get("video_file_id")
    if any(name in values for name in AUDIO_DRIVEN):
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
    if FIELD[name].drive == "video":
        return _problem(LipSyncJob.audio, **{name: value}, audio_file_id=_FILLER)
    if FIELD[name].drive == "audio":
        return _problem(LipSyncJob.audio, video_file_id=_FILLER, **{name: value})
    if FIELD[name].drive == "option":
        return _problem(LipSyncRequest.audio, _FILLER, audio_file_id=_FILLER, **{name: value})
    tts: dict[str, Any] = {"text": _FILLER, "audio_man_id": _FILLER}
    tts[FIELD[name].request.removeprefix("tts_config.")] = value
    return _problem(LipSyncRequest.tts, _FILLER, **tts)


def _problem(check: Callable[..., object], *args: Any, **kwargs: Any) -> InvalidInputError | None:
    try:
        check(*args, **kwargs)
    except InvalidInputError as exc:
        return exc
    return None


def _reason(exc: InvalidInputError, values: Mapping[str, Any]) -> str:
    column = exc.field.split(".")[0]
    if _KINDS.get(column) == "path" and column in values and "existing file" in exc.allowed:
        return f"{exc.allowed} (looked for {values[column]})"
    return exc.allowed


def _fingerprint(values: Mapping[str, Any]) -> str:
    canonical = {
        name: str(value) if isinstance(value, Path) else value for name, value in values.items()
    }
    encoded = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()
