"""Reading one manifest cell: whole numbers, numbers, and text no request could carry.

A cell is a CSV string or a JSON value. Each reader returns the value as the request takes it,
or raises :class:`CellError` whose message is the reason, for the row checker to report on the
cell's column.
"""

from __future__ import annotations

import math
import re

__all__ = ["CellError", "integer", "number", "printable", "refuse_surrogates"]

_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_REASON = (
    "must be valid Unicode text: it contains a lone surrogate ({found}), which no UTF-8 "
    "file or request can carry"
)


class CellError(Exception):
    """A value refused before any model sees it; the message is the reason."""


def printable(text: str) -> str:
    """``text`` with lone surrogates written as escapes (``\\udc00``): safe to encode."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def refuse_surrogates(value: object) -> None:
    """Refuse a string (or list of strings) holding a lone surrogate (JSON's ``"\\udc00"``):
    it can be neither encoded for the request nor written down."""
    for part in value if isinstance(value, list) else [value]:
        found = _SURROGATE.search(part) if isinstance(part, str) else None
        if found is not None:
            raise CellError(_SURROGATE_REASON.format(found=printable(found.group())))


def integer(value: object) -> int:
    """A whole number: ``720``, ``"720"`` or ``720.0``; never a boolean."""
    if isinstance(value, bool):
        raise CellError("must be a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            try:
                return int(text)
            except ValueError:  # more digits than int() converts (4,300): no request field
                raise CellError("must be a whole number of at most 4,300 digits") from None
        if _NUMBER.fullmatch(text):
            value = float(text)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise CellError("must be a whole number")


def number(value: object) -> float:
    """A finite number, given as a number or as its digits."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        found = float(value)
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        found = float(value.strip())
    else:
        raise CellError("must be a number")
    if not math.isfinite(found):
        raise CellError("must be a number")
    return found
