"""``chanjing lipsync create``: the field table's flags, checked by the manifest's row checker.

Each request flag is a field of ``models._fields`` (its name, its help); the values given go
through the same :class:`~chanjing_async.batch._rows.RowChecker` as a manifest row, so a bad
value or a missing or conflicting flag is refused with the reason a manifest would give, worded
for flags in one line: a missing or conflicting flag first, else the first bad value and the
others after it (``--speed=3.0 (tts_config.speed): must be between 0.5 and 2 (also: ...)``),
before anything is sent (exit 2). Local files are uploaded first; the task id goes to stdout
at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..batch._rows import RowChecker
from ..models._fields import FIELD, flag_message
from ._common import EXIT_USAGE, dump_json, fail, make_client, run, settings_of
from ._download import prepare_download, save_results
from ._files import upload_file
from ._task_view import finish, note, task_json
from ._waiting import TimeoutOption, check_timeout, wait_for

if TYPE_CHECKING:
    from ..batch._types import RowError
    from ..jobs._jobspec import LipSyncJob
    from ..models import LipSyncTask
    from ._common import Settings

__all__ = ["create"]


def _job_of(given: dict[str, object]) -> LipSyncJob:
    """The job the flags describe (values by column, None: not given), every field checked;
    exit 2 naming the first problem."""
    raw = {column: value for column, value in given.items() if value is not None and value != []}
    problems: list[RowError] = []
    # No base folder: a flag's path is left as typed (LipSyncJob checks it), and the working
    # folder is never read, so a job by file ids runs even where it has been deleted.
    job = RowChecker(Path(), flags=True).job(0, raw, problems)
    if job is None:
        first = problems[0]
        fail(flag_message(first.field, first.value, first.reason), EXIT_USAGE)
    return job


def create(
    ctx: typer.Context,
    video: Annotated[
        Path | None, typer.Option(help=FIELD["video"].help, show_default=False)
    ] = None,
    video_file_id: Annotated[str | None, typer.Option(help=FIELD["video_file_id"].help)] = None,
    text: Annotated[list[str] | None, typer.Option(help=FIELD["text"].help)] = None,
    voice: Annotated[str | None, typer.Option(help=FIELD["voice"].help)] = None,
    speed: Annotated[float | None, typer.Option(help=FIELD["speed"].help)] = None,
    pitch: Annotated[float | None, typer.Option(help=FIELD["pitch"].help)] = None,
    audio: Annotated[
        Path | None, typer.Option(help=FIELD["audio"].help, show_default=False)
    ] = None,
    audio_file_id: Annotated[str | None, typer.Option(help=FIELD["audio_file_id"].help)] = None,
    model: Annotated[int | None, typer.Option(help=FIELD["model"].help)] = None,
    screen_width: Annotated[int | None, typer.Option(help=FIELD["screen_width"].help)] = None,
    screen_height: Annotated[int | None, typer.Option(help=FIELD["screen_height"].help)] = None,
    backway: Annotated[int | None, typer.Option(help=FIELD["backway"].help)] = None,
    drive_mode: Annotated[str | None, typer.Option(help=FIELD["drive_mode"].help)] = None,
    volume: Annotated[int | None, typer.Option(help=FIELD["volume"].help)] = None,
    callback: Annotated[str | None, typer.Option(help=FIELD["callback"].help)] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until the task ends (a spinner on stderr).")
    ] = False,
    download: Annotated[
        Path | None,
        typer.Option(
            help="Save the video here and the preview next to it as .jpg (implies --wait).",
            show_default=False,
        ),
    ] = None,
    timeout: TimeoutOption = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print the task as JSON (the ended one with --wait) instead of its id."
        ),
    ] = False,
) -> None:
    """Create a lip-sync task and print its id; local files are uploaded first.

    Text-driven: --text with --voice. Audio-driven: --audio or --audio-file-id.
    """
    # The parameters named after a field of the table, first thing: locals() holds only them.
    job = _job_of({name: value for name, value in locals().items() if name in FIELD})
    settings = settings_of(ctx)
    wait = wait or download is not None
    if timeout is not None and not wait:
        fail("--timeout: only with --wait or --download", EXIT_USAGE)
    check_timeout(timeout)
    prepare_download(download)
    task = run(lambda: _create(settings, job, wait, download, timeout, as_json=as_json))
    if task is None:
        return
    if wait:
        finish(task, as_json=as_json, show=False)
    else:
        dump_json(task_json(task))


async def _create(
    settings: Settings,
    job: LipSyncJob,
    wait: bool,
    download: Path | None,
    timeout: float | None,
    *,
    as_json: bool,
) -> LipSyncTask | None:
    """Upload the job's local files, create the task, print its id and wait if asked."""
    async with make_client(settings) as client:
        file_ids: dict[Path, str] = {}
        for path, service in job.uploads():
            detail = await upload_file(client, settings, path, service)
            file_ids[path] = detail.id
            note(f"uploaded {path.name} ({service}): {detail.id}")
        task_id = await client.lip_sync.create(job.to_request(file_ids))
        if not as_json:
            typer.echo(task_id)  # at once: a script has the id even if the wait fails
        note(f"created task {task_id}")
        if not wait:
            return await client.lip_sync.get(task_id) if as_json else None
        task = await wait_for(client, task_id, settings, timeout)
        if task.succeeded:
            note(f"task {task_id} succeeded (duration {task.duration})")
            if download is not None:
                await save_results(client, task, download)
        return task
