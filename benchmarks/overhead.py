"""Scenario 4, client overhead: detail calls per second through the client vs raw aiohttp.

Both sides read the same task ids from the same emulator, with the same number of concurrent
workers and the same number of calls. The emulator runs in a **subprocess** (see
:func:`emulator_process`), so client and server share neither an event loop nor a GIL: on a
2-core machine each gets a core. It adds no latency and its read limit is lifted; the
client's read limiter is lifted too (a million a second), so it admits every call at once but
still does its work.

* raw: one ``aiohttp.ClientSession``, ``GET /open/v1/video_lip_sync/detail?id=...`` with the
  ``access_token`` header (one token fetched before timing), ``json.loads`` of the envelope
  and a check of its code;
* ours: ``client.lip_sync.get(id)``: token provider, sliding-window limiter slot, envelope and
  ``LipSyncTask`` validation, error mapping.

The sides alternate (raw, ours, ours, raw, ...) in many short rounds, each after a
``gc.collect()``; each side's best round is the headline, as other work on a shared machine
only ever slows a round down (the medians are kept in ``extra``). The client process's CPU
time per call is reported too (``time.process_time``; the emulator is another process): when
the emulator is the bottleneck the rates converge, and the CPU time still shows what the SDK
costs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import itertools
import json
import statistics
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

from chanjing_async import LipSyncRequest, Rate, RateLimits

from ._common import APP_ID, SECRET_KEY, Figure, Options, emulator_settings, make_client

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Coroutine

    from chanjing_async import AsyncChanjingClient
    from chanjing_async.emulator import EmulatorSettings

NAME = "client overhead"

CONCURRENCY = 32
TASKS = 8  # distinct task ids read in turn (within the default create limit of 10 a minute)
# Lifted client read limit: never binds at a few thousand calls a second, yet the limiter
# still runs (its log of releases stays below the limit, so it is never trimmed).
LIFTED_READS = RateLimits(read=Rate(1_000_000, 1.0))
_VOICE = "C-f2429d07554749839849497589199916"
_DETAIL = "/open/v1/video_lip_sync/detail"
_ROOT = Path(__file__).resolve().parent.parent  # the child imports chanjing_async from here

# The emulator's child process: settings as JSON on stdin, the base URL on stdout once ready.
_SERVE = """
import asyncio, json, sys
from chanjing_async.emulator import EmulatorSettings, serve
fields = {k: tuple(v) if isinstance(v, list) else v for k, v in json.load(sys.stdin).items()}
asyncio.run(serve(EmulatorSettings(**fields), "127.0.0.1", 0,
                  ready=lambda url: print(url, flush=True)))
"""


@asynccontextmanager
async def emulator_process(settings: EmulatorSettings) -> AsyncIterator[str]:
    """Serve ``settings`` from an emulator in a child process; yield its base URL.

    ``python -m chanjing_async.emulator`` has no flags for the limits, so the child builds the
    settings from JSON itself. Its counters are at ``GET <base URL>/_emulator/stats``.
    """
    async with await anyio.open_process(
        [sys.executable, "-c", _SERVE], stderr=None, cwd=_ROOT
    ) as process:
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            await process.stdin.send(json.dumps(dataclasses.asdict(settings)).encode())
            await process.stdin.aclose()
            line = await BufferedByteReceiveStream(process.stdout).receive_until(b"\n", 4096)
            if not line.startswith(b"http"):
                raise RuntimeError(f"the emulator process did not start: {line!r}")
            yield line.decode().strip()
        finally:
            with contextlib.suppress(ProcessLookupError):  # it may have died on its own
                process.terminate()
            await process.wait()


async def emulator_stats(base_url: str) -> dict[str, Any]:
    """The emulator's counters (``state.stats()``) over HTTP."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base_url}/_emulator/stats") as response,
    ):
        stats: dict[str, Any] = await response.json()
    return stats


async def make_tasks(client: AsyncChanjingClient, count: int) -> list[str]:
    """Upload a tiny MP4 and create ``count`` tasks from it; return their ids."""
    with tempfile.TemporaryDirectory(prefix="chanjing-bench-") as tmp:
        video = Path(tmp) / "talk.mp4"
        video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(4096))
        uploaded = await client.files.upload(video, service="lip_sync_video", poll_interval=0.01)
    request = LipSyncRequest.tts(uploaded.id, text="你好", audio_man_id=_VOICE)
    return [await client.lip_sync.create(request) for _ in range(count)]


@dataclass(frozen=True)
class Round:
    """One timed run of one side."""

    side: str
    calls: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    @property
    def cpu_us_per_call(self) -> float:
        return self.cpu_seconds / self.calls * 1e6


