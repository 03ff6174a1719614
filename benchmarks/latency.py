"""Scenario 3, completion latency: from the emulator ending a task to ``wait()`` returning.

The emulator and the SDK share one process and one clock (``time.monotonic``): a task ends at
its record's ``ends_at`` (its create plus ``task_seconds``, scaled), and a job's lag is the
moment its ``handle.wait()`` returned minus that. Two runs of ``JOBS`` jobs of
``TASK_SECONDS``, created at the documented 10 a minute (so they end ten at a time, as a batch
does), each on a fresh emulator:

* **callbacks**: ``JobManager(callbacks=CallbackReceiver())`` on loopback. The emulator POSTs
  each task's callback when it ends; the receiver checks it, the manager confirms it with one
  ``detail`` read, the handle resolves. This lag is the SDK's own work plus loopback, so it is
  in wall milliseconds, and this emulator runs **without** random latency: scaled down by the
  time scale, it would add a sliver of a real round trip, neither the SDK's cost nor the real
  network's (on the live API add one callback delivery and one detail round trip).
* **polling only**: the same jobs, no receiver, the default ``PollPolicy`` (scaled), random
  latency on. Its lag follows the scaled clock, so it is in real-scale milliseconds (wall times
  the time scale). The bound is the interval the policy means to use at a task's end plus one
  read round trip: the poller pulls the next read in to the task's estimated end and, if the
  task is still running then, reads it again ``min_interval`` (2 s, +10 % jitter at most)
  later, so ``min_interval * (1 + jitter)`` plus the p95 of a detail round trip measured on the
  same emulator afterwards. ``extra`` shows how far the estimated end was off and how long the
  last interval really was.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from chanjing_async import CallbackReceiver, JobManager, JobStage, LipSyncRequest, PollPolicy
from chanjing_async.emulator import EmulatorServer

from ._common import Figure, Options, emulator_settings, make_client, percentile

if TYPE_CHECKING:
    from chanjing_async import AsyncChanjingClient, JobHandle

NAME = "completion latency"

JOBS, SMOKE_JOBS = 100, 5
TASK_SECONDS = 300.0  # real seconds from create to end
TIME_SCALE, SMOKE_SCALE = 60.0, 240.0
RTT_SAMPLES = 50
CALLBACK_GOAL_MS = 50.0
VOICE = "C-f2429d07554749839849497589199916"


@dataclass
class _Run:
    """One run: per job the lag, and (polling) the last reads before the end; wall seconds."""

    lag: list[float] = field(default_factory=list)  # wall seconds, end to wait() returning
    rtt: list[float] = field(default_factory=list)  # wall seconds of a detail call
    # Per job: how late the estimated end (last read while generating + eta) was, and the
    # interval from that read to the one that saw the end; wall seconds.
    eta_error: list[float] = field(default_factory=list)
    last_interval: list[float] = field(default_factory=list)
    wall: float = 0.0
    reads: tuple[int, int] = (0, 0)  # list and detail calls of the poller
    callbacks: dict[str, int] = field(default_factory=dict)


async def _request(client: AsyncChanjingClient, folder: Path) -> LipSyncRequest:
    path = folder / "face.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(512))
    video = await client.files.upload(path, service="lip_sync_video", poll_interval=0.01)
    return LipSyncRequest.tts(video.id, text="你好", audio_man_id=VOICE)


class _Reads:
    """The last change of each job while generating (time, eta), and when it ended."""

    def __init__(self) -> None:
        self.generating: dict[str, tuple[float, float | None]] = {}
        self.ended: dict[str, float] = {}

    def watch(self, handle: JobHandle) -> None:
        now = time.monotonic()
        if handle.done:
            self.ended[handle.key] = now
        elif handle.stage is JobStage.GENERATING:
            self.generating[handle.key] = (now, handle.eta)


async def _measure(jobs: int, scale: float, seed: int, folder: Path, *, callbacks: bool) -> _Run:
    settings = emulator_settings(scale, seed, latency=not callbacks, task_seconds=TASK_SECONDS)
    run = _Run()
    reads = _Reads()
    returned: dict[str, float] = {}
    async with EmulatorServer(settings) as emulator:
        async with make_client(emulator.base_url, scale) as client:
            request = await _request(client, folder)
            receiver = CallbackReceiver() if callbacks else None
            started = time.monotonic()
            policy = PollPolicy().scaled(scale)
            async with JobManager(client, poll=policy, callbacks=receiver) as manager:
                handles = await manager.submit_many([request] * jobs)

                async def wait(handle: JobHandle) -> None:
                    handle._set_watcher(reads.watch)
                    await handle.wait()
                    returned[handle.key] = time.monotonic()

                # Creates take jobs / 10 windows of 61 s; then the tasks, with room to spare.
                limit = ((jobs / 10 + 2) * 61 + 3 * TASK_SECONDS) / scale + 30
                with anyio.fail_after(limit):
                    async with anyio.create_task_group() as group:
                        for handle in handles:
                            group.start_soon(wait, handle)
                stats = manager.stats
            run.wall = time.monotonic() - started
            # The read round trip on this emulator: one detail call at a time, spaced so that
            # none waits for the limiter.
            for _ in range(RTT_SAMPLES):
                sent = time.monotonic()
                await client.lip_sync.get(str(handles[0].task_id))
                run.rtt.append(time.monotonic() - sent)
                await anyio.sleep(0.2 / scale)
        tasks = emulator.state.tasks
    for handle in handles:
        ends_at = tasks[str(handle.task_id)].ends_at
        run.lag.append(returned[handle.key] - ends_at)
        last = reads.generating.get(handle.key)
        if last is not None and last[1] is not None:
            run.eta_error.append(last[0] + last[1] - ends_at)
            run.last_interval.append(reads.ended[handle.key] - last[0])
    run.reads = (stats.poll.list_calls, stats.poll.detail_calls)
    run.callbacks = dict(stats.callbacks)
    return run


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _real(values: list[float], scale: float) -> list[float]:
    return [value * scale for value in values]


def _seconds(values: list[float], q: float) -> float | None:
    """The q-quantile of ``values`` rounded for the report; None when there are none."""
    return round(percentile(values, q), 2) if values else None


def _figures(jobs: int, scale: float, called: _Run, polled: _Run) -> list[Figure]:
    policy = PollPolicy()
    interval = policy.min_interval * (1 + policy.jitter)
    # Callback lags in wall seconds; poll lags and round trips in real-scale seconds.
    callback_p95 = percentile(called.lag, 0.95)
    poll_lag = _real(polled.lag, scale)
    poll_p95 = percentile(poll_lag, 0.95)
    rtt_p95 = percentile(_real(polled.rtt, scale), 0.95)
    bound = interval + rtt_p95
    case = f"{jobs} jobs of {TASK_SECONDS:.0f} s, 10 created a minute"
    callback = Figure(
        scenario=NAME,
        case=f"{case}, callbacks on loopback",
        metric="p95 ms, task end to wait() return (callbacks: wall; polling: real-scale)",
        ours=_ms(callback_p95),
        baseline_name="polling only (default policy), p95",
        baseline=_ms(poll_p95),
        ratio=poll_p95 / callback_p95,
        ratio_label="polling / callbacks",
        goal=f"callback p95 <= {CALLBACK_GOAL_MS:.0f} ms",
        met=callback_p95 * 1000 <= CALLBACK_GOAL_MS,
        extra={
            "jobs": jobs,
            "time_scale": scale,
            "random_latency": False,
            "lag_p50_ms": _ms(percentile(called.lag, 0.5)),
            "lag_p95_ms": _ms(callback_p95),
            "lag_max_ms": _ms(max(called.lag)),
            "detail_rtt_p50_ms": _ms(percentile(called.rtt, 0.5)),
            "callbacks": called.callbacks,
            "poller_list_calls": called.reads[0],
            "poller_detail_calls": called.reads[1],
            "wall_s": round(called.wall, 1),
        },
    )
    polling = Figure(
        scenario=NAME,
        case=f"{case}, polling only (default PollPolicy)",
        metric="p95 ms, task end to wait() return (real-scale)",
        ours=_ms(poll_p95),
        baseline_name=f"{interval:g} s interval + detail RTT p95",
        baseline=_ms(bound),
        ratio=poll_p95 / bound,
        ratio_label="ours / bound",
        goal="p95 <= one interval + one round trip",
        met=poll_p95 <= bound,
        extra={
            "jobs": jobs,
            "time_scale": scale,
            "random_latency": True,
            "interval_s": round(interval, 3),
            "lag_p50_ms": _ms(percentile(poll_lag, 0.5)),
            "lag_p95_ms": _ms(poll_p95),
            "lag_max_ms": _ms(max(poll_lag)),
            "detail_rtt_p95_ms": _ms(rtt_p95),
            # How late the poller's estimate of the end was (its last read while generating
            # plus the eta it computed, minus the real end), and the interval from that read
            # to the one that saw the end: p50 / p95, real seconds.
            "eta_late_p50_s": _seconds(_real(polled.eta_error, scale), 0.5),
            "eta_late_p95_s": _seconds(_real(polled.eta_error, scale), 0.95),
            "last_interval_p50_s": _seconds(_real(polled.last_interval, scale), 0.5),
            "last_interval_p95_s": _seconds(_real(polled.last_interval, scale), 0.95),
            "poller_list_calls": polled.reads[0],
            "poller_detail_calls": polled.reads[1],
            "wall_s": round(polled.wall, 1),
        },
    )
    return [callback, polling]


async def run(options: Options) -> list[Figure]:
    jobs, scale = (SMOKE_JOBS, SMOKE_SCALE) if options.smoke else (JOBS, TIME_SCALE)
    with tempfile.TemporaryDirectory() as folder:
        called = await _measure(jobs, scale, options.seed, Path(folder), callbacks=True)
        polled = await _measure(jobs, scale, options.seed, Path(folder), callbacks=False)
    return _figures(jobs, scale, called, polled)
