"""The text of a manifest: its encoding decided once, then its lines decoded as a stream.

:func:`text_encoding` decides how a manifest is decoded, before any row is checked, by reading
the whole file once in chunks (memory does not grow with it); both passes of a batch
(``_manifest``) then read it with that decision:

* an encoding given (``--encoding``, ``encoding=``): that one, any Python knows (``gbk``,
  ``big5``, ``utf-16-le`` ...); all of the file must decode with it;
* else a byte-order mark decides: UTF-8, UTF-16 LE or BE (Excel's "Unicode text"), UTF-32;
* else UTF-8, if all of the file decodes as UTF-8;
* else GB18030 (a superset of GBK and GB2312: Excel's "CSV" on Chinese Windows), if all of
  the file decodes as GB18030;
* else the file is refused, naming the first line that is not UTF-8 and the one that is not
  GB18030, and pointing at ``--encoding``.

A file whose text holds a NUL character is refused in every case: it is no text file, or
UTF-16 without a byte-order mark (which reads as UTF-8 with a NUL beside each letter). A
leading byte-order mark (U+FEFF) is dropped whatever the encoding.

:func:`delimiter` decides the separator of a delimited file (.csv, .tsv, .txt) from its header
line: the most frequent of comma, TAB and semicolon, a comma when tied or none is there.
Excel's "Unicode text" is UTF-16 with TABs; its "CSV" uses commas (semicolons where the
decimal separator is a comma).
"""

from __future__ import annotations

import codecs
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["DELIMITERS", "decoded_lines", "delimiter", "encoding_name", "text_encoding"]

DELIMITERS = {",": "comma", "\t": "tab", ";": "semicolon"}
"""The separators a delimited manifest may use, by their names (ties go to the first)."""

_CHUNK = 1 << 16
_BOMS = (  # UTF-32 first: its little-endian mark starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_DETECTED = ("utf-8", "gb18030")
_KNOWN = "e.g. utf-8, gb18030, gbk, big5, utf-16, utf-16-le, shift_jis"
_NUL = (
    "is not a text file: line {line} holds a NUL character (UTF-16 without a byte-order mark? "
    "then give --encoding utf-16-le)"
)


@dataclass(frozen=True)
class _NotText:
    """Where a file stops being text in an encoding: its line, and whether a NUL did it."""

    line: int
    nul: bool


def encoding_name(codec: str) -> str:
    """How an encoding is shown to people: ``GB18030``, ``UTF-16-LE``."""
    return codec.upper()


def codec_of(name: str) -> str:
    """The codec a given encoding name stands for (``UTF8``, ``cp936``: ``utf-8``, ``gbk``).

    Raises:
        InvalidInputError: (field ``encoding``) Python knows no text encoding of that name.
    """
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        info = None
    if info is None or not getattr(info, "_is_text_encoding", True):  # e.g. hex, rot13
        raise InvalidInputError("encoding", name, f"is no text encoding Python knows; {_KNOWN}")
    return info.name


def text_encoding(path: Path, given: str | None = None) -> str:
    """The codec to decode the manifest at ``path`` with (rules in the module documentation).

    Raises:
        InvalidInputError: (field ``encoding``) ``given`` names no text encoding; (field
            ``manifest``) the file cannot be read, holds a NUL, or is text in none of the
            encodings tried.
    """
    if given is not None:
        codec = codec_of(given)
        found = _scan(path, codec)
        if found is not None and not found.nul:
            reason = (
                f"is not {given} text (--encoding): line {found.line} cannot be decoded as"
                " it; without --encoding, UTF-8, UTF-16 with a byte-order mark and GB18030"
                " are recognised"
            )
            raise _refused(path, reason)
        _refuse_nul(path, found)
        return codec
    marked = _bom(path)
    if marked is not None:
        found = _scan(path, marked)
        if found is not None and not found.nul:
            reason = f"starts with a {encoding_name(marked)} byte-order mark but line {found.line}"
            raise _refused(path, f"{reason} is not {encoding_name(marked)} text")
        _refuse_nul(path, found)
        return marked
    lines: list[int] = []
    for codec in _DETECTED:
        found = _scan(path, codec)
        _refuse_nul(path, found)
        if found is None:
            return codec
        lines.append(found.line)
    reason = (
        f"is neither UTF-8 nor GB18030 text (line {lines[0]} is not UTF-8, line {lines[1]}"
        f" not GB18030); give its encoding with --encoding ({_KNOWN})"
    )
    raise _refused(path, reason)


def decoded_lines(binary: io.BufferedReader, codec: str, newline: str) -> Iterator[str]:
    """The lines of ``binary`` decoded with ``codec``, a leading byte-order mark dropped.

    ``binary`` is left open: it is closed by whoever opened it.
    """
    text = io.TextIOWrapper(binary, encoding=codec, newline=newline)
    try:
        first = next(text, None)
        if first is not None:
            yield first.removeprefix("\ufeff")
            yield from text
    finally:
        if not binary.closed:  # else the opener has closed it already
            text.detach()  # ``binary`` is its opener's to close


def delimiter(header: str) -> str:
    """The separator of a delimited manifest whose first line is ``header``."""
    return max(DELIMITERS, key=header.count)


def _bom(path: Path) -> str | None:
    try:
        with path.open("rb") as binary:
            head = binary.read(4)
    except OSError as exc:
        raise _refused(path, f"cannot be read: {exc.strerror or exc}") from None
    return next((codec for bom, codec in _BOMS if head.startswith(bom)), None)


def _scan(path: Path, codec: str) -> _NotText | None:
    """Where ``path`` stops being text in ``codec``; None if all of it is."""
    decoder = codecs.getincrementaldecoder(codec)("strict")
    newlines = 0
    try:
        with path.open("rb") as binary:
            while True:
                chunk = binary.read(_CHUNK)
                try:
                    text = decoder.decode(chunk, final=not chunk)
                except UnicodeDecodeError as exc:
                    text = exc.object[: exc.start].decode(codec, "replace")
                    line = newlines + text.count("\n") + 1
                    return _nul(text, newlines) or _NotText(line, nul=False)
                except UnicodeError:  # no position: UTF-16 without its mark, idna, undefined
                    return _NotText(newlines + 1, nul=False)
                found = _nul(text, newlines)
                if found is not None:
                    return found
                newlines += text.count("\n")
                if not chunk:
                    return None
    except OSError as exc:
        raise _refused(path, f"cannot be read: {exc.strerror or exc}") from None


def _nul(text: str, newlines: int) -> _NotText | None:
    """The line of the first NUL in ``text``, which starts after ``newlines`` lines."""
    nul = text.find("\x00")
    return None if nul < 0 else _NotText(newlines + text.count("\n", 0, nul) + 1, nul=True)


def _refuse_nul(path: Path, found: _NotText | None) -> None:
    if found is not None and found.nul:
        raise _refused(path, _NUL.format(line=found.line))


def _refused(path: Path, reason: str) -> InvalidInputError:
    return InvalidInputError("manifest", str(path), reason)