async def _timed(
    side: str,
    call: Callable[[str], Coroutine[Any, Any, object]],
    ids: list[str],
    calls: int,
) -> Round:
    """Warm up (one call per worker: connections, token), then time ``calls`` calls."""
    async with anyio.create_task_group() as group:
        for n in range(CONCURRENCY):
            group.start_soon(call, ids[n % len(ids)])
    counter = itertools.count()
    gc.collect()

    async def worker() -> None:
        while (n := next(counter)) < calls:
            await call(ids[n % len(ids)])

    started, cpu = time.perf_counter(), time.process_time()
    async with anyio.create_task_group() as group:
        for _ in range(CONCURRENCY):
            group.start_soon(worker)
    return Round(side, calls, time.perf_counter() - started, time.process_time() - cpu)


async def _raw_token(session: aiohttp.ClientSession, base_url: str) -> str:
    body = {"app_id": APP_ID, "secret_key": SECRET_KEY}
    async with session.post(f"{base_url}/open/v1/access_token", json=body) as response:
        envelope = json.loads(await response.read())
    if envelope["code"] != 0:
        raise RuntimeError(f"token refused: {envelope['code']} {envelope['msg']}")
    token: str = envelope["data"]["access_token"]
    return token


async def raw_round(base_url: str, ids: list[str], calls: int) -> Round:
    """The baseline: plain aiohttp and ``json.loads``, nothing else."""
    async with aiohttp.ClientSession() as session:
        headers = {"access_token": await _raw_token(session, base_url)}
        url = base_url + _DETAIL

        async def detail(task_id: str) -> Any:
            async with session.get(url, params={"id": task_id}, headers=headers) as response:
                body = await response.read()
            envelope = json.loads(body)
            if envelope["code"] != 0:
                raise RuntimeError(f"detail failed: {envelope['code']} {envelope['msg']}")
            return envelope["data"]

        return await _timed("raw", detail, ids, calls)


async def our_round(base_url: str, ids: list[str], calls: int) -> Round:
    """``client.lip_sync.get`` on a fresh client (its token is fetched during the warm-up)."""
    async with make_client(base_url, 1.0, limits=LIFTED_READS) as client:
        return await _timed("ours", client.lip_sync.get, ids, calls)


async def run(options: Options) -> list[Figure]:
    calls, pairs = (1000, 3) if options.smoke else (5000, 10)
    settings = emulator_settings(
        1.0,
        options.seed,
        latency=False,
        read_limit=1_000_000_000,
        task_seconds=1e7,  # every task stays in flight: all reads answer the same shape
        file_ready_seconds=0.0,
    )
    async with emulator_process(settings) as base_url:
        async with make_client(base_url, 1.0) as client:
            ids = await make_tasks(client, TASKS)
        rounds: list[Round] = []
        for pair in range(pairs):
            # raw, ours, ours, raw, raw, ours ...: neither side always goes first.
            order = (raw_round, our_round) if pair % 2 == 0 else (our_round, raw_round)
            for side in order:
                rounds.append(await side(base_url, ids, calls))
        stats = await emulator_stats(base_url)
    detail = stats["endpoints"]["detail"]
    raw = [r for r in rounds if r.side == "raw"]
    ours = [r for r in rounds if r.side == "ours"]
    raw_rate = max(r.rate for r in raw)
    our_rate = max(r.rate for r in ours)
    ratio = our_rate / raw_rate
    raw_median = statistics.median(r.rate for r in raw)
    our_median = statistics.median(r.rate for r in ours)
    raw_cpu = min(r.cpu_us_per_call for r in raw)
    our_cpu = min(r.cpu_us_per_call for r in ours)
    clean = detail["rejected_40001"] == 0 and detail["errors"] == 0
    return [
        Figure(
            scenario=NAME,
            case=(
                f"{calls} detail calls x {pairs} rounds per side, {CONCURRENCY} workers,"
                " emulator in a subprocess, no latency, limits lifted"
            ),
            metric="detail calls per second (best round)",
            ours=our_rate,
            baseline_name="raw aiohttp + json.loads",
            baseline=raw_rate,
            ratio=ratio,
            ratio_label="ours / raw",
            goal=">= 0.8",
            met=ratio >= 0.8 and clean,
            extra={
                "emulator": "subprocess",
                "concurrency": CONCURRENCY,
                "calls_per_round": calls,
                "rounds_per_side": pairs,
                "ours_rates": [round(r.rate) for r in ours],
                "raw_rates": [round(r.rate) for r in raw],
                "median_ratio": round(our_median / raw_median, 3),
                "ours_cpu_us_per_call": round(our_cpu, 1),
                "raw_cpu_us_per_call": round(raw_cpu, 1),
                "cpu_ratio_raw_over_ours": round(raw_cpu / our_cpu, 3),
                "emulator_detail_requests": detail["requests"],
                "emulator_detail_rejected_40001": detail["rejected_40001"],
                "emulator_detail_errors": detail["errors"],
            },
        )
    ]
