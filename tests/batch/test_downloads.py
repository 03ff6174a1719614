"""Downloads: output names cannot leave the output folder; a cut download never looks complete.

``tests/batch/test_manifest.py`` already checks that ``output_paths`` refuses ``../x``, ``/abs``,
``a/../../b``, ``C:x``, ``a\\..\\b``, ``""`` and ``./a``, and a symlinked folder inside the output
folder that points outside it. This file adds what it leaves out: a symlinked *file* and a
dangling symlink pointing outside, a chain of links, an output folder that is itself a link
(allowed), ``run_batch`` refusing such a row before anything is sent, and a download onto a
final name that is a symlink (the link is replaced, the file it points to is untouched).

Partial downloads are cut for real: a loopback reverse proxy in front of the emulator announces
the full ``Content-Length`` of a result file, sends half of it and closes the connection. The
download must fail with a typed ChanjingError, leave no file under the final name (or keep the
previous complete one), and a later download must replace cleanly. ``run_batch`` reports such a
row as failed, removes stale ``.<name>.<hex>.part`` files when it starts, and a re-run delivers.
"""

from __future__ import annotations

import csv
import errno
import os
import re
from typing import TYPE_CHECKING

import aiohttp
import anyio
import pytest
import yarl
from aiohttp import web

from chanjing_async import (
    AsyncChanjingClient,
    ChanjingError,
    InvalidInputError,
    LipSyncRequest,
    LipSyncTask,
    TransportError,
)
from chanjing_async.batch._manifest import output_paths, read_manifest
from chanjing_async.batch._runner import _remove_partial_downloads, download_results, run_batch
from chanjing_async.emulator.app import _MEDIA
from tests.support import JOB_POLL, VOICE, make_client

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from typing_extensions import Buffer

    from chanjing_async.emulator import EmulatorServer

pytestmark = pytest.mark.anyio

MP4, JPG = _MEDIA["mp4"][0], _MEDIA["jpg"][0]
# What LipSync.download names its temporary file: ".<final name>.<8 hex>.part".
PARTIAL = re.compile(r"^\..+\.[0-9a-f]{8}\.part$")


