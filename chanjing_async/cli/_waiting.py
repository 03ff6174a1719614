"""Waiting for a task from the command line: the wait, its spinner and its ``--timeout``."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ..errors import ChanjingError
from ._common import EXIT_FAILED, EXIT_USAGE, Settings, err_console, fail
from ._files import paced

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..client._client import AsyncChanjingClient
    from ..models import LipSyncTask

__all__ = ["DEFAULT_TIMEOUT", "POLL_INTERVAL", "TimeoutOption", "check_timeout", "wait_for"]

# Seconds of API time; with --time-scale K the CLI waits K times less between reads.
POLL_INTERVAL = 5.0
"""Between two reads of a task being waited for (tasks take minutes on the live API)."""
DEFAULT_TIMEOUT = 3600.0
"""How long a wait lasts when --timeout is not given."""

TimeoutOption = Annotated[
    float | None,
    typer.Option(
        help="Seconds to wait (default 3600, divided by --time-scale).", show_default=False
    ),
]
"""The ``--timeout`` of the commands that wait."""


def check_timeout(timeout: float | None) -> None:
    """Exit 2 unless ``--timeout`` is absent or a number of seconds > 0."""
    if timeout is not None and not timeout > 0:
        fail(f"--timeout={timeout!r}: must be a number of seconds > 0", EXIT_USAGE)


@contextlib.contextmanager
def _spinner(description: str) -> Iterator[None]:
    """A spinner with the elapsed time on a terminal's stderr; nothing when it is not one."""
    if not err_console.is_terminal:
        yield
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        progress.add_task(description, total=None)
        yield


async def wait_for(
    client: AsyncChanjingClient, task_id: str, settings: Settings, timeout: float | None
) -> LipSyncTask:
    """Wait for a task to end through the SDK's polling, with a spinner on stderr.

    ``timeout`` is in wall seconds; without it the wait lasts DEFAULT_TIMEOUT of API time.
    A wait that runs out ends the command with exit 1 (the task may still finish).
    """
    limit = timeout if timeout is not None else DEFAULT_TIMEOUT / settings.time_scale
    try:
        with _spinner(f"waiting for task {task_id}"):
            return await client.lip_sync.wait(
                task_id, timeout=limit, poll_interval=paced(settings, POLL_INTERVAL)
            )
    except ChanjingError:
        raise  # RequestTimeoutError is a TimeoutError too: one HTTP call, not the wait
    except TimeoutError:
        fail(
            f"task {task_id}: not finished after {limit:g} s; it may still finish "
            f"(chanjing lipsync wait {task_id})",
            EXIT_FAILED,
        )
