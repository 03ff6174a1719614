"""The emulator's network latency: a fixed delay, and random trips drawn with the seed."""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any

import pytest

from chanjing_async.emulator._network import NetworkLatency
from tests.support.emulator_helpers import (
    BASE,
    SLACK,
    Api,
    fetch,
    finished_task,
    put_upload,
    running,
)

pytestmark = pytest.mark.anyio

# K = 1200: one real-scale second of latency lasts 0.83 ms, so trips of tens of real seconds
# stay in the tens of milliseconds.
FAST = 1200.0


async def test_latency_setting_delays_api_calls_but_not_uploads() -> None:
    async with running(latency_seconds=12.0) as api:  # 0.2 s at K = 60
        data = await api.announce("lip_sync_video", "face.mp4")
        started = time.monotonic()
        assert (await put_upload(api, data["sign_url"], "video/mp4"))[0] == 200
        assert time.monotonic() - started < 0.2
        await api.file_detail(data["file_id"])
        assert time.monotonic() - started >= 0.2


def test_latency_draws_follow_the_settings_and_the_seed() -> None:
    assert not NetworkLatency(BASE).enabled  # the default: no trips at all
    settings = dataclasses.replace(
        BASE,
        time_scale=10.0,
        latency_base_seconds=1.0,
        latency_mean_seconds=2.0,
        latency_tail_rate=0.25,
        latency_tail_seconds=(100.0, 200.0),
    )
    latency = NetworkLatency(settings)
    assert latency.enabled
    draws = [latency.draw() for _ in range(20_000)]
    again = NetworkLatency(settings)
    assert [again.draw() for _ in range(100)] == draws[:100]
    other = NetworkLatency(dataclasses.replace(settings, seed=2))
    assert [other.draw() for _ in range(100)] != draws[:100]
    # Scaled by K = 10: the body is 0.1 s + exponential(0.2 s), the tail uniform in [10, 20].
    tail = [d for d in draws if d >= 10.0]
    body = [d for d in draws if d < 10.0]
    assert min(draws) >= 0.1
    assert max(draws) <= 20.0
    assert len(tail) / len(draws) == pytest.approx(0.25, abs=0.02)
    assert statistics.mean(body) == pytest.approx(0.3, rel=0.05)
    assert statistics.mean(tail) == pytest.approx(15.0, rel=0.05)


async def timed_details(api: Api, count: int) -> list[float]:
    """Wall seconds of ``count`` sequential detail calls."""
    durations = []
    for _ in range(count):
        started = time.monotonic()
        assert (await api.detail("x"))["code"] == 40000
        durations.append(time.monotonic() - started)
    return durations


async def test_latency_base_delays_both_trips_of_every_call() -> None:
    base = 30.0  # 25 ms each way
    floor = 2 * base / FAST
    async with running(time_scale=FAST, latency_base_seconds=base) as api:
        durations = await timed_details(api, 6)
    assert min(durations) >= floor - SLACK
    assert statistics.mean(durations) < 2 * floor


async def test_latency_mean_adds_seeded_exponential_trips() -> None:
    base, mean = 3.0, 12.0  # 2.5 ms + exponential(10 ms) each way
    overrides: dict[str, Any] = {
        "time_scale": FAST,
        "latency_base_seconds": base,
        "latency_mean_seconds": mean,
        "read_limit": 1000,
    }
    count = 24
    async with running(**overrides) as api:
        durations = await timed_details(api, count)
    # Sequential calls draw in order: the login's two trips, then each detail's in and out.
    replay = NetworkLatency(dataclasses.replace(BASE, **overrides))
    draws = [replay.draw() for _ in range(2 + 2 * count)][2:]
    assert all(
        took >= inbound + outbound - SLACK
        for took, inbound, outbound in zip(durations, draws[::2], draws[1::2], strict=True)
    )
    expected = 2 * (base + mean) / FAST
    assert statistics.mean(durations) == pytest.approx(expected, rel=0.4)
    # The trips vary: not one fixed delay.
    assert max(durations) - min(durations) > expected / 2


async def test_latency_tail_replaces_the_usual_trip() -> None:
    low, high = 30.0, 60.0  # 25 to 50 ms each way
    # A base of 600 would make each trip 0.5 s: the tail takes its place at rate 1.
    overrides = {"latency_base_seconds": 600.0, "latency_tail_seconds": (low, high)}
    async with running(time_scale=FAST, latency_tail_rate=1.0, **overrides) as api:
        durations = await timed_details(api, 5)
    assert min(durations) >= 2 * low / FAST - SLACK
    assert max(durations) < 0.5


async def test_the_limiter_sees_the_arrival_after_the_inbound_trip() -> None:
    base = 60.0  # 50 ms each way
    async with running(time_scale=FAST, latency_base_seconds=base) as api:
        started = time.monotonic()
        assert (await api.detail("x"))["code"] == 40000
        finished = time.monotonic()
        (arrival,) = api.emu.state.arrivals("detail")
    assert arrival.at - started >= base / FAST - SLACK
    assert finished - arrival.at >= base / FAST - SLACK


async def test_latency_applies_to_the_put_and_result_downloads_only() -> None:
    base = 24.0  # 20 ms each way
    floor = 2 * base / FAST
    async with running(time_scale=FAST, latency_base_seconds=base) as api:
        task = await finished_task(api)
        started = time.monotonic()
        assert (await fetch(api, task["video_url"]))[0] == 200
        download = time.monotonic() - started
        data = await api.announce("lip_sync_video", "face.mp4")
        started = time.monotonic()
        assert (await put_upload(api, data["sign_url"], "video/mp4"))[0] == 200
        put = time.monotonic() - started
        started = time.monotonic()
        async with api.http.get(api.emu.base_url + "/_emulator/stats") as response:
            stats = await response.json()
        control = time.monotonic() - started
    assert download >= floor - SLACK
    assert put >= floor - SLACK
    assert control < floor  # control routes are no network trip
    assert stats["result_downloads"] == 1
