"""Uploads stream from disk: memory independent of the file, whole bodies on retries, one hash.

The 1 GiB test runs a JobManager (hashing and upload) and the emulator in a process of its own
(``tests/support/upload_rss_worker.py``) and reads its peak resident size; the file is sparse, so it
costs no disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import anyio
import pytest

from benchmarks import _rss
from chanjing_async.emulator import EmulatorServer, Fault
from chanjing_async.jobs._uploads import Uploads
from tests.support import make_client

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from types import SimpleNamespace

    from chanjing_async import AsyncChanjingClient

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
GIB = 1 << 30
MIB = 1 << 20


def _video(path: Path, size: int) -> Path:
    """A sparse file of ``size`` bytes that starts like an MP4."""
    with path.open("wb") as out:
        out.write(b"\x00\x00\x00\x18ftypmp42")
        out.truncate(size)
    return path


@pytest.mark.slow
@pytest.mark.skipif(not _rss.available(), reason="needs Linux /proc/self/clear_refs")
def test_a_1_gib_upload_adds_at_most_50_mb_of_memory(tmp_path: Path) -> None:
    big = _video(tmp_path / "big.mp4", GIB)
    run = subprocess.run(
        [sys.executable, "-m", "tests.support.upload_rss_worker", str(big)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.splitlines()[-1])
    assert report["received"] == GIB
    added = report["peak"] - report["before"]
    assert added <= 50 * MIB, f"{added / MIB:.0f} MiB added"
    # Hashing and reading run in worker threads: the loop never stalls for the file.
    assert report["loop_lag"] < 0.25


async def test_a_retried_put_sends_the_whole_file_again(
    emulator: EmulatorServer, client: AsyncChanjingClient, tmp_path: Path
) -> None:
    video = _video(tmp_path / "talk.mp4", 3 * MIB + 5)
    # The first PUT is received whole, then its connection dropped instead of answered.
    emulator.inject(Fault(endpoint="upload", kind="drop_after"))
    detail = await client.files.upload(video, service="lip_sync_video", poll_interval=0.02)
    assert emulator.state.stats()["endpoints"]["upload"]["requests"] == 2
    record = emulator.state.files[detail.id]
    assert (record.bytes, record.head[4:8]) == (3 * MIB + 5, b"ftyp")


async def test_the_put_has_a_content_length_and_goes_out_in_small_chunks(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    video = _video(tmp_path / "talk.mp4", 8 * MIB)
    seen: list[tuple[str, str | None, str | None]] = []
    chunks: list[int] = []

    async def headers_sent(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestHeadersSentParams,
    ) -> None:
        headers = params.headers
        seen.append(
            (params.method, headers.get("Content-Length"), headers.get("Transfer-Encoding"))
        )

    async def chunk_sent(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestChunkSentParams,
    ) -> None:
        if params.method == "PUT":
            chunks.append(len(params.chunk))

    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(headers_sent)
    trace.on_request_chunk_sent.append(chunk_sent)
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as session,
        make_client(emulator.base_url, session=session) as client,
    ):
        await client.files.upload(video, service="lip_sync_video", poll_interval=0.02)
    assert [line for line in seen if line[0] == "PUT"] == [("PUT", str(8 * MIB), None)]
    assert sum(chunks) == 8 * MIB
    assert max(chunks) <= MIB  # never the file at once


async def test_a_file_named_by_many_jobs_is_hashed_once_while_unchanged(
    client: AsyncChanjingClient, tmp_path: Path
) -> None:
    video = _video(tmp_path / "talk.mp4", MIB)
    async with anyio.create_task_group() as group:
        uploads = Uploads(client.files, group, concurrency=2, poll_interval=0.02)
        ids: list[str] = []
        async with anyio.create_task_group() as jobs:
            for _ in range(20):
                jobs.start_soon(lambda: _append(ids, uploads.file_id(video, "lip_sync_video")))
        assert (uploads.hashed, uploads.uploaded, len(set(ids))) == (1, 1, 1)
        assert await uploads.file_id(video, "lip_sync_video") == ids[0]
        assert uploads.hashed == 1
        with video.open("r+b") as changed:  # same size: new bytes and modification time
            changed.seek(100)
            changed.write(b"new")
        stat = video.stat()
        os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        assert await uploads.file_id(video, "lip_sync_video") != ids[0]
        assert (uploads.hashed, uploads.uploaded) == (2, 2)


async def _append(ids: list[str], file_id: Awaitable[str]) -> None:
    ids.append(await file_id)
