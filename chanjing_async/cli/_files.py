"""``chanjing files upload``, and the paced upload ``lipsync create`` uses for local files.

The bucket (``--service``) follows from the file's extension, as the create page lists them
(.mp4 .mov .webm: ``lip_sync_video``; .mp3 .m4a .wav: ``lip_sync_audio``), so
``--service`` only says it again. Any other extension is exit 2 naming the extensions each
bucket takes, before anything is sent (with ``--service``, the SDK's check says the same).
"""

from __future__ import annotations

import enum
from pathlib import Path  # noqa: TC003 - typer reads the annotations at run time
from typing import TYPE_CHECKING, Annotated

import typer

from ..client._resources import LIP_SYNC_FORMATS
from ._common import EXIT_USAGE, Settings, fail, make_client, run, settings_of
from ._task_view import note

if TYPE_CHECKING:
    from ..client._client import AsyncChanjingClient
    from ..models import FileDetail

UPLOAD_POLL_INTERVAL = 1.0
"""First delay between two readiness checks of an uploaded file (seconds of API time)."""
_MIN_INTERVAL = 0.01  # however large the time scale is, never poll in a tight loop

files_app = typer.Typer(no_args_is_help=True)  # help: the callback's docstring


@files_app.callback()
def _files() -> None:
    """Input files for lip-sync tasks."""  # a callback keeps `files` a group of one command


class Service(str, enum.Enum):
    """The buckets a lip-sync create reads its files from."""

    lip_sync_video = "lip_sync_video"
    lip_sync_audio = "lip_sync_audio"


def _formats(service: str) -> str:
    return " ".join(sorted(LIP_SYNC_FORMATS[service]))


def service_of(path: Path) -> str | None:
    """The bucket a file's extension belongs to; None for an extension no bucket takes."""
    suffix = path.suffix.lower()
    return next((name for name, formats in LIP_SYNC_FORMATS.items() if suffix in formats), None)


def paced(settings: Settings, seconds: float) -> float:
    """``seconds`` of API time in wall seconds, for an emulator K times faster."""
    return max(seconds / settings.time_scale, _MIN_INTERVAL)


async def upload_file(
    client: AsyncChanjingClient, settings: Settings, path: Path, service: str
) -> FileDetail:
    """Upload ``path`` to ``service`` and wait until it is ready (checked before sending)."""
    return await client.files.upload(
        path, service=service, poll_interval=paced(settings, UPLOAD_POLL_INTERVAL)
    )


@files_app.command()
def upload(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The local file.", show_default=False)],
    service: Annotated[
        Service | None,
        typer.Option(
            help=f"The bucket; by default the extension's: {Service.lip_sync_video.value} "
            f"({_formats('lip_sync_video')}) or {Service.lip_sync_audio.value} "
            f"({_formats('lip_sync_audio')}).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Upload a file to the bucket its extension names, wait until it is ready, print its id."""
    settings = settings_of(ctx)
    bucket = service.value if service is not None else service_of(path)
    if bucket is None:
        takes = ", ".join(f"{name} takes {_formats(name)}" for name in LIP_SYNC_FORMATS)
        fail(f"{str(path)!r}: not a lip-sync video or audio file ({takes})", EXIT_USAGE)

    async def main() -> str:
        async with make_client(settings) as client:
            return (await upload_file(client, settings, path, bucket)).id

    file_id = run(main)
    note(f"uploaded {path.name} ({bucket}), ready")
    typer.echo(file_id)
