"""``chanjing lipsync create|get|list|wait|download``, ``chanjing voices`` and ``files``.

``create`` is in ``_create``, ``download`` in ``_download``, ``files upload`` in ``_files`` and
the wait they share in ``_waiting``; ``get``, ``list``, ``wait`` and ``voices`` are here.

Output rules (``_task_view``): what a script needs (a task id, a file id, ``--json``) goes to
stdout; notes and the wait's spinner go to stderr. Every input is checked before anything is
sent (exit 2); a task that fails, a wait that runs out or an API error ends with exit 1.
"""

from __future__ import annotations

from pathlib import Path  # noqa: TC003 - typer reads the annotations at run time
from typing import TYPE_CHECKING, Annotated

import typer

from ..models import MAX_PAGE_SIZE
from ._common import console, dump_json, make_client, run, settings_of
from ._create import create
from ._download import download as download_command
from ._download import prepare_download, save_results
from ._files import files_app
from ._task_view import created, finish, page_table, show_task, status_name, task_json
from ._waiting import TimeoutOption, check_timeout, wait_for

if TYPE_CHECKING:
    from ..models import LipSyncTask, Page, Voice

lipsync_app = typer.Typer(
    help="Lip-sync tasks: create, read, list, wait and download.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add ``lipsync``, ``voices`` and ``files`` to the root command."""
    app.add_typer(lipsync_app, name="lipsync")
    app.command()(voices)
    app.add_typer(files_app, name="files")


# --------------------------------------------------------------------------------------------
# chanjing lipsync create | get | list | wait

lipsync_app.command()(create)

TaskId = Annotated[str, typer.Argument(help="The task id.", show_default=False)]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON (the API's fields).")]


@lipsync_app.command()
def get(ctx: typer.Context, task_id: TaskId, as_json: JsonFlag = False) -> None:
    """Show one task."""
    settings = settings_of(ctx)

    async def main() -> LipSyncTask:
        async with make_client(settings) as client:
            return await client.lip_sync.get(task_id)

    task = run(main)
    if as_json:
        dump_json(task_json(task))
    else:
        show_task(task)


@lipsync_app.command("list")
def list_tasks(
    ctx: typer.Context,
    page: Annotated[int, typer.Option(min=1, help="Page number, from 1.")] = 1,
    page_size: Annotated[int, typer.Option(min=1, max=MAX_PAGE_SIZE, help="Tasks per page.")] = 10,
    as_json: JsonFlag = False,
) -> None:
    """List one page of tasks (the API's order, undocumented)."""
    settings = settings_of(ctx)

    async def main() -> Page[LipSyncTask]:
        async with make_client(settings) as client:
            return await client.lip_sync.list(page=page, page_size=page_size)

    result = run(main)
    if as_json:
        dump_json(result.model_dump(mode="json", by_alias=True))
        return
    table = page_table(result.page_info, "task")
    table.add_column("status", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("created (UTC)", no_wrap=True)
    table.add_column("msg", overflow="fold")
    for task in result.items:
        table.add_row(
            task.id,
            status_name(task.status) + ("" if task.is_terminal else f" {task.progress}%"),
            str(task.duration),
            created(task, "%m-%d %H:%M"),
            task.msg,
        )
    console.print(table, markup=False)


@lipsync_app.command("wait")
def wait_task(
    ctx: typer.Context,
    task_id: TaskId,
    timeout: TimeoutOption = None,
    download: Annotated[
        Path | None,
        typer.Option(
            help="Save the video here and the preview next to it as .jpg.", show_default=False
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Wait until a task ends and show it; exit 1 if it failed."""
    settings = settings_of(ctx)
    check_timeout(timeout)
    prepare_download(download)

    async def main() -> LipSyncTask:
        async with make_client(settings) as client:
            task = await wait_for(client, task_id, settings, timeout)
            if task.succeeded and download is not None:
                await save_results(client, task, download)
            return task

    finish(run(main), as_json=as_json, show=True)


# After wait: `lipsync --help` lists the commands in the order they were added.
lipsync_app.command("download")(download_command)


# --------------------------------------------------------------------------------------------
# chanjing voices


def voices(
    ctx: typer.Context,
    page: Annotated[int, typer.Option(min=1, help="Page number, from 1.")] = 1,
    size: Annotated[int, typer.Option(min=1, max=MAX_PAGE_SIZE, help="Voices per page.")] = 10,
    as_json: JsonFlag = False,
) -> None:
    """List public voices; a voice id goes to `lipsync create --voice`."""
    settings = settings_of(ctx)

    async def main() -> Page[Voice]:
        async with make_client(settings) as client:
            return await client.voices.list(page=page, size=size)

    result = run(main)
    if as_json:
        dump_json(result.model_dump(mode="json", by_alias=True))
        return
    table = page_table(result.page_info, "voice")
    for column in ("name", "gender", "lang", "grade", "desc"):
        table.add_column(column)
    for voice in result.items:
        table.add_row(
            voice.id, voice.name, str(voice.gender), voice.lang, str(voice.grade), voice.desc
        )
    console.print(table, markup=False)
