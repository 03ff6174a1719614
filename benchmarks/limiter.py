"""Scenario 1, the create limiter: how fast M creates go out, and how many are answered 40001.

Each run is M creates started at once against a fresh emulator whose create limit (10 per
60 s) counts arrivals in an exact sliding window or in fixed buckets of arbitrary phase, with
random one-way latency, everything divided by the same time scale. Every create is sent the
way a JobManager sends it: in a slot of the client's create limiter,
``client.lip_sync.create(request, slot=slot)``, so each attempt is one request and its round
trip can be timed. Ours queues in that limiter, the SDK's completion-anchored sliding-window
log (``make_client``: the default limits, scaled). The baselines use a client whose create
limit is lifted and wait before each attempt at ``aiolimiter.AsyncLimiter(10, 60)``,
``AsyncLimiter(1, 6)`` or a fixed 6 s spacing between sends (what Chanjing's own SDK does),
all scaled alike. A create answered 40001 is sent again the same way (ours after the penalty
the transport sets, a baseline through its gate again) until all M exist; the server counts
the 40001s.

The figure is the last-create time, measured where tasks are created (the server's clock,
from the first task to the M-th), divided by the ideal greedy schedule, ⌊(M−1)/10⌋ windows:
what the schedule promises is when creates happen, not when their answers come back.
Goal: 0 x 40001 and <= 1.05.

Time scaling shrinks the windows and the emulated latency but not the cost of the HTTP round
trip itself on loopback (a few wall milliseconds, client and emulator on one event loop). The
completion-anchored log waits about one round trip per window, so that fixed cost weighs
``scale`` times more than it would against the real API; ``*_round_trip_seconds`` in the extra
numbers (real-scale, send to answer) shows it next to the modelled ``model_round_trip_seconds``.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from aiolimiter import AsyncLimiter

from chanjing_async import AsyncChanjingClient, LipSyncRequest, Rate, RateLimitError, RateLimits
from chanjing_async.emulator import EmulatorServer

from ._common import LATENCY, Figure, Options, emulator_settings, make_client

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

NAME = "create limiter"

_LIMIT = 10  # creates per window: the documented create limit
_WINDOW = 60.0  # real-scale seconds
_SPACING = _WINDOW / _LIMIT  # 6 s: AsyncLimiter(1, 6) and the fixed spacing
_VOICE = "C-f2429d07554749839849497589199916"
_VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(512)
_SERVERS = ("sliding", "fixed")
_GOAL = 1.05
# Mean emulated round trip, real-scale: two one-way trips of 0.05 + Exp(0.15) s, or with
# probability 5 % a uniform 0.5-3 s tail instead.
_MODEL_ROUND_TRIP = 2 * (
    (1 - LATENCY["latency_tail_rate"])
    * (LATENCY["latency_base_seconds"] + LATENCY["latency_mean_seconds"])
    + LATENCY["latency_tail_rate"] * sum(LATENCY["latency_tail_seconds"]) / 2
)
# A baseline that cannot finish (every retry rejected again) is stopped after this many ideals.
_BASELINE_CAP = 5.0


@dataclass(frozen=True)
class _Size:
    creates: int
    time_scale: float  # a real-scale window lasts _WINDOW / time_scale wall seconds

    @property
    def ideal(self) -> float:
        """Wall seconds of the ideal greedy schedule: ⌊(M−1)/10⌋ windows."""
        return (self.creates - 1) // _LIMIT * _WINDOW / self.time_scale


# Full run: 2 + 9 + 99 windows; the scales keep each limiter's run to about 2, 4.5 and 40 s.
# The few wall milliseconds of each loopback round trip (see the module docstring) weigh
# `scale` times more than against the real API: at 600 they added 4-5 % to 1,000 creates, at
# 150 about 1 %.
_FULL = (_Size(25, 60.0), _Size(100, 120.0), _Size(1000, 150.0))
_SMOKE = (_Size(12, 600.0),)


@dataclass
class _Run:
    """One (size, server, limiter) run."""

    seconds: float  # wall, first task created to the M-th (server clock); inf if unfinished
    rejected: int  # creates the server answered 40001
    last_send: float  # wall, first send to the send of the M-th accepted create
    created: int  # tasks created (M unless a baseline hit the cap)
    round_trip: float  # wall, mean of send -> answer over every create attempt


class _Spacing:
    """Fixed spacing between sends: each caller goes ``spacing`` seconds after the previous."""

    def __init__(self, spacing: float) -> None:
        self._spacing = spacing
        self._next = -math.inf
        self._lock = anyio.Lock()

    async def wait(self) -> None:
        async with self._lock:  # FIFO, so a retry queues behind the creates already waiting
            delay = self._next - time.monotonic()
            if delay > 0:
                await anyio.sleep(delay)
            self._next = time.monotonic() + self._spacing


@dataclass(frozen=True)
class _Baseline:
    name: str
    gate: Callable[[float], Callable[[], Awaitable[None]]]  # time scale -> fresh gate


def _aiolimiter(max_rate: float, period: float) -> Callable[[float], Callable[[], Awaitable[None]]]:
    def make(time_scale: float) -> Callable[[], Awaitable[None]]:
        return AsyncLimiter(max_rate, period / time_scale).acquire

    return make


def _spacing(time_scale: float) -> Callable[[], Awaitable[None]]:
    return _Spacing(_SPACING / time_scale).wait


_BASELINES = (
    _Baseline("AsyncLimiter(10, 60)", _aiolimiter(_LIMIT, _WINDOW)),
    _Baseline("AsyncLimiter(1, 6)", _aiolimiter(1, _SPACING)),
    _Baseline("6 s spacing (Chanjing SDK)", _spacing),
)


def _lifted_client(base_url: str, time_scale: float) -> AsyncChanjingClient:
    # The create limit is lifted: the baseline gate alone paces creates. Its window is tiny so
    # that the client's own 40001 penalty (one window) blocks nothing.
    limits = replace(RateLimits().scaled(time_scale), create=Rate(1_000_000_000, 1e-9))
    return make_client(base_url, time_scale, limits=limits)


async def _create(
    client: AsyncChanjingClient,
    request: LipSyncRequest,
    gate: Callable[[], Awaitable[None]] | None,
    round_trips: list[float],
) -> float:
    """Send one create until it is accepted; every 40001 (counted by the server) sends it again.

    The create goes in a slot of the client's create limiter, as a JobManager sends it: ours
    queues there (and after a 40001 waits out the penalty the transport set); a baseline's
    client has that limit lifted and waits at its own gate instead, before every attempt.
    Returns the send time of the accepted attempt.
    """
    while True:
        if gate is not None:
            await gate()
        async with client.limiters.create.slot() as slot:
            sent = time.monotonic()
            try:
                await client.lip_sync.create(request, slot=slot)  # one attempt, 40001 raised
            except RateLimitError:
                continue
            finally:
                round_trips.append(time.monotonic() - sent)
        return sent


async def _measure(
    size: _Size,
    server_mode: str,
    video: Path,
    seed: int,
    *,
    baseline: _Baseline | None,
) -> _Run:
    settings = emulator_settings(
        size.time_scale,
        seed,
        latency=True,
        rate_window=server_mode,
        create_limit=_LIMIT,
        create_window=_WINDOW,
        file_ready_seconds=0.0,
    )
    async with EmulatorServer(settings) as server:
        if baseline is None:
            client = make_client(server.base_url, size.time_scale)
            gate = None
        else:
            client = _lifted_client(server.base_url, size.time_scale)
            gate = baseline.gate(size.time_scale)
        async with client:
            # The upload also fetches the token, so the first create goes out at once.
            uploaded = await client.files.upload(
                video, service="lip_sync_video", poll_interval=0.01
            )
            done: list[float] = []
            sends: list[float] = []
            round_trips: list[float] = []

            async def one(n: int) -> None:
                request = LipSyncRequest.tts(uploaded.id, text=f"第 {n} 条", audio_man_id=_VOICE)
                sends.append(await _create(client, request, gate, round_trips))
                done.append(time.monotonic())

            cap = math.inf if baseline is None else _BASELINE_CAP * max(size.ideal, 0.5) + 2.0
            started = time.monotonic()
            with anyio.move_on_after(cap):
                async with anyio.create_task_group() as group:
                    for n in range(size.creates):
                        group.start_soon(one, n)
        rejected = server.state.endpoint_stats("create").rejected_40001
        # Task creation times: the server's monotonic clock, the same as ours in-process.
        created = sorted(task.created_at for task in server.state.tasks.values())
    finished = len(done) == size.creates
    return _Run(
        seconds=created[-1] - created[0] if finished else math.inf,
        last_send=max(sends) - started if finished else math.inf,
        rejected=rejected,
        created=len(done),
        round_trip=sum(round_trips) / len(round_trips) if round_trips else math.nan,
    )


def _ratio(run: _Run, size: _Size) -> float | None:
    if size.ideal <= 0:
        return None  # M <= 10: the ideal is 0 s, the absolute time is what counts
    return run.seconds / size.ideal


def _real(wall: float, size: _Size) -> float | None:
    """Wall seconds as real-scale seconds; None when not measured (a baseline hit the cap)."""
    return round(wall * size.time_scale, 3) if math.isfinite(wall) else None


def _figure(size: _Size, server_mode: str, ours: _Run, name: str, theirs: _Run) -> Figure:
    ours_ratio = _ratio(ours, size)
    theirs_ratio = _ratio(theirs, size)
    met = ours.rejected == 0 and ours.created == size.creates
    if ours_ratio is not None:
        met = met and ours_ratio <= _GOAL
    unfinished = "" if theirs.created == size.creates else f", {theirs.created} created"
    return Figure(
        scenario=NAME,
        case=(
            f"{size.creates:,} creates at scale {size.time_scale:g}, {server_mode}-window server:"
            f" ours vs {name}"
            f" (40001: {ours.rejected} vs {theirs.rejected}{unfinished})"
        ),
        metric="last create / ideal" if ours_ratio is not None else "last create, real s",
        ours=ours_ratio if ours_ratio is not None else ours.seconds * size.time_scale,
        baseline_name=name,
        baseline=theirs_ratio if ours_ratio is not None else _real(theirs.seconds, size),
        ratio=ours_ratio,
        ratio_label="ours / ideal",
        goal=f"0 x 40001 and <= {_GOAL}",
        met=met,
        extra={
            "ours_40001": ours.rejected,
            "baseline_40001": theirs.rejected,
            # Real-scale seconds (wall x time scale), comparable with a real account's minutes.
            "ours_seconds": _real(ours.seconds, size),
            "baseline_seconds": _real(theirs.seconds, size),
            "ideal_seconds": _real(size.ideal, size),
            # When the M-th accepted create was sent: the schedule without its own round trip.
            "ours_last_send_seconds": _real(ours.last_send, size),
            "baseline_last_send_seconds": _real(theirs.last_send, size),
            "ours_round_trip_seconds": _real(ours.round_trip, size),
            "baseline_round_trip_seconds": _real(theirs.round_trip, size),
            "model_round_trip_seconds": round(_MODEL_ROUND_TRIP, 3),
            "baseline_created": theirs.created,
            "creates": size.creates,
            "time_scale": size.time_scale,
        },
    )


async def run(options: Options) -> list[Figure]:
    """Every size against both server modes: ours, then each baseline, on fresh emulators."""
    sizes = _SMOKE if options.smoke else _FULL
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="chanjing-bench-") as tmp:
        video = Path(tmp) / "talk.mp4"
        video.write_bytes(_VIDEO)
        for size in sizes:
            for server_mode in _SERVERS:
                ours = await _measure(size, server_mode, video, options.seed, baseline=None)
                for baseline in _BASELINES:
                    theirs = await _measure(
                        size, server_mode, video, options.seed, baseline=baseline
                    )
                    figures.append(_figure(size, server_mode, ours, baseline.name, theirs))
    return figures
