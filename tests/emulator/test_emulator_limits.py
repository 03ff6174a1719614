"""The emulator's rate limits: sliding and fixed windows, per endpoint group."""

from __future__ import annotations

import math
import time

import anyio
import pytest

from chanjing_async.emulator._ratelimit import Arrival, WindowLimiter
from tests.support.emulator_helpers import Api, running

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ["sliding", "fixed"])
@pytest.mark.parametrize("count_rejected", [True, False])
def test_window_limiter_rules(mode: str, count_rejected: bool) -> None:
    """Two per second: arrivals at 0.2, 0.5, 0.9, then 1.1 and 1.3."""
    limiter = WindowLimiter(2, 1.0, mode=mode, count_rejected=count_rejected)  # type: ignore[arg-type]
    decisions = [limiter.admit(t) for t in (0.2, 0.5, 0.9, 1.1, 1.3)]
    if mode == "fixed":
        # Buckets [0, 1) and [1, 2): two each, whatever was rejected before.
        assert decisions == [True, True, False, True, True]
    elif count_rejected:
        # At 1.1 the counted 0.5 and 0.9 are in (0.1, 1.1]; at 1.3 so are 0.9 and 1.1.
        assert decisions == [True, True, False, False, False]
    else:
        # Only 0.2 and 0.5 count: both are in (0.1, 1.1]; only 0.5 is in (0.3, 1.3].
        assert decisions == [True, True, False, False, True]


def replay(arrivals: list[Arrival], limit: int, window: float, mode: str) -> list[bool]:
    """The documented rule applied to logged arrival times (rejected arrivals count)."""
    decisions: list[bool] = []
    for index, arrival in enumerate(arrivals):
        earlier = [a.at for a in arrivals[:index]]
        if mode == "sliding":
            in_window = sum(arrival.at - window < t <= arrival.at for t in earlier)
        else:
            bucket = math.floor(arrival.at / window)
            in_window = sum(math.floor(t / window) == bucket for t in earlier)
        decisions.append(in_window < limit)
    return decisions


async def test_sliding_window_rejects_the_eleventh_create() -> None:
    window = 0.2
    async with running(time_scale=300.0) as api:  # a 0.2 s "minute"
        # Rate limiting comes before validation, so empty bodies are enough to fill the window.
        codes = [(await api.create({}))["code"] for _ in range(11)]
        assert codes == [40000] * 10 + [40001]
        rejected = await api.create({})
        assert (rejected["code"], rejected["msg"]) == (40001, "超出RPM限制")
        arrivals = api.emu.state.arrivals("create")
        assert [a.accepted for a in arrivals] == replay(arrivals, 10, window, "sliding")
        # Once the tenth-latest counted arrival is a (scaled) minute old, creates pass again.
        await anyio.sleep(max(0.0, arrivals[-10].at + window - time.monotonic()) + 0.01)
        assert (await api.create({}))["code"] == 40000
        stats = api.emu.state.stats()["endpoints"]["create"]
        assert stats == {"requests": 13, "rejected_40001": 2, "errors": 11, "handled_late": 0}


async def test_detail_and_list_are_limited_separately() -> None:
    async with running(time_scale=1.0) as api:  # a real one-second window
        for _ in range(10):
            assert (await api.detail("x"))["code"] == 40000
            listed = await api.call("POST", "/open/v1/video_lip_sync/list", body={})
            assert listed["code"] == 0
        payload = await api.detail("x")
        assert (payload["code"], payload["msg"]) == (40001, "超出QPS限制")


async def test_fixed_windows_reset_at_the_bucket_boundary() -> None:
    async with running(time_scale=300.0, rate_window="fixed") as api:  # 0.2 s buckets
        window = 0.2

        async def next_bucket() -> None:
            now = time.monotonic()
            await anyio.sleep((math.floor(now / window) + 1) * window - now + 0.005)

        await next_bucket()
        codes = [(await api.create({}))["code"] for _ in range(11)]
        assert codes == [40000] * 10 + [40001]
        await next_bucket()
        # A sliding window would still hold the burst; a new calendar bucket does not.
        assert (await api.create({}))["code"] == 40000
        arrivals = api.emu.state.arrivals("create")
        assert [a.accepted for a in arrivals] == replay(arrivals, 10, window, "fixed")


async def test_unauthenticated_requests_do_not_reach_the_limiter(api: Api) -> None:
    for _ in range(12):
        payload = await api.call("POST", "/open/v1/video_lip_sync/create", body={}, headers={})
        assert payload["code"] == 10400
    assert api.emu.state.arrivals("create") == []
    assert (await api.create({}))["code"] == 40000
