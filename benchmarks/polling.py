"""Scenario 2, polling cost: read calls per completed job, our poller against a naive loop.

With N tasks in flight (10, 100, 1,000 and 5,000), each task lasting ``TASK_SECONDS`` of real
time, two runs on fresh emulators:

* **ours**: a JobManager tracks the N jobs with the default ``PollPolicy`` (scaled): list pages
  of 100, intervals growing from 2 s to 30 s and pulled in to each task's estimated end. The
  emulator and the client keep the documented read limits (10 detail and 10 list calls a
  second on the server, one shared 10/s budget in the client); random latency is on.
* **baseline**: the naive loop, every ``INTERVAL`` (30 s, our longest interval, so the baseline
  never reads more often than we do at our slowest) one ``client.lip_sync.get(id)`` per
  unfinished task, all of a pass at once. It is measured at its own cadence, so its read
  limits are lifted on both sides: with our limiter (10/s) it could not keep the cadence
  beyond 300 tasks, reading each task less often and seeing its end later, and without it the
  server's 40001s would keep it from seeing ends at all; neither is the issue's "one detail
  call per job per interval". For the same reason it runs without random latency: with a
  real round trip of about half a second and the client's 100 connections, 5,000 reads do not
  fit in 30 s. (``extra.baseline_longest_pass_intervals`` stays below 1 when the cadence
  held.) The 40001s it would get are counted by replaying its reads, at the moments they were
  sent, through the emulator's own window rule for the documented limit (sliding, rejected
  calls counted): one pass is a burst, and only 10 of it get through each second.

A third case runs ours twice with 2,000 tasks in flight and the client's default retry policy
(two retries, backoff scaled): once with healthy lists, once with 30 % of list calls answered
50000 (``FaultRate("list", "code", 0.3)``). A failed page is read again rather than sending the
rest of the pass to ``detail``; the goal is at most 1.5x the healthy reads per job, and no
read 40001.

In every run the create limit is lifted on both sides, so the N tasks exist within moments.
Read calls are the emulator's own counts (list plus detail requests, retries included); a job
counts as completed once the poller (ours) or the loop (baseline) has seen it end. The lag is
the time from the emulator ending a task to that moment, in real seconds.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from chanjing_async import JobManager, LipSyncRequest, PollPolicy, Rate, RateLimits, RetryPolicy
from chanjing_async.emulator import EmulatorServer, FaultRate
from chanjing_async.emulator._ratelimit import WindowLimiter

from ._common import Figure, Options, emulator_settings, make_client, percentile

if TYPE_CHECKING:
    from chanjing_async import AsyncChanjingClient
    from chanjing_async.emulator import EmulatorSettings, EmulatorState

NAME = "polling cost"

TASK_SECONDS = 600.0  # real seconds from create to end: 20 intervals of the baseline
INTERVAL = 30.0  # the baseline's interval, real seconds (PollPolicy().max_interval)
GOAL_SIZE = 1000
GOAL_RATIO = 50.0
# Time scales per size, ours and the baseline's. The baseline must fit one pass of N reads
# (about 4,500 a wall second on two cores shared with the emulator) into one interval of wall
# time, INTERVAL / scale; our poller reads far less and can run faster.
SCALES = {10: (120.0, 120.0), 100: (120.0, 120.0), 1000: (60.0, 60.0), 5000: (20.0, 15.0)}
SMOKE_SCALES = {10: (600.0, 600.0)}
LIFTED = 1_000_000  # an emulator read limit nothing reaches
# A client limit nothing reaches, whose log of releases stays short (1,000 per millisecond).
LIFTED_READS = Rate(1000, 0.001, 0.0)
READ_LIMIT, READ_WINDOW = 10, 1.0  # documented: 10 detail (and 10 list) calls a second
# The failing-list case: tasks in flight, time scale, share of list calls answered 50000.
FAILING_SIZE, FAILING_SCALE, SMOKE_FAILING = 2000, 60.0, (100, 600.0)
LIST_FAILURES = 0.3
FAILING_GOAL = 1.5
VOICE = "C-f2429d07554749839849497589199916"


@dataclass
class _Run:
    """What one run measured."""

    list_calls: int
    detail_calls: int
    rejected: int  # read 40001s (the baseline's: replayed against the documented limit)
    completed: int
    lag: list[float]  # real seconds from each task's end to its job being seen done
    wall: float
    scale: float
    longest_pass: float = 0.0  # the baseline's longest pass, in intervals (above 1: it slipped)

    @property
    def reads(self) -> int:
        return self.list_calls + self.detail_calls

    @property
    def per_job(self) -> float:
        return self.reads / self.completed if self.completed else float("inf")


async def _request(client: AsyncChanjingClient, folder: Path) -> LipSyncRequest:
    path = folder / "face.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(512))
    video = await client.files.upload(path, service="lip_sync_video", poll_interval=0.01)
    return LipSyncRequest.tts(video.id, text="你好", audio_man_id=VOICE)


def _reads(state: EmulatorState) -> tuple[int, int, int]:
    """List calls, detail calls and read 40001s, as the emulator counted them."""
    endpoints = state.stats()["endpoints"]
    listing, detail = endpoints["list"], endpoints["detail"]
    rejected = listing["rejected_40001"] + detail["rejected_40001"]
    return listing["requests"], detail["requests"], rejected


def _settings(
    n: int, scale: float, seed: int, *, baseline: bool, fault_rates: tuple[FaultRate, ...] = ()
) -> EmulatorSettings:
    return emulator_settings(
        scale,
        seed,
        latency=not baseline,
        task_seconds=TASK_SECONDS,
        create_limit=n,
        read_limit=LIFTED if baseline else READ_LIMIT,
        fault_rates=fault_rates,
    )


async def _ours(
    n: int,
    scale: float,
    seed: int,
    folder: Path,
    *,
    fault_rates: tuple[FaultRate, ...] = (),
    retry: RetryPolicy | None = None,
) -> _Run:
    limits = RateLimits(create=Rate(n, 60.0, 1.0)).scaled(scale)
    settings = _settings(n, scale, seed, baseline=False, fault_rates=fault_rates)
    client_options = {} if retry is None else {"retry": retry}
    async with EmulatorServer(settings) as emulator:
        async with make_client(emulator.base_url, scale, limits=limits, **client_options) as client:
            request = await _request(client, folder)
            started = time.monotonic()
            async with JobManager(client, poll=PollPolicy().scaled(scale)) as jobs:
                handles = await jobs.submit_many([request] * n)
                seen: dict[str, float] = {}
                with anyio.fail_after(3 * TASK_SECONDS / scale + 60):
                    async for handle in jobs.as_completed(handles):
                        seen[str(handle.task_id)] = time.monotonic()
            wall = time.monotonic() - started
        list_calls, detail_calls, rejected = _reads(emulator.state)
        tasks = emulator.state.tasks
        lag = [(at - tasks[task_id].ends_at) * scale for task_id, at in seen.items()]
    completed = sum(handle.error is None for handle in handles)
    return _Run(list_calls, detail_calls, rejected, completed, lag, wall, scale)


def _replayed_40001s(sent: list[float], scale: float) -> int:
    """How many of these reads the documented limit would have answered with 40001."""
    window = WindowLimiter(READ_LIMIT, READ_WINDOW / scale, mode="sliding", count_rejected=True)
    return sum(not window.admit(at) for at in sorted(sent))


async def _baseline(n: int, scale: float, seed: int, folder: Path) -> _Run:
    limits = RateLimits(create=Rate(n, 60.0, 1.0)).scaled(scale)
    limits = dataclasses.replace(limits, read=LIFTED_READS)
    interval = INTERVAL / scale
    async with EmulatorServer(_settings(n, scale, seed, baseline=True)) as emulator:
        async with make_client(emulator.base_url, scale, limits=limits) as client:
            request = await _request(client, folder)
            started = time.monotonic()
            ids: list[str] = []

            async def create() -> None:
                ids.append(await client.lip_sync.create(request))

            async with anyio.create_task_group() as group:
                for _ in range(n):
                    group.start_soon(create)
            unfinished = set(ids)
            seen: dict[str, float] = {}
            sent: list[float] = []
            passes: list[float] = []

            async def read(task_id: str) -> None:
                sent.append(time.monotonic())
                task = await client.lip_sync.get(task_id)
                if task.is_terminal:
                    unfinished.discard(task_id)
                    seen[task_id] = time.monotonic()

            tick = time.monotonic()
            with anyio.fail_after(3 * TASK_SECONDS / scale + 60):
                while unfinished:
                    tick += interval
                    await anyio.sleep(max(0.0, tick - time.monotonic()))
                    begun = time.monotonic()
                    async with anyio.create_task_group() as group:
                        for task_id in list(unfinished):
                            group.start_soon(read, task_id)
                    passes.append(time.monotonic() - begun)
            wall = time.monotonic() - started
        list_calls, detail_calls, _ = _reads(emulator.state)
        tasks = emulator.state.tasks
        lag = [(at - tasks[task_id].ends_at) * scale for task_id, at in seen.items()]
    rejected = _replayed_40001s(sent, scale)
    longest = max(passes) / interval
    return _Run(list_calls, detail_calls, rejected, len(seen), lag, wall, scale, longest)


def _figure(n: int, ours: _Run, baseline: _Run) -> Figure:
    ratio = baseline.per_job / ours.per_job
    at_goal = n == GOAL_SIZE
    return Figure(
        scenario=NAME,
        case=f"{n:,} tasks in flight, {TASK_SECONDS:.0f} s each",
        metric="read calls per completed job",
        ours=ours.per_job,
        baseline_name=f"one detail per job every {INTERVAL:.0f} s",
        baseline=baseline.per_job,
        ratio=ratio,
        ratio_label="baseline / ours",
        goal=f">= {GOAL_RATIO:.0f}x at {GOAL_SIZE:,}" if at_goal else "report",
        met=ratio >= GOAL_RATIO if at_goal else True,
        extra={
            "tasks": n,
            "ours_random_latency": True,
            "ours_list_calls": ours.list_calls,
            "ours_detail_calls": ours.detail_calls,
            "ours_read_40001": ours.rejected,
            "ours_completed": ours.completed,
            "ours_lag_p50_s": round(percentile(ours.lag, 0.5), 1),
            "ours_lag_p95_s": round(percentile(ours.lag, 0.95), 1),
            "ours_time_scale": ours.scale,
            "ours_wall_s": round(ours.wall, 1),
            "baseline_random_latency": False,
            "baseline_detail_calls": baseline.detail_calls,
            "baseline_read_40001_at_documented_limit": baseline.rejected,
            "baseline_offered_reads_per_s": round(n / INTERVAL, 1),
            "baseline_completed": baseline.completed,
            "baseline_lag_p50_s": round(percentile(baseline.lag, 0.5), 1),
            "baseline_lag_p95_s": round(percentile(baseline.lag, 0.95), 1),
            "baseline_longest_pass_intervals": round(baseline.longest_pass, 2),
            "baseline_time_scale": baseline.scale,
            "baseline_wall_s": round(baseline.wall, 1),
        },
    )


async def _failing_lists(options: Options, folder: Path) -> Figure:
    """Ours with healthy lists against ours with 30 % of list calls answered 50000."""
    n, scale = SMOKE_FAILING if options.smoke else (FAILING_SIZE, FAILING_SCALE)
    default = RetryPolicy()
    retry = RetryPolicy(
        max_retries=default.max_retries,
        initial=default.initial / scale,
        maximum=default.maximum / scale,
    )
    healthy = await _ours(n, scale, options.seed, folder, retry=retry)
    failing = await _ours(
        n,
        scale,
        options.seed,
        folder,
        retry=retry,
        fault_rates=(FaultRate("list", "code", LIST_FAILURES, code=50000),),
    )
    ratio = failing.per_job / healthy.per_job
    return Figure(
        scenario=NAME,
        case=f"{n:,} tasks in flight, {LIST_FAILURES:.0%} of list calls answer 50000",
        metric="read calls per completed job",
        ours=failing.per_job,
        baseline_name="the same with healthy lists",
        baseline=healthy.per_job,
        ratio=ratio,
        ratio_label="failing / healthy",
        goal=f"<= {FAILING_GOAL:g}x healthy, 0 read 40001",
        met=ratio <= FAILING_GOAL and failing.rejected == 0 and failing.completed == n,
        extra={
            "tasks": n,
            "client_retries": retry.max_retries,
            "failing_list_calls": failing.list_calls,
            "failing_detail_calls": failing.detail_calls,
            "failing_read_40001": failing.rejected,
            "failing_completed": failing.completed,
            "failing_lag_p95_s": round(percentile(failing.lag, 0.95), 1),
            "healthy_list_calls": healthy.list_calls,
            "healthy_detail_calls": healthy.detail_calls,
            "healthy_read_40001": healthy.rejected,
            "healthy_completed": healthy.completed,
            "healthy_lag_p95_s": round(percentile(healthy.lag, 0.95), 1),
            "time_scale": scale,
        },
    )


async def run(options: Options) -> list[Figure]:
    scales = SMOKE_SCALES if options.smoke else SCALES
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as folder:
        for n, (ours_scale, baseline_scale) in scales.items():
            ours = await _ours(n, ours_scale, options.seed, Path(folder))
            baseline = await _baseline(n, baseline_scale, options.seed, Path(folder))
            figures.append(_figure(n, ours, baseline))
        figures.append(await _failing_lists(options, Path(folder)))
    return figures
