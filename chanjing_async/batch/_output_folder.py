"""The output folder of a batch: where each row's files go, and never outside it.

A row's ``output`` (checked by ``_output_names.check_output``) becomes ``<output>.mp4`` and
``<output>.jpg`` below the folder; a name that reaches them through a symbolic link below the
folder is refused before anything is sent, as results are written without following links.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..errors import InvalidInputError
from ._output_names import OUTSIDE, check_output

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["OutputFolder", "output_paths"]

_OUTSIDE = (
    f"{OUTSIDE}; no symbolic link below the folder either (results are written without"
    " following links)"
)
_FOLDERS = 4096  # real locations of output folders remembered


def output_paths(out_dir: Path, output: str) -> tuple[Path, Path]:
    """The video and cover files of ``output``: ``out_dir/<output>.mp4`` and ``.jpg``.

    Raises:
        InvalidInputError: (field ``output``) the name is not a normalised relative name, or
            a file would land outside ``out_dir`` (e.g. through a symbolic link).
    """
    return OutputFolder(out_dir).paths(output)


class OutputFolder:
    """The output folder of a batch, checking that each row's files land inside it.

    A folder's real location is looked up once and remembered (a few thousand of them), so
    that a manifest of a million rows costs one ``lstat`` per file, not a walk of its path.
    """

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir
        self._base = str(out_dir.resolve())
        self._prefix = os.path.join(self._base, "")
        self._folders: dict[str, str] = {}

    def paths(self, output: str) -> tuple[Path, Path]:
        """As :func:`output_paths`."""
        self.check(output)
        return self.path / f"{output}.mp4", self.path / f"{output}.jpg"

    def check(self, output: str) -> None:
        """Raise as :func:`output_paths` does if ``output`` is no name for this folder."""
        problem = check_output(output)
        if problem is not None:
            raise InvalidInputError("output", output, problem)
        folder, _, name = output.rpartition("/")
        try:
            inside = all(self._inside(folder, f"{name}{suffix}") for suffix in (".mp4", ".jpg"))
        except OSError as exc:  # e.g. longer than the system allows
            reason = f"cannot be a file here ({exc.strerror or exc})"
            raise InvalidInputError("output", output, reason) from None
        if not inside:
            raise InvalidInputError("output", output, _OUTSIDE)

    def _inside(self, folder: str, name: str) -> bool:
        """Whether ``folder/name`` is reached without a symbolic link below the output folder.

        Results are written without following links (``_output_files``), so a name that goes
        through one would be paid for and then fail: it is refused here, before anything is
        sent. The output folder itself may be a link.
        """
        real = self._folders.get(folder)
        if real is None:
            real = os.path.realpath(os.path.join(self.path, folder))
            if len(self._folders) >= _FOLDERS:
                self._folders.clear()
            self._folders[folder] = real
        target = os.path.join(real, name)
        expected = os.path.join(self._base, folder, name)  # folder may be empty
        return target == expected and not os.path.islink(target)
