"""``chanjing lipsync download``, and the ``--download`` of ``lipsync create`` and ``wait``.

Each saves a succeeded task's video at the path given and its preview next to it as ``.jpg``.
The path is checked, and its missing folders made, before anything is sent (exit 2 when that
cannot be done), as ``batch run --out`` makes its folder. ``download`` reads the task once:
a task that failed is exit 1 with its reason; one that has not ended is exit 1 naming the
command that waits for it and then saves it.
"""

from __future__ import annotations

import shlex
from pathlib import Path  # noqa: TC003 - typer reads the annotations at run time
from typing import TYPE_CHECKING, Annotated

import typer

from ..client._results import download_results
from ._common import EXIT_FAILED, EXIT_USAGE, fail, make_client, run, settings_of
from ._task_view import fail_if_failed, note, status_name

if TYPE_CHECKING:
    from ..client._client import AsyncChanjingClient
    from ..models import LipSyncTask


def prepare_download(dest: Path | None, name: str = "--download") -> None:
    """Refuse a target that cannot be written and make its missing folders; exit 2 if not."""
    if dest is None:
        return
    problem = None
    if dest.suffix.lower() == ".jpg":
        problem = "must not end in .jpg: the preview image is saved next to the video as .jpg"
    elif dest.is_dir():
        problem = "is a folder; give a file name such as result.mp4"
    else:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file on the way, no permission
            reason = (exc.strerror or type(exc).__name__).lower()
            problem = f"its folder {str(dest.parent)!r} cannot be made ({reason})"
    if problem is not None:
        fail(f"{name}={str(dest)!r}: {problem}", EXIT_USAGE)


async def save_results(client: AsyncChanjingClient, task: LipSyncTask, dest: Path) -> None:
    """Save the video to ``dest`` and the preview next to it as ``.jpg`` (fresh URLs if needed)."""
    saved = await download_results(client, task, dest, dest.with_suffix(".jpg"))
    note(f"saved {' and '.join(str(path) for path in saved)}")


def download(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(help="The task id.", show_default=False)],
    path: Annotated[
        Path,
        typer.Argument(
            help="Where to save the video (the preview goes next to it as .jpg); missing "
            "folders are made.",
            show_default=False,
        ),
    ],
) -> None:
    """Save the video and preview of a task that succeeded; exit 1 if it failed or has not ended."""
    settings = settings_of(ctx)
    prepare_download(path, "PATH")

    async def main() -> LipSyncTask:
        async with make_client(settings) as client:
            task = await client.lip_sync.get(task_id)
            if task.succeeded:
                await save_results(client, task, path)
            return task

    task = run(main)
    fail_if_failed(task)
    if not task.succeeded:
        then = f"chanjing lipsync wait {task_id} --download {shlex.quote(str(path))}"
        fail(
            f"task {task_id} has no video yet: it is {status_name(task.status)} "
            f"({task.progress}%); `{then}` waits for it and saves it",
            EXIT_FAILED,
        )
