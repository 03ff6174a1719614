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
- **invisible format characters** (Unicode category Cf: the bidirectional embeddings,
  overrides and isolates U+202A-U+202E and U+2066-U+2069, the marks U+200E, U+200F, U+061C,
  zero-width characters, U+FEFF ...), C1 controls and the line and paragraph separators: a
  name holding them is shown as another name (``clip\\u202egpj.mp4`` reads ``clip4pm.jpg``).
  The zero-width (non-)joiners some scripts use are refused too; a name needs none of them.

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
    hidden = None if output.isascii() else _hidden(output)
    if hidden is not None:
        name = unicodedata.name(hidden, "a control character")
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
    hidden = _hidden_characters()
    if hidden.isdisjoint(text):
        return None
    return next(char for char in text if char in hidden)


@functools.cache
def _hidden_characters() -> frozenset[str]:
    """Every such character beyond ASCII (about 200 of them).

    Taken from this Python's Unicode tables on the first name that is not ASCII (a quarter of
    a second, once); a name is then checked in a fraction of a microsecond.
    """
    chars = (chr(code) for code in range(0x80, sys.maxunicode + 1))
    return frozenset(char for char in chars if unicodedata.category(char) in _HIDDEN_CATEGORIES)
