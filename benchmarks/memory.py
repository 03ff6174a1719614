"""Scenario 5, memory: peak bytes per tracked job, 10,000 and 100,000 in flight (tracemalloc).

The emulator runs in a **subprocess** (``overhead.emulator_process``), so nothing it allocates
is in this process and tracemalloc needs no filter: what it counts is the client, the manager,
the libraries they use (aiohttp, anyio, pydantic) and the benchmark's own list of handles.

Every phase opens a fresh client, warms it up (token, connections, first validations), then
starts tracemalloc, so one-off allocations are left out. The figure is the **peak** of traced
memory over the whole phase (``tracemalloc.get_traced_memory()[1]``: from the submit of the N
jobs until every one is in flight and has been read at least once, creates, list pages and
all), divided by the number of jobs; ``extra.bytes_per_job_at_end`` is what is still alive
at the end (``gc.collect()`` first).

* ours: ``JobManager.submit_many`` of N jobs, creates lifted on the emulator and the client so
  that all N tasks exist, tasks lasting far longer than the run so that all stay in flight.
  That covers the handle, its key and fingerprint, the manager's registries, the submitter's
  bookkeeping, the ownership logs, the poller's record and heap entries and the latest task
  object (``handle.last``). The N jobs share one request object (the caller's data, not ours).
  Goal: at most 4 KB per job at the peak, at both sizes.
* baseline (10,000): the naive way to follow the same N tasks with the same client, one
  asyncio task per job looping on ``await client.lip_sync.get(id)`` then ``asyncio.sleep``
  (measured while every task sleeps after its first read). It holds the same latest task
  object per job, so the ratio shows what the manager's bookkeeping costs beyond a coroutine
  per job.
* ``extra.attach_peak_bytes_per_job`` (10,000): the same N task ids given to
  ``JobManager.attach``, which skips the submitter: the cost of tracking alone.
* 100,000 tasks in flight: the emulator makes them at once (``POST /_emulator/tasks/seed``)
  and a fresh manager attaches them all; their peak is the second figure. Creating them
  through ``submit_many`` would take longer than the whole benchmark run (creates each open
  a connection, and the create ledger's bookkeeping grows with the creates of the last
  hours), while attach keeps every per-task cost of tracking: the handle, the poller's record
  and heap entries, the latest task object, the list pages in flight.

Limits are lifted by a tiny window (1,000 per millisecond) rather than a huge limit, so a
limiter's log of releases stays at 1,000 entries as it does at 10 with the real limits.
"""

from __future__ import annotations

import asyncio
import gc
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio

from chanjing_async import JobManager, LipSyncRequest, PollPolicy, Rate, RateLimits

from ._common import Figure, Options, emulator_settings, make_client
from .overhead import emulator_process

if TYPE_CHECKING:
    from collections.abc import Callable

    from chanjing_async import AsyncChanjingClient, JobHandle, LipSyncTask

NAME = "memory"

GOAL_BYTES = 4096
WARM_JOBS = 20
SETTLE = 900.0  # seconds a phase may take (10,000 creates take minutes on a busy 2-core box)
LIFTED = RateLimits(create=Rate(1000, 0.001), read=Rate(1000, 0.001))
PARKED = 3600.0  # seconds between reads once a job has been read: nothing moves while measured
# First read soon after the create, then none for an hour.
POLICY = PollPolicy(
    first=0.2,
    min_interval=PARKED,
    max_interval=PARKED,
    callback_interval=PARKED,
    growth=1.0,
    jitter=0.0,
)
_VOICE = "C-f2429d07554749839849497589199916"


async def _until(check: Callable[[], bool], timeout: float) -> None:
    """Wait for a condition on state that signals no event (handles, counters)."""
    with anyio.fail_after(timeout):
        while True:
            if check():
                return
            await anyio.sleep(0.1)


def _start() -> None:
    gc.collect()
    tracemalloc.start()


