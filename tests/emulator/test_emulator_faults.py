"""The emulator's faults: injected ones (in order, by count) and ones drawn at a rate."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import aiohttp
import anyio
import pytest

from chanjing_async.emulator import Fault, FaultRate
from tests.support.emulator_helpers import (
    DETAIL,
    SLACK,
    Api,
    detail_codes,
    put_upload,
    running,
    tts_body,
)

pytestmark = pytest.mark.anyio


# -- injected faults ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"endpoint": "nope", "kind": "code"}, "endpoint must be"),
        ({"endpoint": "create", "kind": "explode"}, "kind must be"),
        ({"endpoint": "create", "kind": "gateway", "status": 500}, "status must be"),
        ({"endpoint": "create", "kind": "latency", "seconds": -1}, "seconds must be"),
        ({"endpoint": "create", "kind": "code", "count": 0}, "count must be"),
        ({"endpoint": "create", "kind": "code", "code": True}, "code must be"),
    ],
)
def test_fault_rejects_bad_values(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Fault(**fields)


async def test_code_fault_then_normal_service(api: Api) -> None:
    api.emu.inject(Fault(endpoint="detail", kind="code", code=50000, msg="系统内部错误"))
    payload = await api.detail("x")
    assert (payload["code"], payload["msg"]) == (50000, "系统内部错误")
    assert (await api.detail("x"))["msg"] == "任务不存在"
    assert api.emu.state.faults == []


@pytest.mark.parametrize("status", [502, 503, 504, 524])
async def test_gateway_fault_sends_an_html_page(api: Api, status: int) -> None:
    api.emu.inject(Fault(endpoint="voices", kind="gateway", status=status))
    url = api.emu.base_url + "/open/v1/list_common_audio"
    async with api.http.get(url, headers={"access_token": str(api.token)}) as response:
        assert (response.status, response.content_type) == (status, "text/html")
        assert str(status) in await response.text()
    assert api.emu.state.stats()["endpoints"]["voices"]["errors"] == 1


async def test_latency_fault_delays_in_wall_seconds(api: Api) -> None:
    api.emu.inject(Fault(endpoint="*", kind="latency", seconds=0.2))
    started = time.monotonic()
    assert (await api.detail("x"))["code"] == 40000
    assert time.monotonic() - started >= 0.2


async def test_a_create_whose_client_gave_up_still_happens(api: Api) -> None:
    video = await api.upload()
    api.emu.inject(Fault(endpoint="create", kind="latency", seconds=0.2))
    url = api.emu.base_url + "/open/v1/video_lip_sync/create"
    headers = {"access_token": str(api.token)}
    timeout = aiohttp.ClientTimeout(total=0.05)
    with pytest.raises(asyncio.TimeoutError):  # not the builtin TimeoutError before 3.11
        async with api.http.post(url, json=tts_body(video), headers=headers, timeout=timeout):
            pass
    assert api.emu.state.tasks == {}
    with anyio.fail_after(1):
        while True:
            if api.emu.state.tasks:
                break
            await anyio.sleep(0.02)


async def test_drop_before_loses_the_request(api: Api) -> None:
    video = await api.upload()
    api.emu.inject(Fault(endpoint="create", kind="drop_before"))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.create(tts_body(video))
    assert api.emu.state.tasks == {}
    stats = api.emu.state.stats()
    assert (stats["tasks_created"], stats["endpoints"]["create"]["errors"]) == (0, 1)


async def test_drop_after_creates_the_task_but_loses_the_answer(api: Api) -> None:
    video = await api.upload()
    api.emu.inject(Fault(endpoint="create", kind="drop_after"))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.create(tts_body(video))
    assert len(api.emu.state.tasks) == 1  # the ambiguous create happened
    listed = await api.call("POST", "/open/v1/video_lip_sync/list", body={"page_size": 5})
    assert [t["id"] for t in listed["data"]["list"]] == list(api.emu.state.tasks)


async def test_faults_apply_in_injection_order_and_by_count(api: Api) -> None:
    api.emu.inject(Fault(endpoint="detail", kind="code", code=1, msg="first", count=2))
    api.emu.inject(Fault(endpoint="*", kind="code", code=2, msg="second"))
    api.emu.inject(Fault(endpoint="voices", kind="code", code=3, msg="sticky", count=None))
    msgs = [(await api.detail("x"))["msg"] for _ in range(4)]
    assert msgs == ["first", "first", "second", "任务不存在"]
    for _ in range(3):
        assert (await api.call("GET", "/open/v1/list_common_audio"))["msg"] == "sticky"
    api.emu.clear_faults()
    assert (await api.call("GET", "/open/v1/list_common_audio"))["code"] == 0


async def test_faults_over_http(api: Api) -> None:
    url = api.emu.base_url + "/_emulator/faults"
    fault = {"endpoint": "upload", "kind": "code", "msg": "oss down", "count": None}
    async with api.http.post(url, json=fault) as response:
        assert response.status == 200
        assert (await response.json())["faults"][0]["msg"] == "oss down"
    data = await api.announce("lip_sync_video", "face.mp4")
    status, text = await put_upload(api, data["sign_url"], "video/mp4")
    assert status == 500
    assert "<Code>InternalError</Code>" in text
    assert "oss down" in text
    async with api.http.delete(url) as response:
        assert (await response.json()) == {"faults": []}
    assert (await put_upload(api, data["sign_url"], "video/mp4"))[0] == 200
    for bad in ({"endpoint": "create"}, {"endpoint": "create", "kind": "code", "x": 1}, [1]):
        async with api.http.post(url, json=bad) as response:
            assert response.status == 400
    async with api.http.post(url, data=b"{") as response:
        assert response.status == 400


# -- random faults -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "message"),
    [
        ({"endpoints": "nowhere"}, "endpoints must name endpoints"),
        ({"endpoints": ()}, "endpoints must be an endpoint name, a group or a non-empty tuple"),
        ({"endpoints": ("detail", "detail")}, "endpoints must not repeat a name"),
        ({"probability": 1.5}, "probability must be between 0 and 1"),
        ({"probability": -0.1}, "probability must be between 0 and 1"),
        ({"probability": math.nan}, "probability must be a finite number"),
        ({"probability": True}, "probability must be a finite number"),
        ({"kind": "explode"}, "kind must be one of"),
        ({"kind": "gateway", "status": 500}, "status must be one of"),
        ({"kind": "latency", "seconds": -1}, "seconds must be finite and not negative"),
    ],
)
def test_fault_rates_reject_bad_values(rate: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"endpoints": "detail", "kind": "code", "probability": 0.1}
    values.update(rate)
    with pytest.raises(ValueError, match=message):
        FaultRate(**values)


def test_fault_rate_groups_expand_to_endpoint_names() -> None:
    assert FaultRate("reads", "code", 0.1).endpoints == ("detail", "list")
    assert "upload" not in FaultRate("api", "gateway", 0.1).endpoints
    assert set(FaultRate("*", "drop_before", 0.1).endpoints) == {
        *FaultRate("api", "drop_before", 0.1).endpoints,
        "upload",
    }
    assert FaultRate("create", "drop_after", 0.1).endpoints == ("create",)
    assert FaultRate(("detail", "create"), "latency", 0.1, seconds=1).fault.seconds == 1


async def test_fault_rates_answer_their_share_of_calls_repeatably() -> None:
    rates = (FaultRate("detail", "code", 0.3), FaultRate("reads", "code", 0.2, code=51000))
    runs, stats = [], {}
    for _ in range(2):
        async with running(fault_rates=rates, read_limit=10_000) as api:
            runs.append(await detail_codes(api, 300))
            stats = api.emu.state.stats()
    assert runs[0] == runs[1]  # seeded: the same calls meet the same faults
    counts = {code: runs[0].count(code) for code in set(runs[0])}
    assert 60 <= counts[50000] <= 120, counts
    assert 35 <= counts[51000] <= 85, counts
    assert counts[40000] == 300 - counts[50000] - counts[51000]
    assert stats["faults_applied"] == {
        "detail": {"code 50000": counts[50000], "code 51000": counts[51000]}
    }
    assert stats["endpoints"]["detail"]["errors"] == 300


async def test_fault_rates_leave_task_fates_alone() -> None:
    async def fates(rates: tuple[FaultRate, ...]) -> list[str | None]:
        async with running(fail_rate=0.5, fault_rates=rates) as api:
            file_id = await api.upload()
            for _ in range(8):
                assert (await api.create(tts_body(file_id)))["code"] == 0
                await detail_codes(api, 3)  # draws between the creates
            return [task.failure for task in api.emu.state.tasks.values()]

    calm = await fates(())
    assert await fates((FaultRate("detail", "code", 0.5),)) == calm
    assert len(set(calm)) == 2  # both fates occur


async def test_an_injected_fault_goes_before_a_drawn_one() -> None:
    async with running(fault_rates=(FaultRate("detail", "code", 1.0, code=51000),)) as api:
        api.emu.inject(Fault(endpoint="detail", kind="code", code=50000, count=2))
        assert await detail_codes(api, 4) == [50000, 50000, 51000, 51000]
        assert api.emu.state.stats()["faults_applied"]["detail"] == {
            "code 50000": 2,
            "code 51000": 2,
        }


async def test_drawn_gateway_drop_and_latency_faults_behave_like_injected_ones() -> None:
    async with running(fault_rates=(FaultRate("detail", "gateway", 1.0, status=504),)) as api:
        url = api.emu.base_url + DETAIL
        headers = {"access_token": api.token or ""}
        async with api.http.get(url, params={"id": "x"}, headers=headers) as response:
            assert response.status == 504
            assert "504 Gateway Time-out" in await response.text()
    async with running(fault_rates=(FaultRate("create", "drop_after", 1.0),)) as api:
        file_id = await api.upload()
        with pytest.raises(aiohttp.ClientError):
            await api.create(tts_body(file_id))
        assert len(api.emu.state.tasks) == 1  # handled, then the connection was cut
    async with running(fault_rates=(FaultRate("detail", "latency", 1.0, seconds=0.05),)) as api:
        started = time.monotonic()
        assert await detail_codes(api, 1) == [40000]
        assert time.monotonic() - started >= 0.05 - SLACK
