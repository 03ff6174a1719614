"""A process that downloads one large result and reports its memory and speed.

Run by ``tests/client/test_download_limits.py`` from the repository root::

    python -m tests.support.download_rss_worker <folder> <bytes>

A loopback server in this process streams ``<bytes>`` zeros (1 MiB writes, with a
``Content-Length``) as a task's result URL; ``LipSync.download`` saves it into ``<folder>``.
After a warm-up download of 1 MiB (imports, sessions), the peak resident size is reset; then
the large download runs. It prints one JSON line: the resident size before (``before``), the
peak during the download (``peak``), the size of the saved file (``saved``) and the seconds
it took (``seconds``). The saved file is deleted before the line is printed.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path

import anyio
from aiohttp import web
from aiohttp.test_utils import TestServer

from benchmarks import _rss
from chanjing_async import LipSyncTask
from chanjing_async.client._downloads import DownloadPolicy
from tests.support import make_client

_CHUNK = bytes(1 << 20)


async def _zeros(request: web.Request) -> web.StreamResponse:
    size = int(request.match_info["size"])
    response = web.StreamResponse(headers={"Content-Length": str(size)})
    await response.prepare(request)
    while size > 0:
        await response.write(_CHUNK[: min(size, len(_CHUNK))])
        size -= len(_CHUNK)
    return response


async def main(folder: Path, size: int) -> None:
    app = web.Application()
    app.router.add_get("/zeros/{size}", _zeros)
    async with (
        TestServer(app) as server,
        make_client(
            str(server.make_url("")), downloads=DownloadPolicy(max_bytes=2 * size)
        ) as client,
    ):
        url = str(server.make_url("/zeros"))
        warm = LipSyncTask(id="warm", status=20, video_url=f"{url}/{1 << 20}")
        await client.lip_sync.download(warm, folder / "warm.mp4")
        gc.collect()
        _rss.reset_peak()
        before = _rss.current()
        big = LipSyncTask(id="big", status=20, video_url=f"{url}/{size}")
        started = time.monotonic()
        saved = await client.lip_sync.download(big, folder / "big.mp4")
        seconds = time.monotonic() - started
        peak = _rss.peak()
    report = {"before": before, "peak": peak, "saved": saved.stat().st_size, "seconds": seconds}
    saved.unlink()
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1]), int(sys.argv[2]))