def _stop(jobs: int) -> tuple[float, float, list[tuple[str, int]]]:
    """Bytes per job still traced, peak bytes per job, and the top allocation sites."""
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    top = [
        (
            f"{stat.traceback[0].filename.split('site-packages/')[-1]}:{stat.traceback[0].lineno}",
            stat.size,
        )
        for stat in snapshot.statistics("lineno")[:8]
    ]
    return current / jobs, peak / jobs, top


async def _request(client: AsyncChanjingClient) -> LipSyncRequest:
    with tempfile.TemporaryDirectory(prefix="chanjing-bench-") as tmp:
        video = Path(tmp) / "talk.mp4"
        video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(4096))
        uploaded = await client.files.upload(video, service="lip_sync_video", poll_interval=0.01)
    return LipSyncRequest.tts(uploaded.id, text="你好", audio_man_id=_VOICE)


async def _ours(base_url: str, jobs: int) -> tuple[dict[str, Any], list[str]]:
    async with make_client(base_url, 1.0, limits=LIFTED) as client:
        request = await _request(client)
        async with JobManager(client, poll=POLICY) as manager:
            warm = await manager.submit_many([request] * WARM_JOBS)
            await _until(lambda: all(h.last is not None for h in warm), 30)
            _start()
            started = time.monotonic()
            handles = await manager.submit_many([request] * jobs)
            await _until(lambda: all(h.last is not None for h in handles), SETTLE)
            settle = time.monotonic() - started
            in_flight = sum(not h.done for h in handles)
            per_job, peak, top = _stop(jobs)
            stats = manager.stats
            ids = [str(h.task_id) for h in handles]
    return {
        "bytes_per_job": per_job,
        "peak_bytes_per_job": peak,
        "top": top,
        "in_flight": in_flight,
        "seconds": settle,
        "creates": stats.submit.sent,
        "list_calls": stats.poll.list_calls,
        "detail_calls": stats.poll.detail_calls,
    }, ids


async def _attach(base_url: str, ids: list[str]) -> dict[str, Any]:
    async with make_client(base_url, 1.0, limits=LIFTED) as client:
        async with JobManager(client, poll=POLICY) as manager:
            warm = [await manager.attach(task_id) for task_id in ids[:WARM_JOBS]]
            await _until(lambda: all(h.last is not None for h in warm), 30)
            fresh = [task_id.encode().decode() for task_id in ids[WARM_JOBS:]]
            _start()
            started = time.monotonic()
            handles: list[JobHandle] = [await manager.attach(task_id) for task_id in fresh]
            await _until(lambda: all(h.last is not None for h in handles), SETTLE)
            seconds = time.monotonic() - started
            per_job, peak, top = _stop(len(handles))
    return {"bytes_per_job": per_job, "peak_bytes_per_job": peak, "top": top, "seconds": seconds}


async def _naive(base_url: str, ids: list[str]) -> dict[str, Any]:
    """One asyncio task per job: read it, sleep, read again ... (measured while asleep).

    Plain ``asyncio.create_task``, the leanest way to run a coroutine per job: an anyio task
    group costs about 1 KB more per task (each task gets a handle and a finished event).
    """
    read = 0

    async def follow(client: AsyncChanjingClient, task_id: str) -> LipSyncTask:
        nonlocal read
        while True:
            task = await client.lip_sync.get(task_id)
            read += 1
            if task.is_terminal:
                return task
            await asyncio.sleep(PARKED)

    async with make_client(base_url, 1.0, limits=LIFTED) as client:
        # Warm-up: the token, and as many pooled connections as the burst below will open.
        async with anyio.create_task_group() as group:
            for n in range(100):
                group.start_soon(client.lip_sync.get, ids[n % len(ids)])
        fresh = [task_id.encode().decode() for task_id in ids]  # ids received from elsewhere
        _start()
        tasks = [asyncio.create_task(follow(client, task_id)) for task_id in fresh]
        try:
            await _until(lambda: read >= len(fresh), SETTLE)
            per_job, peak, top = _stop(len(fresh))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return {"bytes_per_job": per_job, "peak_bytes_per_job": peak, "top": top}


