"""Output names: relative, portable, and looking like what they are.

An output name (a manifest's ``output``, the journal key of its row) becomes files inside the
output folder: ``<output>.mp4`` and ``<output>.jpg``. :func:`check_output` refuses a name that
could leave that folder, that a common file system cannot hold, or that misleads a reader:

- ``..``, ``.``, empty parts, absolute paths and drive letters (it would leave the folder);
- ``\\ : * ? " < > |``, control characters, a part starting or ending with a space or ending
  with ``.``, a part longer than 200 bytes (Windows or a file system cannot hold it);
- a **Windows device name** in any part, in any case, with or without an extension (``CON``,
  ``PRN``, ``AUX``, ``NUL``, ``COM0``-``COM9``, ``LPT0``-``LPT9``, their superscript-digit
  forms, ``CONIN$``, ``CONOUT$``: ``aux/x``, ``nul.mp4``, ``Com1.txt``): on Windows such a
  "file" is the device, so a result would vanish into it or a folder could not be made;
- **invisible characters**: format characters (Unicode category Cf: the bidirectional
  embeddings, overrides and isolates U+202A-U+202E and U+2066-U+2069, the marks U+200E, U+200F,
  U+061C, zero-width characters, U+FEFF ...), C1 controls, the line and paragraph separators,
  every ``Default_Ignorable_Code_Point`` (the combining grapheme joiner U+034F, the Hangul
  fillers, the variation selectors, the tags ...), and the blank symbols U+2800 and U+1D159
  (shown as a space but no whitespace, so the rule on spaces at the ends of a part misses
  them): a name holding them is shown as another name (``clip\\u202egpj.mp4`` reads
  ``clip4pm.jpg``, ``a\\u034fb`` reads ``ab``). The zero-width (non-)joiners some scripts use
  are refused too; a name needs none of them. Spaces (category Zs) are visible and stay
  allowed inside a part;
- **slash look-alikes** (``∕ ⁄ ／ ＼ ⧸ ⧹ ∖ ﹨``): ``a∕..∕b`` reads as a path leaving the folder
  while it is one file name.

This is the one rule for output names; the manifest, the batch and the CLI all use it.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

__all__ = ["OUTSIDE", "check_output"]

OUTSIDE = "must be a relative name inside the output folder (no '..', no absolute path)"
# File systems limit a name to 255 bytes; this leaves room for the extension and suffixes.
_MAX_PART_BYTES = 200

_NOT_PORTABLE = re.compile(r'[\\:*?"<>|\x00-\x1f\x7f]')
# What Windows reads as a device: the part before its first dot, trailing spaces ignored.
_DEVICE = re.compile(r"(?:CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|COM[0-9¹²³]|LPT[0-9¹²³]) *", re.I)
_DEVICE_STARTS = frozenset({"CON", "PRN", "AUX", "NUL", "COM", "LPT"})
_DEVICES = "CON, PRN, AUX, NUL, COM0-COM9, LPT0-LPT9, CONIN$ and CONOUT$"
# Invisible or line-breaking: format characters, C1 controls, line and paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cf", "Cc", "Zl", "Zp"})
# Default_Ignorable_Code_Point, from Unicode's DerivedCoreProperties.txt (version 17.0; the same
# ranges since 14.0 added U+180F): what a renderer shows as nothing when it has no glyph for it.
# Python's unicodedata has no such property, hence the table (most of it is category Cf too).
_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x061C, 0x061C),  # Arabic letter mark
    (0x115F, 0x1160),  # Hangul choseong and jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian free variation selectors and vowel separator
    (0x200B, 0x200F),  # zero-width space and (non-)joiners, direction marks
    (0x202A, 0x202E),  # bidirectional embeddings and overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, isolates, deprecated formats
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors 1-16
    (0xFEFF, 0xFEFF),  # zero-width no-break space (byte order mark)
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF0, 0xFFF8),  # reserved
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical symbol beams, ties, slurs and phrases
    (0xE0000, 0xE0FFF),  # tags, variation selectors 17-256, reserved
)
# Blank symbols: no whitespace (str.strip keeps them) and not ignorable, but shown as nothing.
_BLANK = "\u2800\U0001d159"  # Braille pattern blank, musical symbol null notehead


# Characters drawn like / or \: fraction slash, division slash, big solidus and reverse
# solidus, fullwidth solidus and reverse solidus, set minus, small reverse solidus.
_SLASH_LIKE = re.compile("[\u2044\u2215\u29f8\u29f9\uff0f\uff3c\u2216\ufe68]")


def check_output(output: str) -> str | None:
    """Why ``output`` is no valid output name (a sentence), or None when it is one."""
    if not output:
        return "must name a file (it is empty without its .mp4)"
    if output.startswith("/") or re.match(r"[A-Za-z]:", output):
        return OUTSIDE
    if _NOT_PORTABLE.search(output):
        return (
            "must not contain \\ (use / between folders), ':' (no drive letters), "
            '* ? " < > | or control characters'
        )
    slash = None if output.isascii() else _SLASH_LIKE.search(output)
    if slash is not None:
        char = slash.group()
        return (
            f"must not contain a character drawn like / or \\ (U+{ord(char):04X} "
            f"{unicodedata.name(char)}): use / between folders"
        )
    hidden = None if output.isascii() else _hidden(output)
    if hidden is not None:
        control = unicodedata.category(hidden) == "Cc"
        unnamed = "a control character" if control else "a reserved character"
        name = unicodedata.name(hidden, unnamed)
        return (
            f"must not contain invisible or direction-changing characters (U+{ord(hidden):04X} "
            f"{name}): they make a name look like another"
        )
    if output.startswith("-"):
        return "must not start with '-'"
    for part in output.split("/"):
        problem = _part_problem(part)
        if problem is not None:
            return problem
    return None


def _part_problem(part: str) -> str | None:
    if part in ("", ".", ".."):
        return f"{OUTSIDE}; no '.' or empty parts either"
    if part != part.strip() or part.endswith("."):
        return "must not have a part that starts or ends with a space, or ends with '.'"
    if len(part.encode()) > _MAX_PART_BYTES:
        return f"must not have a part longer than {_MAX_PART_BYTES} bytes"
    if part[:3].upper() in _DEVICE_STARTS and _DEVICE.fullmatch(part.split(".", 1)[0]):
        return (
            f"must not use a Windows device name ({part!r}): {_DEVICES} are reserved in any "
            "part, in any case, with or without an extension"
        )
    return None


def _hidden(text: str) -> str | None:
    """The first character of ``text`` that is invisible or breaks the line, if any."""
    found = _hidden_pattern().search(text)
    return None if found is None else found.group()


@functools.cache
def _hidden_pattern() -> re.Pattern[str]:
    """A character class of every such character beyond ASCII (about 4,200, in 28 ranges).

    Built from this Python's Unicode tables and the tables above on the first name that is not
    ASCII (a quarter of a second, once); a name is then checked in about a microsecond.
    """
    codes = {
        code
        for code in range(0x80, sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in _HIDDEN_CATEGORIES
    }
    codes.update(code for first, last in _DEFAULT_IGNORABLE for code in range(first, last + 1))
    codes.update(map(ord, _BLANK))
    ranges: list[list[int]] = []
    for code in sorted(codes):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return re.compile("[" + "".join(f"{chr(first)}-{chr(last)}" for first, last in ranges) + "]")
