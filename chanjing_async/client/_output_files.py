"""Writing a downloaded file: relative to its folder, through a ``.part`` file, links not followed.

The bytes go to a hidden ``.<name>.<8 hex>.part`` file created beside the final name with
``O_CREAT | O_EXCL | O_NOFOLLOW`` (never an existing file, nor a link planted there), which is
renamed to the final name once whole and synced: ``dest`` is either complete or untouched.
Creation, rename and removal are all relative to one open descriptor of the folder
(``dir_fd``, ``src_dir_fd``/``dst_dir_fd``), so the folder cannot change under the write; a
rename replaces a symbolic link at the final name itself, never the file it points to. Only
a regular file (or a link) at the final name is replaced: a device, a pipe, a socket or a
folder there (``/dev/null``, which a rename as root would replace with a plain file) is refused
before anything is downloaded, and again just before the rename.

With ``within`` (a batch's output folder), ``dest``'s folder is reached from ``within`` one
component at a time, at write time, each opened with ``O_DIRECTORY | O_NOFOLLOW`` (a missing
one is created first): a subfolder swapped for a symbolic link after the run's checks is
refused, not followed, and nothing lands outside ``within``. ``within`` itself may be a link
(the user's choice). Without it (``LipSync.download`` to a path the user chose), the folder is
opened as it is named.

Where the system has no ``dir_fd`` (Windows), the same steps run on full paths: the folder
components under ``within`` are checked with ``lstat`` just before the ``.part`` is created,
which a swap at that very moment can still defeat.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from pathlib import Path

_AT = os.open in os.supports_dir_fd and hasattr(os, "O_NOFOLLOW") and hasattr(os, "O_DIRECTORY")
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_FOLDER = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC
_PART = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC | getattr(os, "O_BINARY", 0)


class PartFile:
    """A ``.part`` file being written for ``dest`` (see the module docstring)."""

    def __init__(self, dest: Path, folder: int | None, prefix: str, name: str) -> None:
        self.dest = dest
        self._folder = folder  # a descriptor of dest's folder; None without dir_fd
        self._prefix = prefix  # "" with a descriptor, else the folder's path and a separator
        self._name = name
        self._part = f".{name}.{secrets.token_hex(4)}.part"
        self._fd: int | None = None
        self._committed = False

    @classmethod
    async def create(cls, dest: Path, within: Path | None) -> PartFile:
        """Open ``dest``'s folder and create the ``.part`` file in it.

        Raises:
            OSError: the folder cannot be opened or created, a folder under ``within`` is a
                symbolic link or no folder (``errno.ELOOP``), or ``dest`` is not inside
                ``within``.
        """
        return await anyio.to_thread.run_sync(cls._create, dest, within)

    @classmethod
    def _create(cls, dest: Path, within: Path | None) -> PartFile:
        folder = _open_folder(dest, within) if _AT else None
        prefix = "" if folder is not None else os.path.join(dest.parent, "")
        if folder is None and within is not None:
            _check_folders(dest, within)
        part = cls(dest, folder, prefix, dest.name)
        try:
            part._refuse_special()
            part._fd = os.open(prefix + part._part, _PART, 0o666, dir_fd=folder)
        except OSError:
            part._close_folder()
            raise
        return part

    async def write(self, data: bytearray) -> None:
        """Append ``data`` (all of it) in a worker thread."""
        await anyio.to_thread.run_sync(self._write, data)

    def _write(self, data: bytearray) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    async def commit(self) -> Path:
        """Sync the ``.part`` file and rename it to the final name."""
        await anyio.to_thread.run_sync(self._commit)
        return self.dest

    def _commit(self) -> None:
        assert self._fd is not None
        os.fsync(self._fd)
        self._refuse_special()
        os.replace(
            self._prefix + self._part,
            self._prefix + self._name,
            src_dir_fd=self._folder,
            dst_dir_fd=self._folder,
        )
        self._committed = True

    def _refuse_special(self) -> None:
        """Raise ``OSError`` (EEXIST) if something other than a file or a link has the final
        name: the rename would replace it."""
        try:
            found = os.stat(self._prefix + self._name, dir_fd=self._folder, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not (stat.S_ISREG(found.st_mode) or stat.S_ISLNK(found.st_mode)):
            raise OSError(errno.EEXIST, "something other than a file has this name", str(self.dest))

    async def close(self) -> None:
        """Close the file and the folder; remove the ``.part`` file unless it was committed."""
        await anyio.to_thread.run_sync(self._close)

    def _close(self) -> None:
        try:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if not self._committed:
                try:
                    os.unlink(self._prefix + self._part, dir_fd=self._folder)
                except FileNotFoundError:
                    pass
        finally:
            self._close_folder()

    def _close_folder(self) -> None:
        if self._folder is not None:
            os.close(self._folder)
            self._folder = None


def _components(dest: Path, within: Path) -> tuple[str, ...]:
    """The folders between ``within`` and ``dest``'s name, refused if ``dest`` is outside."""
    try:
        parts = dest.relative_to(within).parts[:-1]
    except ValueError:
        parts = ("..",)
    if any(part in ("", ".", "..") for part in parts) or dest.name in ("", ".", ".."):
        raise OSError(errno.EINVAL, f"not inside the output folder {within}")
    return parts


def _link_refused(within: Path, part: str) -> OSError:
    reason = f"{part!r} is a symbolic link or no folder (not followed inside {within})"
    return OSError(errno.ELOOP, reason)


def _open_folder(dest: Path, within: Path | None) -> int:
    """A descriptor of ``dest``'s folder, reached from ``within`` without following links."""
    if within is None:
        return os.open(dest.parent, _FOLDER)
    parts = _components(dest, within)
    folder = os.open(within, _FOLDER)
    try:
        for part in parts:
            try:
                os.mkdir(part, dir_fd=folder)
            except FileExistsError:
                pass
            try:
                inner = os.open(part, _FOLDER | _NOFOLLOW, dir_fd=folder)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                raise _link_refused(within, part) from None
            os.close(folder)
            folder = inner
    except BaseException:
        os.close(folder)
        raise
    return folder


def _check_folders(dest: Path, within: Path) -> None:
    """Without ``dir_fd``: the folders under ``within`` exist and none is a link (racy)."""
    current = within
    for part in _components(dest, within):
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            raise _link_refused(within, part)
        current.mkdir(exist_ok=True)
