"""Reading manifest files record by record, never the whole file at once (see ``_manifest``).

:func:`records` opens a manifest and yields one :class:`Record` per row: the row's number (the
first data row is 1), the line where it starts, its known columns as written and the problems
its reader already found (a record that is not valid CSV or JSON, more cells than the header
has columns, a value under an unnamed column, an unknown JSONL key). The file is decoded as it
is read, with the encoding ``_text`` decided; a delimited file's separator is decided
by its header line. A CSV header with any problem refuses the whole file: no row is read.
"""

from __future__ import annotations

import csv
import itertools
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from ._cells import printable
from ._rows import MANIFEST_FIELDS, RowError
from ._text import DELIMITERS, decoded_lines, delimiter, encoding_name
from ._types import ALLOWED_COLUMNS, closest_column, unknown_column

if TYPE_CHECKING:
    import io
    from collections.abc import Callable, Iterator
    from pathlib import Path

__all__ = ["SUFFIXES", "SUFFIX_RULE", "Record", "records"]

SUFFIXES = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
SUFFIX_RULE = "must be a .csv, .jsonl or .ndjson file (or .tsv / .txt: tab-separated text)"
_EXCERPT = 80
_TOO_LONG = "holds a number of more than 4,300 digits"
_FIELD_LIMIT = "field larger than field limit"  # the csv module's message


@dataclass
class Record:
    """One row as read: its number, its line, its known columns (None: the record is
    unreadable), the problems found so far."""

    row: int
    line: int
    raw: dict[str, object] | None
    problems: list[RowError] = field(default_factory=list)


def records(
    path: Path, kind: str, codec: str, on_bytes: Callable[[int], None] | None = None
) -> Iterator[Record]:
    """Every row of the manifest at ``path`` (``kind``: csv or jsonl), in file order, decoded
    with ``codec``.

    ``on_bytes`` is told how many bytes have been read so far, for progress displays.

    Raises:
        InvalidInputError: (field ``manifest``) unreadable, not ``codec`` text any more, a
            CSV without a usable header, or a CSV cell the reader cannot get past.
    """
    try:
        binary = path.open("rb")
    except OSError as exc:
        raise _refused(path, f"cannot be read: {exc.strerror or exc}") from None
    with binary:
        newline = "" if kind == "csv" else "\n"
        lines = decoded_lines(binary, codec, newline)
        if on_bytes is not None:
            lines = _counted(lines, binary, on_bytes)
        try:
            if kind == "csv":
                yield from _csv_records(lines, path)
            else:
                yield from _jsonl_records(lines)
        except UnicodeDecodeError:  # it decoded when its encoding was decided
            reason = f"is no longer {encoding_name(codec)} text (did it change while read?)"
            raise _refused(path, reason) from None
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


def _csv_records(lines: Iterator[str], path: Path) -> Iterator[Record]:
    blank = 0  # blank lines before the header, which the reader does not see
    first = next(lines, None)
    while first is not None and not first.strip():
        blank += 1
        first = next(lines, None)
    if first is None:
        raise _refused(path, "is empty: a CSV manifest needs a header row")
    separator = delimiter(first)
    reader = csv.reader(itertools.chain([first], lines), delimiter=separator, strict=True)
    header: list[str] | None = None
    row = 0
    while True:
        start = blank + reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if header is None:
                reason = f"must start with a header row (line {start} is not valid CSV: {exc})"
                raise _refused(path, reason) from None
            row += 1
            if _FIELD_LIMIT in str(exc):
                raise _refused(path, _too_large(row, start)) from None
            yield Record(row, start, None, [_error(row, start, f"is not valid CSV: {exc}")])
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if header is None:
            header = [cell.strip() for cell in cells]
            _check_header(header, start, path)
            continue
        row += 1
        yield _csv_record(header, cells, row, start, separator)
    if header is None:
        raise _refused(path, "is empty: a CSV manifest needs a header row")


def _too_large(row: int, line: int) -> str:
    return (
        f"row {row} (line {line}): a cell holds more than {csv.field_size_limit():,} characters"
        " (an unclosed quote?); the rows after it cannot be told apart, so none is read"
    )


def _check_header(header: list[str], line: int, path: Path) -> None:
    """Refuse the manifest for any problem of its header: no row would mean what it says."""
    named = [column for column in header if column]
    twice = sorted({column for column in named if named.count(column) > 1})
    if twice:
        reason = f"names the column(s) {', '.join(twice)} more than once (header, line {line})"
        raise _refused(path, reason)
    unknown = [column for column in named if column not in MANIFEST_FIELDS]
    if unknown:
        names = ", ".join(_suggested(column) for column in unknown)
        reason = f"has unknown column(s) in its header (line {line}): {names}; {ALLOWED_COLUMNS}"
        raise _refused(path, reason)
    if "output" not in named:
        raise _refused(path, f"has no 'output' column (header, line {line}: {', '.join(header)})")


def _suggested(column: str) -> str:
    closest = closest_column(column)
    return repr(column) if closest is None else f"{column!r} (did you mean {closest!r}?)"


def _csv_record(header: list[str], cells: list[str], row: int, line: int, separator: str) -> Record:
    if any(cell.strip() for cell in cells[len(header) :]):
        reason = (
            f"has {len(cells)} fields, the header has {len(header)} (a value holding a"
            f' {DELIMITERS[separator]} must be quoted, e.g. "1{separator}2")'
        )
        return Record(row, line, None, [_error(row, line, reason)])
    problems: list[RowError] = []
    raw: dict[str, object] = {}
    for index, (column, cell) in enumerate(zip(header, cells, strict=False)):
        if column:
            raw[column] = cell
        elif cell.strip():
            reason = f"has a value in column {index + 1}, which has no name in the header"
            problems.append(RowError(row, "row", cell, reason, line))
    return Record(row, line, raw, problems)


def _error(row: int, line: int, reason: str, value: str | None = None) -> RowError:
    return RowError(row, "row", value, reason, line)


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
    row = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line, object_pairs_hook=_unique_keys)
        except _DuplicateKey as exc:
            row += 1
            key = printable(str(exc.args[0]))
            error = RowError(row, key, None, "is given more than once", number)
            yield Record(row, number, None, [error])
            continue
        except json.JSONDecodeError as exc:
            row += 1
            reason = f"is not valid JSON ({exc.msg})"
            yield Record(row, number, None, [_error(row, number, reason, _excerpt(line))])
            continue
        except (ValueError, RecursionError) as exc:
            # ValueError: an integer of more than 4,300 digits, which int() refuses to read.
            row += 1
            what = "nests too deeply" if isinstance(exc, RecursionError) else _TOO_LONG
            reason = f"is not valid JSON here: it {what}"
            yield Record(row, number, None, [_error(row, number, reason, _excerpt(line))])
            continue
        if isinstance(item, dict) and all(_missing(value) for value in item.values()):
            continue
        row += 1
        if not isinstance(item, dict):
            reason = 'must be a JSON object, e.g. {"output": "clip-01", ...}'
            yield Record(row, number, None, [_error(row, number, reason, _excerpt(line))])
            continue
        problems = [
            RowError(row, printable(key), value, unknown_column(key), number)
            for key, value in item.items()
            if key not in MANIFEST_FIELDS
        ]
        raw = {key: value for key, value in item.items() if key in MANIFEST_FIELDS}
        yield Record(row, number, raw, problems)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _excerpt(line: str) -> str:
    text = line.strip()
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"
