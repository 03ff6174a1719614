"""The journal and the output folder of ``chanjing batch run``, checked before anything is sent.

A folder given as the journal, a file given as the output folder, or a place the user cannot
write are the user's mistakes: each is one ``InvalidInputError`` naming the option, the path
and what is needed (exit 2), found before the first request rather than as a traceback
halfway through a run. Nothing is created here: a missing folder is made by the run itself.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NoReturn

from ..errors import InvalidInputError

if TYPE_CHECKING:
    from pathlib import Path


def check_run_paths(journal: Path, out: Path) -> None:
    """Refuse a journal or output folder that the run could not use.

    Raises:
        InvalidInputError: ``--journal`` is a folder, or a file this user cannot read and
            write, or its folder cannot be made; ``--out`` is a file, a folder this user
            cannot write, or a folder that cannot be made (a file on its way, no write
            permission).
    """
    if journal.is_dir():
        _refuse("--journal", journal, "is a folder: give a file name (the journal is one file)")
    if journal.exists():
        if not os.access(journal, os.R_OK | os.W_OK):
            _refuse("--journal", journal, "cannot be read and written by this user")
    else:
        _check_creatable("--journal", journal, journal.parent)
    if out.exists() and not out.is_dir():
        _refuse("--out", out, "is a file: give a folder for the results")
    _check_creatable("--out", out, out)


def _check_creatable(option: str, path: Path, folder: Path) -> None:
    """``folder`` (``path`` or its folder) is a writable folder, or its nearest existing
    parent is one."""
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        _refuse(option, path, f"cannot be made: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        _refuse(option, path, f"cannot be written: no write permission in {existing}")


def _refuse(option: str, path: Path, problem: str) -> NoReturn:
    raise InvalidInputError(option, str(path), problem)
