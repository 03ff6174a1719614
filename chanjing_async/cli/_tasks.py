"""``chanjing lipsync create|get|list|wait`` and ``chanjing voices``; ``register`` also adds
``lipsync download`` (``_cli_download``) and ``files upload`` (``_cli_files``).

Output rules (``_cli_task_view``): what a script needs (a task id, a file id, ``--json``) goes
to stdout; notes and the wait's spinner go to stderr. Every input is checked before anything is
sent (exit 2); a task that fails, a wait that runs out or an API error ends with exit 1.
"""

from __future__ import annotations

import contextlib
from pathlib import Path  # noqa: TC003 - typer reads the annotations at run time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ..errors import ChanjingError, InvalidInputError
from ..jobs._jobspec import LipSyncJob
from ..models import MAX_PAGE_SIZE
from ._common import (
    EXIT_FAILED,
    EXIT_USAGE,
    Settings,
    console,
    dump_json,
    err_console,
    fail,
    make_client,
    run,
    settings_of,
)
from ._download import download as download_command
from ._download import prepare_download, save_results
from ._files import files_app, paced, upload_file
from ._task_view import created, finish, note, page_table, show_task, status_name, task_json

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..client._client import AsyncChanjingClient
    from ..models import LipSyncTask, Page, Voice

# Seconds of API time; with --time-scale K the CLI waits K times less between reads.
POLL_INTERVAL = 5.0
"""Between two reads of a task being waited for (tasks take minutes on the live API)."""
DEFAULT_TIMEOUT = 3600.0
"""How long a wait lasts when --timeout is not given."""