def tree(folder: Path) -> dict[str, bytes]:
    """Every regular file under ``folder`` (links not followed), by relative path."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def final_looking(folder: Path) -> list[str]:
    """Files under ``folder`` that do not carry the hidden ``.part`` pattern."""
    return [name for name in tree(folder) if not PARTIAL.match(name.rsplit("/", 1)[-1])]


# --------------------------------------------------------------------------------------------
# Output names


def test_a_symlinked_file_pointing_outside_is_refused(tmp_path: Path) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "clip.mp4").symlink_to(outside / "victim.mp4")  # dangling: the target does not exist
    (outside / "cover.jpg").write_bytes(b"precious")
    (out / "other.jpg").symlink_to(outside / "cover.jpg")
    for name in ("clip", "other"):
        with pytest.raises(InvalidInputError, match="inside the output folder"):
            output_paths(out, name)
    assert (outside / "cover.jpg").read_bytes() == b"precious"


def test_every_link_below_the_output_folder_is_refused(tmp_path: Path) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    (out / "real").mkdir(parents=True)
    outside.mkdir()
    (out / "hop").symlink_to(out / "away", target_is_directory=True)
    (out / "away").symlink_to(outside, target_is_directory=True)
    (out / "inside").symlink_to(out / "real", target_is_directory=True)
    with pytest.raises(InvalidInputError, match="inside the output folder"):
        output_paths(out, "hop/clip")
    # Results are written without following links: even one that stays inside is refused
    # before anything is paid for, and so is a link at the file's own name.
    with pytest.raises(InvalidInputError, match="no symbolic link below the folder"):
        output_paths(out, "inside/clip")
    (out / "real" / "clip.mp4").symlink_to(out / "real" / "other.mp4")
    with pytest.raises(InvalidInputError, match="no symbolic link"):
        output_paths(out, "real/clip")
    assert output_paths(out, "real/fine")[0] == out / "real" / "fine.mp4"


def test_an_output_folder_that_is_itself_a_link_is_allowed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "out").symlink_to(real, target_is_directory=True)
    assert output_paths(tmp_path / "out", "a/b")[1] == tmp_path / "out" / "a" / "b.jpg"


async def test_run_batch_refuses_an_escaping_row_before_sending_anything(
    tmp_path: Path, media: tuple[Path, Path], emulator: EmulatorServer, client: AsyncChanjingClient
) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "link").symlink_to(outside, target_is_directory=True)
    manifest = write_manifest(tmp_path, media[0], ["fine", "link/clip"])
    rows = read_manifest(manifest).rows
    assert [row.output for row in rows] == ["fine", "link/clip"]  # the names themselves are valid
    with pytest.raises(InvalidInputError, match="inside the output folder"):
        await run_batch(client, rows, journal=tmp_path / "jobs.sqlite", out_dir=out)
    assert emulator.state.stats()["endpoints"]["create_upload_url"]["requests"] == 0
    assert emulator.state.stats()["tasks_created"] == 0
    assert list(outside.iterdir()) == []


async def test_a_download_replaces_a_symlink_at_the_final_name_not_its_target(
    tmp_path: Path, client: AsyncChanjingClient, files: tuple[str, str]
) -> None:
    task = await finished_task(client, files[0])
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.mp4").write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip.mp4").symlink_to(outside / "victim.mp4")
    await client.lip_sync.download(task, out / "clip.mp4")
    assert not (out / "clip.mp4").is_symlink()
    assert (out / "clip.mp4").read_bytes() == MP4
    assert (outside / "victim.mp4").read_bytes() == b"precious"


@pytest.mark.parametrize("kind", ["fifo", "folder"])
async def test_a_download_never_replaces_a_device_pipe_or_folder_at_the_final_name(
    tmp_path: Path, client: AsyncChanjingClient, files: tuple[str, str], kind: str
) -> None:
    """``--download /dev/null`` as root renamed a plain file over the device: a pipe stands
    in for it here. The download is refused and the pipe stays a pipe."""
    task = await finished_task(client, files[0])
    folder = tmp_path / "out"
    folder.mkdir()
    dest = folder / "clip.mp4"
    if kind == "fifo":
        os.mkfifo(dest)
    else:
        dest.mkdir()
    with pytest.raises(ChanjingError, match="something other than a file has this name"):
        await client.lip_sync.download(task, dest)
    assert dest.is_fifo() if kind == "fifo" else dest.is_dir()
    assert [path.name for path in folder.iterdir()] == ["clip.mp4"]  # no .part left


def test_partial_cleanup_stays_inside_the_folder_and_spares_final_files(tmp_path: Path) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    (out / "sub").mkdir(parents=True)
    outside.mkdir()
    (out / ".clip.mp4.0123abcd.part").write_bytes(b"half")
    (out / "sub" / ".x.jpg.deadbeef.part").write_bytes(b"half")
    (out / "clip.mp4").write_bytes(MP4)
    (out / "clip.part.mp4").write_bytes(MP4)  # output "clip.part": a final file, kept
    (outside / ".y.mp4.01234567.part").write_bytes(b"not ours")
    (out / "link").symlink_to(outside, target_is_directory=True)
    _remove_partial_downloads(out)
    assert tree(out) == {"clip.mp4": MP4, "clip.part.mp4": MP4}
    assert (outside / ".y.mp4.01234567.part").exists()  # the link was not followed


# --------------------------------------------------------------------------------------------
# Partial downloads


class CuttingProxy:
    """A loopback reverse proxy to the emulator that can cut result downloads short.

    Every request is forwarded with its ``Host`` header, so the URLs the emulator mints (upload
    and result URLs) point back at the proxy. A result file whose extension is in ``cut`` gets
    its full ``Content-Length`` but only half its bytes before the connection is closed.
    """

    def __init__(self, upstream: str) -> None:
        self._upstream = upstream
        self.cut: frozenset[str] = frozenset()
        self.cuts = 0
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in ("content-length", "transfer-encoding", "connection")
        }
        body = await request.read()
        async with self._session.request(
            request.method,
            yarl.URL(self._upstream + request.raw_path, encoded=True),
            headers=headers,
            data=body or None,
        ) as upstream:
            payload = await upstream.read()
            content_type = upstream.headers.get("Content-Type", "application/octet-stream")
            status = upstream.status
        ext = request.path.rsplit(".", 1)[-1]
        if request.path.startswith("/_emulator/results/") and status == 200 and ext in self.cut:
            self.cuts += 1
            response = web.StreamResponse(
                headers={"Content-Type": content_type, "Content-Length": str(len(payload))}
            )
            await response.prepare(request)
            await response.write(payload[: len(payload) // 2])
            assert request.transport is not None
            request.transport.close()
            raise ConnectionResetError("cut on purpose")
        return web.Response(status=status, body=payload, headers={"Content-Type": content_type})

    async def __aenter__(self) -> CuttingProxy:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        assert self._session is not None
        await self._runner.cleanup()
        await self._session.close()


@pytest.fixture
async def proxy(emulator: EmulatorServer) -> AsyncIterator[CuttingProxy]:
    async with CuttingProxy(emulator.base_url) as running:
        yield running


@pytest.fixture
async def proxied(proxy: CuttingProxy) -> AsyncIterator[AsyncChanjingClient]:
    """A client talking to the emulator through the cutting proxy."""
    async with make_client(proxy.url) as opened:
        yield opened


async def finished_task(client: AsyncChanjingClient, video_id: str) -> LipSyncTask:
    task_id = await client.lip_sync.create(
        LipSyncRequest.tts(video_id, text="你好", audio_man_id=VOICE)
    )
    task = await client.lip_sync.wait(task_id, timeout=10, poll_interval=0.05)
    assert task.succeeded
    return task


async def proxied_task(client: AsyncChanjingClient, video: Path) -> LipSyncTask:
    uploaded = await client.files.upload(video, service="lip_sync_video", poll_interval=0.02)
    task = await finished_task(client, uploaded.id)
    assert task.video_url.startswith(client.base_url)  # the result comes through the proxy
    return task


async def test_a_cut_download_raises_and_leaves_no_file(
    tmp_path: Path, media: tuple[Path, Path], proxy: CuttingProxy, proxied: AsyncChanjingClient
) -> None:
    task = await proxied_task(proxied, media[0])
    out = tmp_path / "out"
    out.mkdir()
    proxy.cut = frozenset({"mp4", "jpg"})
    with pytest.raises(ChanjingError) as caught:
        await proxied.lip_sync.download(task, out / "clip.mp4")
    assert isinstance(caught.value, TransportError)
    assert proxy.cuts == 1
    assert not (out / "clip.mp4").exists()
    assert tree(out) == {}  # not even a .part: a cut download removes it

    # An earlier complete file keeps its content when a new download is cut.
    (out / "clip.mp4").write_bytes(b"previous complete video")
    with pytest.raises(TransportError):
        await proxied.lip_sync.download(task, out / "clip.mp4")
    assert tree(out) == {"clip.mp4": b"previous complete video"}

    # A later download goes through and replaces it cleanly.
    proxy.cut = frozenset()
    saved = await proxied.lip_sync.download(task, out / "clip.mp4")
    assert saved == out / "clip.mp4"
    assert tree(out) == {"clip.mp4": MP4}


async def test_download_results_cut_on_the_preview_keeps_no_preview(
    tmp_path: Path, media: tuple[Path, Path], proxy: CuttingProxy, proxied: AsyncChanjingClient
) -> None:
    task = await proxied_task(proxied, media[0])
    video, preview = tmp_path / "out" / "a.mp4", tmp_path / "out" / "a.jpg"
    proxy.cut = frozenset({"jpg"})
    with pytest.raises(TransportError):
        await download_results(proxied, task, video, preview)
    # The video came whole; the cut preview left nothing under its name.
    assert tree(tmp_path / "out") == {"a.mp4": MP4}
    proxy.cut = frozenset({"mp4"})
    with pytest.raises(TransportError):
        await download_results(proxied, task, video, preview)
    assert tree(tmp_path / "out") == {"a.mp4": MP4}  # the complete video is kept
    proxy.cut = frozenset()
    assert await download_results(proxied, task, video, preview) == (video, preview)
    assert tree(tmp_path / "out") == {"a.mp4": MP4, "a.jpg": JPG}


async def test_a_failed_write_never_leaves_a_final_looking_file(
    tmp_path: Path,
    client: AsyncChanjingClient,
    files: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The disk fills up half-way through writing: only a hidden ``.part`` may stay behind."""
    task = await finished_task(client, files[0])
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip.mp4").write_bytes(b"previous complete video")
    write = os.write

    def half_then_full(fd: int, data: Buffer) -> int:
        write(fd, memoryview(data)[: len(memoryview(data)) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(ChanjingError, match=r"clip\.mp4: cannot be written \(No space left"):
        await client.lip_sync.download(task, out / "clip.mp4")
    monkeypatch.undo()
    # The half-written .part is removed at once; the previous file is untouched.
    assert tree(out) == {"clip.mp4": b"previous complete video"}


def write_manifest(folder: Path, video: Path, outputs: list[str]) -> Path:
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["output", "video", "text", "voice"])
        writer.writeheader()
        for n, output in enumerate(outputs):
            writer.writerow(
                {"output": output, "video": str(video), "text": f"行 {n}", "voice": VOICE}
            )
    return manifest


async def test_run_batch_reports_a_cut_download_and_a_rerun_delivers(
    tmp_path: Path,
    media: tuple[Path, Path],
    emulator: EmulatorServer,
    proxy: CuttingProxy,
    proxied: AsyncChanjingClient,
) -> None:
    rows = read_manifest(write_manifest(tmp_path, media[0], ["one", "sub/two"])).rows
    out, journal = tmp_path / "out", tmp_path / "jobs.sqlite"
    (out / "sub").mkdir(parents=True)
    # Left by downloads a crash cut off: removed before the run starts.
    (out / ".one.mp4.0123abcd.part").write_bytes(MP4[:5])
    (out / "sub" / ".two.jpg.89abcdef.part").write_bytes(JPG[:5])
    proxy.cut = frozenset({"mp4"})
    with anyio.fail_after(20):
        report = await run_batch(proxied, rows, journal=journal, out_dir=out, poll=JOB_POLL)
    assert [outcome.result for outcome in report.outcomes] == ["failed", "failed"]
    assert all(
        (outcome.reason or "").startswith("download failed: ") for outcome in report.outcomes
    )
    assert report.exit_code == 1
    assert proxy.cuts == 2
    assert tree(out) == {}  # no final file, and the stale parts are gone

    proxy.cut = frozenset()
    with anyio.fail_after(20):
        again = await run_batch(proxied, rows, journal=journal, out_dir=out, poll=JOB_POLL)
    assert [outcome.result for outcome in again.outcomes] == ["succeeded", "succeeded"]
    assert all(outcome.resumed for outcome in again.outcomes)
    assert emulator.state.stats()["tasks_created"] == 2  # downloaded again, not resubmitted
    assert tree(out) == {"one.mp4": MP4, "one.jpg": JPG, "sub/two.mp4": MP4, "sub/two.jpg": JPG}
