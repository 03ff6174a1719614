"""Scenario: upload throughput and memory, ``client.files.upload`` vs a raw aiohttp streaming PUT.

Both sides send the same sparse file (1 GiB; 16 MiB with ``--smoke``) to the same emulator,
which runs in a **subprocess** (``overhead.emulator_process``) with no latency, so client and
server each get a core and the server's memory is not counted here:

* raw: one ``aiohttp.ClientSession``, ``create_upload_url`` then a PUT of the open file
  (aiohttp streams it in chunks and sets ``Content-Length``), nothing else;
* ours: ``client.files.upload(path, service=...)``: the upload URL, the streamed PUT with its
  retry rules, and the ``file_detail`` read that sees it ready (the emulator makes files ready
  at once).

The sides alternate (raw, ours, ours, raw, ...); each side's best round is the headline (other
work on a shared machine only slows a round down). Before each round the kernel's peak
resident size of this process is reset (``_rss``), so each round reports what it added at its
peak; the headline is the largest over the rounds of a side. The file is sparse: it reads from
no disk, so the figure is the client's and the loopback's, not a drive's.
"""

from __future__ import annotations

import gc
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import yarl

from . import _rss
from ._common import Figure, Options, emulator_settings, make_client
from .overhead import _raw_token, emulator_process, emulator_stats

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

NAME = "upload"

MIB = 1 << 20
_SERVICE = "lip_sync_video"
_UPLOAD_URL = "/open/v1/common/create_upload_url"


@dataclass(frozen=True)
class Round:
    """One timed upload of one side."""

    side: str
    size: int
    seconds: float
    added: int  # peak resident bytes above the start of the round

    @property
    def mib_per_second(self) -> float:
        return self.size / MIB / self.seconds


def _sparse_video(path: Path, size: int) -> Path:
    with path.open("wb") as out:
        out.write(b"\x00\x00\x00\x18ftypmp42")
        out.truncate(size)
    return path


async def raw_upload(base_url: str, path: Path) -> None:
    """The baseline: the upload URL, then aiohttp's own streaming PUT of the open file."""
    async with aiohttp.ClientSession() as session:
        headers = {"access_token": await _raw_token(session, base_url)}
        params = {"service": _SERVICE, "name": path.name}
        async with session.get(base_url + _UPLOAD_URL, params=params, headers=headers) as reply:
            target = json.loads(await reply.read())["data"]
        with path.open("rb") as body:
            async with session.put(
                yarl.URL(target["sign_url"], encoded=True),
                data=body,
                headers={"Content-Type": target["mime_type"]},
            ) as reply:
                await reply.read()
                if reply.status != 200:
                    raise RuntimeError(f"raw PUT answered {reply.status}")


async def our_upload(base_url: str, path: Path) -> None:
    """``client.files.upload`` on a fresh client."""
    async with make_client(base_url, 1.0) as client:
        await client.files.upload(path, service=_SERVICE, poll_interval=0.01)


async def _timed(side: str, upload: Callable[[], Awaitable[None]], size: int) -> Round:
    gc.collect()
    _rss.reset_peak()
    before = _rss.current()
    started = time.perf_counter()
    await upload()
    seconds = time.perf_counter() - started
    return Round(side, size, seconds, _rss.peak() - before)


async def run(options: Options) -> list[Figure]:
    size, pairs = (16 * MIB, 1) if options.smoke else (1024 * MIB, 3)
    settings = emulator_settings(1.0, options.seed, latency=False, file_ready_seconds=0.0)
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="chanjing-bench-") as tmp:
        video = _sparse_video(Path(tmp) / "talk.mp4", size)
        async with emulator_process(settings) as base_url:
            for pair in range(pairs):
                raw = ("raw", lambda: raw_upload(base_url, video))
                ours = ("ours", lambda: our_upload(base_url, video))
                for side, upload in (raw, ours) if pair % 2 == 0 else (ours, raw):
                    rounds.append(await _timed(side, upload, size))
            stats = await emulator_stats(base_url)
    put = stats["endpoints"]["upload"]
    clean = put["errors"] == 0 and put["requests"] == 2 * pairs
    raw_rounds = [r for r in rounds if r.side == "raw"]
    our_rounds = [r for r in rounds if r.side == "ours"]
    raw_rate = max(r.mib_per_second for r in raw_rounds)
    our_rate = max(r.mib_per_second for r in our_rounds)
    ratio = our_rate / raw_rate
    raw_added = max(r.added for r in raw_rounds) / MIB
    our_added = max(r.added for r in our_rounds) / MIB
    case = (
        f"{size // MIB:,} MiB sparse file x {pairs} rounds per side, emulator in a subprocess,"
        " no latency"
    )
    extra = {
        "bytes": size,
        "rounds_per_side": pairs,
        "ours_mib_per_s": [round(r.mib_per_second) for r in our_rounds],
        "raw_mib_per_s": [round(r.mib_per_second) for r in raw_rounds],
        "median_ratio": round(
            statistics.median(r.mib_per_second for r in our_rounds)
            / statistics.median(r.mib_per_second for r in raw_rounds),
            3,
        ),
        "ours_peak_added_mib": [round(r.added / MIB, 1) for r in our_rounds],
        "raw_peak_added_mib": [round(r.added / MIB, 1) for r in raw_rounds],
        "emulator_upload_requests": put["requests"],
        "emulator_upload_errors": put["errors"],
    }
    return [
        Figure(
            scenario=NAME,
            case=case,
            metric="MiB/s (best round)",
            ours=our_rate,
            baseline_name="raw aiohttp streaming PUT",
            baseline=raw_rate,
            ratio=ratio,
            ratio_label="ours / raw",
            goal=">= 0.9",
            met=ratio >= 0.9 and clean,
            extra=extra,
        ),
        Figure(
            scenario=NAME,
            case=f"{size // MIB:,} MiB sparse file: peak resident memory added by one upload",
            metric="MiB added at peak (worst round)",
            ours=our_added,
            baseline_name="raw aiohttp streaming PUT",
            baseline=raw_added,
            ratio=our_added / (size / MIB),
            ratio_label="added / file size",
            goal="<= 50 MiB",
            met=our_added <= 50 and clean,
            extra={"file_mib": size // MIB},
        ),
    ]
