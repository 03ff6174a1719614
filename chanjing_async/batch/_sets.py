"""What the checking pass of a manifest remembers about its rows, in little memory.

:class:`RowSet` holds the numbers of the invalid rows, one bit each; :class:`OutputDigests`
holds a 16-byte digest of each row's output name, 24 bytes a row, and finds the rows whose
output an earlier row has (see ``_manifest``).
"""

from __future__ import annotations

import hashlib
import itertools
from array import array
from typing import TYPE_CHECKING

from ._types import RowError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ._files import Record

__all__ = ["OutputDigests", "RowSet"]

_BUCKETS = 16  # digests are sorted in this many slices, by their top 4 bits


class RowSet:
    """A set of row numbers, one bit each."""

    def __init__(self) -> None:
        self._bits = bytearray()
        self._count = 0

    def add(self, row: int) -> None:
        index, bit = divmod(row, 8)
        if index >= len(self._bits):
            self._bits.extend(bytes(max(index + 1 - len(self._bits), len(self._bits))))
        if not self._bits[index] & (1 << bit):
            self._bits[index] |= 1 << bit
            self._count += 1

    def __contains__(self, row: object) -> bool:
        if not isinstance(row, int):
            return False
        index, bit = divmod(row, 8)
        return index < len(self._bits) and bool(self._bits[index] & (1 << bit))

    def __len__(self) -> int:
        return self._count


class OutputDigests:
    """The output names of the rows so far, as 128-bit digests: 24 bytes a row.

    ``duplicates`` sorts the first halves, a sixteenth at a time (a million rows: 2.5 MB of
    Python integers at once, not 40), to find repeated names, then confirms each on the whole
    digest (two different names share one with a chance of about 2**-128 per pair).
    """

    def __init__(self) -> None:
        self._high = array("Q")
        self._low = array("Q")
        self._rows = array("Q")

    def add(self, key: str, row: int) -> None:
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        self._high.append(int.from_bytes(digest[:8], "big"))
        self._low.append(int.from_bytes(digest[8:], "big"))
        self._rows.append(row)

    def duplicates(self, reread: Callable[[], Iterable[Record]]) -> dict[int, RowError]:
        """The error of each row whose output an earlier row has, by its row number.

        The names as written are read again (``reread``: the manifest's records), for those
        rows only.
        """
        repeated: set[int] = set()
        for bucket in range(_BUCKETS):  # a sixteenth of the names sorted at a time
            part = sorted(high for high in self._high if high >> 60 == bucket)
            repeated.update(a for a, b in itertools.pairwise(part) if a == b)
        first: dict[tuple[int, int], int] = {}
        earlier: dict[int, int] = {}
        for high, low, row in zip(self._high, self._low, self._rows, strict=True):
            if high in repeated:
                earliest = first.setdefault((high, low), row)
                if earliest != row:
                    earlier[row] = earliest
        if not earlier:
            return {}
        return {
            record.row: RowError(
                record.row,
                "output",
                record.raw.get("output"),
                f"duplicates the output of row {earlier[record.row]}",
                record.line,
            )
            for record in reread()
            if record.row in earlier and record.raw is not None
        }
