"""Reading manifest files record by record, never the whole file at once (see ``_manifest``).

:func:`records` opens a CSV or JSONL manifest and yields one :class:`Record` per row: the row's
known columns as written and the problems its reader already found (a record that is not
valid CSV or JSON, a value under an unnamed column, an unknown key). The file is decoded as it
is read; a byte sequence that is not UTF-8 refuses the whole file, naming its line.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._manifest_rows import MANIFEST_FIELDS, RowError, printable
from .errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

__all__ = ["SUFFIXES", "Record", "records"]

SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
UNKNOWN_COLUMN = f"is not a known column; allowed: {', '.join(MANIFEST_FIELDS)}"
_EXCERPT = 80
_TOO_LONG = "holds a number of more than 4,300 digits"


@dataclass
class Record:
    """One row as read: its line, its known columns (None: the record is unreadable), problems.

    ``row`` is False for the header's own problems (unknown columns), which are no job.
    """

    line: int
    raw: dict[str, object] | None
    problems: list[RowError] = field(default_factory=list)
    row: bool = True


def records(
    path: Path, kind: str, on_bytes: Callable[[int], None] | None = None
) -> Iterator[Record]:
    """Every record of the manifest at ``path`` (``kind``: csv or jsonl), in file order.

    ``on_bytes`` is told how many bytes have been read so far, for progress displays.

    Raises:
        InvalidInputError: (field ``manifest``) unreadable, not UTF-8, or a CSV without a
            usable header.
    """
    try:
        binary = path.open("rb")
    except OSError as exc:
        raise _refused(path, f"cannot be read: {exc.strerror or exc}") from None
    with binary:
        newline = "" if kind == "csv" else "\n"
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline=newline)
        lines: Iterator[str] = iter(text)
        if on_bytes is not None:
            lines = _counted(lines, binary, on_bytes)
        try:
            if kind == "csv":
                yield from _csv_records(lines, path)
            else:
                yield from _jsonl_records(lines)
        except UnicodeDecodeError:
            raise _refused(path, f"must be UTF-8 text (line {_bad_line(path)} is not)") from None
        except OSError as exc:
            raise _refused(path, f"cannot be read: {exc.strerror or exc}") from None


def _counted(
    lines: Iterator[str], binary: io.BufferedReader, on_bytes: Callable[[int], None]
) -> Iterator[str]:
    for number, line in enumerate(lines):
        if number % 1024 == 0:
            on_bytes(binary.tell())
        yield line


def _refused(path: Path, reason: str) -> InvalidInputError:
    return InvalidInputError("manifest", str(path), reason)


def _bad_line(path: Path) -> int:
    """The first line of ``path`` that is not UTF-8 (a character never spans a newline)."""
    with path.open("rb") as binary:
        for number, line in enumerate(binary, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 1  # pragma: no cover - only called after a decoding error


def _csv_records(lines: Iterator[str], path: Path) -> Iterator[Record]:
    reader = csv.reader(lines, strict=True)
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if header is None:
                reason = f"must start with a header row (line {start} is not valid CSV: {exc})"
                raise _refused(path, reason) from None
            yield Record(start, None, [RowError(start, "row", None, f"is not valid CSV: {exc}")])
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if header is None:
            header = [cell.strip() for cell in cells]
            yield Record(start, None, _check_header(header, start, path), row=False)
            continue
        yield _csv_record(header, cells, start)
    if header is None:
        raise _refused(path, "is empty: a CSV manifest needs a header row")


def _check_header(header: list[str], line: int, path: Path) -> list[RowError]:
    named = [column for column in header if column]
    twice = sorted({column for column in named if named.count(column) > 1})
    if twice:
        raise _refused(path, f"names the column(s) {', '.join(twice)} more than once")
    if "output" not in named:
        raise _refused(path, f"has no 'output' column (header: {', '.join(header)})")
    return [
        RowError(line, column, None, UNKNOWN_COLUMN)
        for column in named
        if column not in MANIFEST_FIELDS
    ]


def _csv_record(header: list[str], cells: list[str], line: int) -> Record:
    problems: list[RowError] = []
    if any(cell.strip() for cell in cells[len(header) :]):
        reason = f"has {len(cells)} cells but the header has {len(header)} columns"
        problems.append(RowError(line, "row", None, reason))
    raw: dict[str, object] = {}
    for index, (column, cell) in enumerate(zip(header, cells, strict=False)):
        if column in MANIFEST_FIELDS:
            raw[column] = cell
        elif not column and cell.strip():
            reason = f"has a value in column {index + 1}, which has no name in the header"
            problems.append(RowError(line, "row", cell, reason))
    return Record(line, raw, problems)


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(key)
        found[key] = value
    return found


def _jsonl_records(lines: Iterator[str]) -> Iterator[Record]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line, object_pairs_hook=_unique_keys)
        except _DuplicateKey as exc:
            key = printable(str(exc.args[0]))
            yield Record(number, None, [RowError(number, key, None, "is given more than once")])
            continue
        except json.JSONDecodeError as exc:
            reason = f"is not valid JSON ({exc.msg})"
            yield Record(number, None, [RowError(number, "row", _excerpt(line.strip()), reason)])
            continue
        except (ValueError, RecursionError) as exc:
            # ValueError: an integer of more than 4,300 digits, which int() refuses to read.
            what = "nests too deeply" if isinstance(exc, RecursionError) else _TOO_LONG
            reason = f"is not valid JSON here: it {what}"
            yield Record(number, None, [RowError(number, "row", _excerpt(line.strip()), reason)])
            continue
        if isinstance(item, dict) and all(_missing(value) for value in item.values()):
            continue
        if not isinstance(item, dict):
            reason = 'must be a JSON object, e.g. {"output": "clip-01", ...}'
            yield Record(number, None, [RowError(number, "row", _excerpt(line.strip()), reason)])
            continue
        problems = [
            RowError(number, printable(key), value, UNKNOWN_COLUMN)
            for key, value in item.items()
            if key not in MANIFEST_FIELDS
        ]
        raw = {key: value for key, value in item.items() if key in MANIFEST_FIELDS}
        yield Record(number, raw, problems)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"