async def _seeded(base_url: str, count: int) -> list[str]:
    """Ids of ``count`` tasks the emulator makes at once (``POST /_emulator/tasks/seed``)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base_url}/_emulator/tasks/seed", json={"count": count}) as response,
    ):
        body = await response.json()
    ids: list[str] = body["ids"]
    return ids


def _sites(top: list[tuple[str, int]], jobs: int) -> list[list[object]]:
    return [[site, round(size / jobs)] for site, size in top]


def _submitted(
    jobs: int, ours: dict[str, Any], naive: dict[str, Any], attach: dict[str, Any]
) -> Figure:
    peak = ours["peak_bytes_per_job"]
    return Figure(
        scenario=NAME,
        case=(
            f"{jobs:,} jobs in flight through JobManager.submit_many, each read once,"
            " emulator in a subprocess"
        ),
        metric="peak bytes per tracked job",
        ours=peak,
        baseline_name="an asyncio task per job looping on lip_sync.get (peak)",
        baseline=naive["peak_bytes_per_job"],
        ratio=peak / naive["peak_bytes_per_job"],
        ratio_label="ours / baseline",
        goal="<= 4 KB (4,096 B) at the peak",
        met=peak <= GOAL_BYTES and ours["in_flight"] == jobs,
        extra={
            "emulator": "subprocess",
            "jobs": jobs,
            "in_flight_when_measured": ours["in_flight"],
            "submit_to_all_read_seconds": round(ours["seconds"], 1),
            "creates": ours["creates"],
            "list_calls": ours["list_calls"],
            "detail_calls": ours["detail_calls"],
            "bytes_per_job_at_end": round(ours["bytes_per_job"]),
            "top_sites": _sites(ours["top"], jobs),
            "baseline_bytes_per_job_at_end": round(naive["bytes_per_job"]),
            "baseline_top_sites": _sites(naive["top"], jobs),
            "attach_peak_bytes_per_job": round(attach["peak_bytes_per_job"]),
            "attach_bytes_per_job_at_end": round(attach["bytes_per_job"]),
            "attach_top_sites": _sites(attach["top"], jobs),
        },
    )


def _attached(jobs: int, attach: dict[str, Any]) -> Figure:
    peak = attach["peak_bytes_per_job"]
    return Figure(
        scenario=NAME,
        case=(
            f"{jobs:,} tasks in flight through JobManager.attach, each read once, emulator in a"
            " subprocess (the tasks made at once by POST /_emulator/tasks/seed)"
        ),
        metric="peak bytes per tracked job",
        ours=peak,
        baseline_name="the goal",
        baseline=GOAL_BYTES,
        ratio=peak / GOAL_BYTES,
        ratio_label="ours / goal",
        goal="<= 4 KB (4,096 B) at the peak",
        met=peak <= GOAL_BYTES,
        extra={
            "emulator": "subprocess",
            "jobs": jobs,
            "attach_to_all_read_seconds": round(attach["seconds"], 1),
            "bytes_per_job_at_end": round(attach["bytes_per_job"]),
            "top_sites": _sites(attach["top"], jobs),
        },
    )


async def run(options: Options) -> list[Figure]:
    submitted, attached = (500, 500) if options.smoke else (10_000, 100_000)
    settings = emulator_settings(
        1.0,
        options.seed,
        latency=False,
        create_limit=1_000_000_000,
        read_limit=1_000_000_000,
        task_seconds=1e7,  # every task stays in flight
        file_ready_seconds=0.0,
    )
    async with emulator_process(settings) as base_url:
        ours, ids = await _ours(base_url, submitted)
        naive = await _naive(base_url, ids)
        attach = await _attach(base_url, ids)
    # A fresh emulator: the larger run neither lists nor tracks the smaller one's tasks.
    async with emulator_process(settings) as base_url:
        many = await _attach(base_url, await _seeded(base_url, attached + WARM_JOBS))
    return [_submitted(submitted, ours, naive, attach), _attached(attached, many)]
