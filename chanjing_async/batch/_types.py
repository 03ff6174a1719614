"""What a manifest check hands out: the columns, a valid row, a row's problem (see ``_manifest``).

Rows are numbered as data: the first row after a CSV header (in JSONL the first line holding
an object with a value) is row 1; blank lines and empty rows are no rows. A problem also
carries the line of the file where its row starts, shown when it is not the row's number
(``row 12 (line 13): speed='9': ...``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..models._fields import COLUMNS

if TYPE_CHECKING:
    from ..jobs._jobspec import LipSyncJob

__all__ = [
    "ALLOWED_COLUMNS",
    "MANIFEST_FIELDS",
    "ManifestRow",
    "RowError",
    "closest_column",
    "unknown_column",
]

MANIFEST_FIELDS: tuple[str, ...] = ("output", *COLUMNS)
"""The columns a manifest may have: ``output`` (the result's name) and the field table's."""

ALLOWED_COLUMNS = f"allowed: {', '.join(MANIFEST_FIELDS)}"


@dataclass(frozen=True)
class RowError:
    """A problem with one row.

    Attributes:
        row: the data row's number (the first row after the CSV header is row 1).
        field: the manifest column, e.g. ``speed``, or ``row`` for the row as a whole.
        value: the rejected value as written in the manifest (None when missing).
        reason: what is wrong, or what is allowed.
        line: the file's line where the row starts (None: not known).
    """

    row: int
    field: str
    value: object
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"row {self.row}"
        if self.line is not None and self.line != self.row:
            where += f" (line {self.line})"
        if self.field == "row":
            shown = "" if self.value is None else f" {self.value!r}:"
            return f"{where}:{shown} {self.reason}"
        if self.value is None:
            return f"{where}: {self.field}: {self.reason}"
        return f"{where}: {self.field}={_shown(self.value)}: {self.reason}"


def _shown(value: object) -> str:
    """``value`` as an error shows it: its repr, cut after 80 characters (a 4,000-character
    text would fill the screen), with its length then."""
    text = repr(value)
    if len(text) <= _SHOWN:
        return text
    size = f"{len(value):,} characters" if isinstance(value, str) else f"{len(text):,} in all"
    return f"{text[:_SHOWN]}... ({size})"


_SHOWN = 80


@dataclass(frozen=True)
class ManifestRow:
    """A valid row: the job to submit and what identifies it.

    Attributes:
        row: the data row's number (as :attr:`RowError.row`).
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


def closest_column(name: str) -> str | None:
    """The known column ``name`` most likely misspells (``sped``: ``speed``), if any."""
    found = difflib.get_close_matches(name.casefold(), MANIFEST_FIELDS, n=1)
    return found[0] if found else None


def unknown_column(name: str) -> str:
    """Why a column or JSONL key ``name`` is refused, with the likely intended column."""
    closest = closest_column(name)
    hint = "" if closest is None else f" (did you mean {closest!r}?)"
    return f"is not a known column{hint}; {ALLOWED_COLUMNS}"
