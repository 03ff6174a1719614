"""The first pass of ``chanjing batch run``: every row of a manifest checked, problems shown."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import anyio
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from ..batch._manifest import ManifestCheck, check_manifest
from ..batch._text import encoding_name
from ..errors import InvalidInputError
from ._common import EXIT_USAGE, err_console, fail

if TYPE_CHECKING:
    from pathlib import Path

    from ..batch._manifest import RowError


async def checked_manifest(
    manifest_path: Path, out: Path, *, skip_invalid: bool, encoding: str | None = None
) -> ManifestCheck:
    """Check every row of the manifest (a progress bar for long files, each problem printed
    as it is found); end the command with exit 2 when a row is invalid (unless
    ``skip_invalid``), none is valid, or the manifest as a whole is refused (its header, its
    encoding). ``encoding``: the manifest's, None to detect it (a note says which was used
    when it is not UTF-8)."""
    checking = Progress(
        TextColumn("[bold]checking rows"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,  # off a terminal it would print an empty line
    )
    with checking as progress:
        bar = progress.add_task("", total=None)

        def read(done: int, size: int) -> None:
            progress.update(bar, completed=done, total=size)

        def problem(error: RowError) -> None:
            progress.console.print(f"{manifest_path}: {error}", markup=False)

        checking_rows = functools.partial(
            check_manifest,
            manifest_path,
            out_dir=out,
            on_error=problem,
            on_progress=read,
            encoding=encoding,
        )
        try:
            check = await anyio.to_thread.run_sync(checking_rows)
        except InvalidInputError as exc:
            if exc.field == "encoding":
                fail(f"--encoding {exc.value!r}: {exc.allowed}", EXIT_USAGE)
            fail(f"{exc}; nothing was submitted", EXIT_USAGE)
    if encoding is None and check.encoding != "utf-8":
        err_console.print(
            f"note: {manifest_path} was read as {encoding_name(check.encoding)}"
            " (give --encoding to read it otherwise)",
            markup=False,
        )
    if check.errors and not skip_invalid:
        fail(
            f"{check.invalid or 1} invalid row(s); nothing was submitted "
            "(fix them, or pass --skip-invalid)",
            EXIT_USAGE,
        )
    if not check.rows:
        fail("no valid rows to run", EXIT_USAGE)
    return check