lipsync_app = typer.Typer(
    help="Lip-sync tasks: create, read, list, wait and download.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add ``lipsync``, ``voices`` and ``files`` to the root command."""
    app.add_typer(lipsync_app, name="lipsync")
    app.command()(voices)
    app.add_typer(files_app, name="files")


# --------------------------------------------------------------------------------------------
# Shared helpers


def _check_timeout(timeout: float | None) -> None:
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


async def _wait(
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


# --------------------------------------------------------------------------------------------
# chanjing lipsync create

# Request fields (as InvalidInputError names them) -> the flag that sets them.
_FLAGS = {
    "video": "--video",
    "video_file_id": "--video-file-id",
    "audio": "--audio",
    "audio_file_id": "--audio-file-id",
    "tts_config": "--text",
    "tts_config.text": "--text",
    "tts_config.audio_man_id": "--voice",
    "tts_config.speed": "--speed",
    "tts_config.pitch": "--pitch",
    "model": "--model",
    "screen_width": "--screen-width",
    "screen_height": "--screen-height",
    "backway": "--backway",
    "drive_mode": "--drive-mode",
    "volume": "--volume",
    "callback": "--callback",
}


def _describe(error: InvalidInputError) -> str:
    """``--speed=3.0 (tts_config.speed): must be between 0.5 and 2``."""
    flag = _FLAGS.get(error.field)
    if flag is None:
        return str(error)
    value = "" if error.value is None else f"={error.value!r}"
    field = "" if flag[2:].replace("-", "_") == error.field else f" ({error.field})"
    return f"{flag}{value}{field}: {error.allowed}"


def _one_of(flag: str, path: Path | None, file_id: str | None, what: str) -> None:
    if path is not None and file_id is not None:
        fail(f"{flag} and {flag}-file-id: give only one {what}", EXIT_USAGE)


def _build_job(
    *,
    video: Path | None,
    video_file_id: str | None,
    text: list[str],
    voice: str | None,
    speed: float | None,
    pitch: float | None,
    audio: Path | None,
    audio_file_id: str | None,
    options: dict[str, Any],
) -> LipSyncJob:
    """The job the flags describe, every field checked; exit 2 naming the first bad one."""
    _one_of("--video", video, video_file_id, "video (a local file or the id of an uploaded one)")
    if video is None and video_file_id is None:
        fail("--video or --video-file-id: a video is required", EXIT_USAGE)
    _one_of("--audio", audio, audio_file_id, "audio (a local file or the id of an uploaded one)")
    by_text = bool(text) or voice is not None or speed is not None or pitch is not None
    by_audio = audio is not None or audio_file_id is not None
    if by_text and by_audio:
        fail(
            "--text/--voice/--speed/--pitch drive a task by text, --audio/--audio-file-id by "
            "audio: give one kind only",
            EXIT_USAGE,
        )
    if not by_text and not by_audio:
        fail(
            "nothing to say: give --text with --voice (text-driven) or --audio / "
            "--audio-file-id (audio-driven)",
            EXIT_USAGE,
        )
    try:
        if by_text:
            if not text:
                raise InvalidInputError("tts_config.text", None, "is required with --voice")
            if voice is None:
                raise InvalidInputError(
                    "tts_config.audio_man_id",
                    None,
                    "is required with --text (a voice id: see `chanjing voices`)",
                )
            return LipSyncJob.tts(
                video,
                video_file_id=video_file_id,
                text=text,
                audio_man_id=voice,
                speed=1.0 if speed is None else speed,
                pitch=1.0 if pitch is None else pitch,
                **options,
            )
        return LipSyncJob.audio(
            video,
            video_file_id=video_file_id,
            audio=audio,
            audio_file_id=audio_file_id,
            **options,
        )
    except InvalidInputError as exc:
        fail(_describe(exc), EXIT_USAGE)


@lipsync_app.command()
def create(
    ctx: typer.Context,
    video: Annotated[
        Path | None,
        typer.Option(help="Local video (.mp4, .mov, .webm), uploaded first.", show_default=False),
    ] = None,
    video_file_id: Annotated[
        str | None, typer.Option(help="Id of an uploaded video (service lip_sync_video).")
    ] = None,
    text: Annotated[
        list[str] | None,
        typer.Option(help="Text to speak (text-driven); repeat it for several segments."),
    ] = None,
    voice: Annotated[
        str | None, typer.Option(help="Voice id for --text; list them with `chanjing voices`.")
    ] = None,
    speed: Annotated[
        float | None, typer.Option(help="Speech speed for --text, 0.5 to 2 (default 1).")
    ] = None,
    pitch: Annotated[
        float | None, typer.Option(help="Speech pitch for --text, 0.1 to 3 (default 1).")
    ] = None,
    audio: Annotated[
        Path | None,
        typer.Option(
            help="Local audio (.mp3, .m4a, .wav) to drive the lips, uploaded first.",
            show_default=False,
        ),
    ] = None,
    audio_file_id: Annotated[
        str | None, typer.Option(help="Id of an uploaded audio (service lip_sync_audio).")
    ] = None,
    model: Annotated[
        int | None, typer.Option(help="0 basic, 1 high quality, 2 cartoon (default 0).")
    ] = None,
    screen_width: Annotated[
        int | None, typer.Option(help="Output width in pixels (default 1080).")
    ] = None,
    screen_height: Annotated[
        int | None, typer.Option(help="Output height in pixels (default 1920).")
    ] = None,
    backway: Annotated[
        int | None,
        typer.Option(
            help="When the speech outlasts the video: 1 replay it forward, 2 play it in "
            "reverse (default 1)."
        ),
    ] = None,
    drive_mode: Annotated[
        str | None, typer.Option(help="'' (in order) or 'random' (default '').")
    ] = None,
    volume: Annotated[int | None, typer.Option(help="Volume, 1 to 100 (default 100).")] = None,
    callback: Annotated[
        str | None, typer.Option(help="http(s) URL the API notifies when the task ends.")
    ] = None,
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
    timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds to wait (default 3600, divided by --time-scale).", show_default=False
        ),
    ] = None,
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
    settings = settings_of(ctx)
    wait = wait or download is not None
    given = {
        "model": model,
        "screen_width": screen_width,
        "screen_height": screen_height,
        "backway": backway,
        "drive_mode": drive_mode,
        "volume": volume,
        "callback": callback,
    }
    job = _build_job(
        video=video,
        video_file_id=video_file_id,
        text=text or [],
        voice=voice,
        speed=speed,
        pitch=pitch,
        audio=audio,
        audio_file_id=audio_file_id,
        options={name: value for name, value in given.items() if value is not None},
    )
    if timeout is not None and not wait:
        fail("--timeout: only with --wait or --download", EXIT_USAGE)
    _check_timeout(timeout)
    prepare_download(download)

    async def main() -> LipSyncTask | None:
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
            task = await _wait(client, task_id, settings, timeout)
            if task.succeeded:
                note(f"task {task_id} succeeded (duration {task.duration})")
                if download is not None:
                    await save_results(client, task, download)
            return task

    task = run(main)
    if task is None:
        return
    if wait:
        finish(task, as_json=as_json, show=False)
    else:
        dump_json(task_json(task))


# --------------------------------------------------------------------------------------------
# chanjing lipsync get | list | wait

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
    timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds to wait (default 3600, divided by --time-scale).", show_default=False
        ),
    ] = None,
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
    _check_timeout(timeout)
    prepare_download(download)

    async def main() -> LipSyncTask:
        async with make_client(settings) as client:
            task = await _wait(client, task_id, settings, timeout)
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
