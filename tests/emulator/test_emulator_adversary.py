"""The emulator as an adversarial server: a skewed clock, drawn delays, gateways that lie.

These are the conditions create reconciliation must survive: a ``create_time`` on a clock that
is not the client's, a 524 for a create the origin still makes (later, counted by the limiter
then), and delays that differ from one request to the next.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import math
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import anyio.lowlevel
import pytest
from aiohttp import web

from chanjing_async.emulator import EmulatorServer, EmulatorState, Fault, FaultRate
from chanjing_async.emulator.__main__ import build_parser, main, settings_from_args
from chanjing_async.emulator._late import LATE_KEY
from tests.support import until
from tests.support.emulator_helpers import BASE, MP4_HEAD, SLACK, Api, running, tts_body

if TYPE_CHECKING:
    from collections.abc import Mapping

pytestmark = pytest.mark.anyio

Json = dict[str, Any]
CREATE = "/open/v1/video_lip_sync/create"
DETAIL = "/open/v1/video_lip_sync/detail"
OFFSETS = [600.0, -600.0, -5.0]  # ten minutes either way, and a few seconds behind


@dataclass
class Reply:
    """One raw HTTP exchange, with the real wall clock read just before and just after it."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    before: float
    after: float

    def json(self) -> Json:
        data: Json = json.loads(self.body)
        return data

    def date(self) -> float:
        """The ``Date`` header as Unix seconds."""
        return parsedate_to_datetime(self.headers["Date"]).timestamp()


async def send(http: aiohttp.ClientSession, method: str, url: str, **options: Any) -> Reply:
    before = time.time()
    async with http.request(method, url, **options) as response:
        body = await response.read()
        status, headers = response.status, response.headers
    return Reply(status, headers, body, before, time.time())


def assert_on_server_clock(stamp: float, reply: Reply, offset: float, *, plus: float = 0) -> None:
    """``stamp`` is a Unix time the server read (truncated to whole seconds or not) during
    ``reply``, shifted by ``offset``, plus a lifetime ``plus``."""
    assert reply.before + offset + plus - 1 < stamp <= reply.after + offset + plus + 0.001, (
        stamp - (reply.after + offset + plus)
    )


def create_stats(api: Api) -> Json:
    stats: Json = api.emu.state.stats()["endpoints"]["create"]
    return stats


# -- settings, faults and CLI -------------------------------------------------------------------


@pytest.mark.parametrize("offset", [math.inf, math.nan, True, "5", None])
def test_clock_offset_must_be_a_finite_number(offset: Any) -> None:
    with pytest.raises(ValueError, match="clock_offset_seconds must be a finite number"):
        dataclasses.replace(BASE, clock_offset_seconds=offset)
    assert BASE.clock_offset_seconds == 0.0
    assert dataclasses.replace(BASE, clock_offset_seconds=-3600).clock_offset_seconds == -3600


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"seconds": 1.0, "seconds_max": 0.5}, r"seconds_max must be finite and not less than"),
        ({"seconds_max": math.inf}, r"seconds_max must be finite and not less than"),
        ({"seconds_max": math.nan}, r"seconds_max must be finite and not less than"),
        ({"seconds_max": True}, r"seconds_max must be None or a number"),
        ({"seconds_max": "1"}, r"seconds_max must be None or a number"),
    ],
)
def test_seconds_max_must_be_a_bound_not_below_seconds(fields: Json, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Fault(endpoint="create", kind="latency", **fields)
    with pytest.raises(ValueError, match=message):
        FaultRate("create", "latency", 0.5, **fields)


def test_seconds_max_and_gateway_late_arrive_over_json() -> None:
    body = {"endpoint": "create", "kind": "gateway_late", "status": 524, "seconds_max": 0.5}
    fault = Fault.from_json({**body, "seconds": 0.25})
    assert (fault.kind, fault.status, fault.seconds, fault.seconds_max) == (
        "gateway_late",
        524,
        0.25,
        0.5,
    )
    with pytest.raises(ValueError, match="seconds_max must be finite and not less than"):
        Fault.from_json(body | {"seconds": 1})
    rate = FaultRate("api", "gateway_late", 0.1, status=524, seconds=1, seconds_max=2)
    assert (rate.fault.kind, rate.fault.seconds_max) == ("gateway_late", 2)


def test_cli_clock_offset(capsys: pytest.CaptureFixture[str]) -> None:
    for value in ("-5", "600", "0.25"):
        ns = build_parser().parse_args(["--clock-offset", value])
        assert settings_from_args(ns).clock_offset_seconds == float(value)
    assert settings_from_args(build_parser().parse_args([])).clock_offset_seconds == 0.0
    assert "--clock-offset SECONDS" in build_parser().format_help()
    with pytest.raises(SystemExit) as exit_info:
        main(["--clock-offset", "inf"])
    assert exit_info.value.code == 2
    assert "clock_offset_seconds must be a finite number" in capsys.readouterr().err


# -- server clock offset ------------------------------------------------------------------------


@pytest.mark.parametrize("offset", OFFSETS)
async def test_every_timestamp_and_date_header_is_on_the_server_clock(offset: float) -> None:
    overrides = {"clock_offset_seconds": offset, "create_limit": 1, "result_url_ttl_seconds": 60.0}
    async with running(**overrides) as api:
        http, base = api.http, api.emu.base_url
        # Token: expire_in is absolute, 86400 s / 60 = 1440 s after the server's now.
        credentials = {"app_id": BASE.app_id, "secret_key": BASE.secret_key}
        login = await send(http, "POST", base + "/open/v1/access_token", json=credentials)
        assert login.status == 200
        assert_on_server_clock(login.date(), login, offset)
        assert_on_server_clock(login.json()["data"]["expire_in"], login, offset, plus=1440)
        token = {"access_token": login.json()["data"]["access_token"]}
        api.token = token["access_token"]
        # Upload: the signed URL's Expires (900 s / 60 = 15 s), the file's create_time, the PUT.
        params = {"service": "lip_sync_video", "name": "face.mp4"}
        announce = await send(
            http, "GET", base + "/open/v1/common/create_upload_url", params=params, headers=token
        )
        data = announce.json()["data"]
        expires = float(data["sign_url"].split("Expires=")[1].split("&")[0])
        assert_on_server_clock(expires, announce, offset, plus=15)
        put = await send(
            http, "PUT", data["sign_url"], data=MP4_HEAD, headers={"Content-Type": "video/mp4"}
        )
        assert put.status == 200
        assert_on_server_clock(put.date(), put, offset)
        await api.wait_ready(data["file_id"])
        detail = await send(
            http,
            "GET",
            base + "/open/v1/common/file_detail",
            params={"id": data["file_id"]},
            headers=token,
        )
        # file_detail reads the create_time stored at the announcement.
        assert_on_server_clock(detail.json()["data"]["create_time"], announce, offset)
        # Create, then a second create inside the (1 s) window: 40001.
        created = await send(
            http, "POST", base + CREATE, json=tts_body(data["file_id"]), headers=token
        )
        task_id = created.json()["data"]
        assert_on_server_clock(created.date(), created, offset)
        assert_on_server_clock(api.emu.state.tasks[task_id].create_time, created, offset)
        refused = await send(http, "POST", base + CREATE, json={}, headers=token)
        assert refused.json()["code"] == 40001
        assert_on_server_clock(refused.date(), refused, offset)
        # A gateway page, a 404 and a control route.
        api.emu.inject(Fault(endpoint="detail", kind="gateway", status=524))
        page = await send(http, "GET", base + DETAIL, params={"id": task_id}, headers=token)
        assert page.status == 524
        assert_on_server_clock(page.date(), page, offset)
        for path in ("/no/such/route", "/_emulator/stats"):
            other = await send(http, "GET", base + path)
            assert_on_server_clock(other.date(), other, offset)
        # The finished task: create_time as served, and the result URL signed on the server
        # clock (1 s), which the download route checks on that clock too (else 403 at -600).
        task = await api.wait_terminal(task_id)
        assert task["create_time"] == api.emu.state.tasks[task_id].create_time
        read = await send(http, "GET", base + DETAIL, params={"id": task_id}, headers=token)
        video_url = read.json()["data"]["video_url"]
        assert_on_server_clock(
            float(video_url.split("Expires=")[1].split("&")[0]), read, offset, plus=1
        )
        download = await send(http, "GET", video_url)
        assert download.status == 200
        assert_on_server_clock(download.date(), download, offset)
        # The arrivals route maps its monotonic times onto the server clock.
        arrivals = await send(http, "GET", base + "/_emulator/arrivals/create")
        log = arrivals.json()
        assert_on_server_clock(log["server_time_now"], arrivals, offset)
        first_at = log["arrivals"][0][0]
        on_server = log["server_time_now"] - (log["monotonic_now"] - first_at)
        assert_on_server_clock(on_server, created, offset)
        assert api.emu.state.server_time() - time.time() == pytest.approx(offset, abs=0.01)


@pytest.mark.parametrize("offset", [600.0, -5.0])
async def test_callbacks_carry_the_server_clock(offset: float) -> None:
    received: list[tuple[Json, str]] = []

    async def receive(request: web.Request) -> web.Response:
        received.append((await request.json(), request.headers["Date"]))
        return web.Response()

    app = web.Application()
    app.router.add_post("/cb", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/cb"
        async with running(clock_offset_seconds=offset) as api:
            video = await api.upload()
            before = time.time()
            assert (await api.create(tts_body(video, callback=url)))["code"] == 0
            await until(lambda: bool(received), 2.0)
            after = time.time()
    finally:
        await runner.cleanup()
    ((body, date),) = received
    window = Reply(200, {}, b"", before, after)
    assert_on_server_clock(body["data"]["create_time"], window, offset)
    assert_on_server_clock(parsedate_to_datetime(date).timestamp(), window, offset)


# -- delays drawn over a range ------------------------------------------------------------------


def drawn_delays(state: EmulatorState, endpoint: str, count: int) -> list[float]:
    delays = []
    for _ in range(count):
        fault = state.take_fault(endpoint)
        assert fault is not None
        assert fault.seconds_max is None  # resolved for this request
        delays.append(fault.seconds)
    return delays


@pytest.mark.parametrize("kind", ["latency", "drop_after", "gateway_late"])
def test_injected_delays_are_drawn_in_range_and_repeat_with_the_seed(kind: Any) -> None:
    def delays(seed: int) -> list[float]:
        state = EmulatorState(dataclasses.replace(BASE, seed=seed))
        state.inject(Fault("detail", kind, seconds=0.1, seconds_max=0.5, count=None))
        result = drawn_delays(state, "detail", 400)
        label = "gateway_late 502" if kind == "gateway_late" else kind
        assert state.stats()["faults_applied"] == {"detail": {label: 400}}
        return result

    draws = delays(7)
    assert all(0.1 <= d <= 0.5 for d in draws)
    assert min(draws) < 0.12  # spread over the whole range
    assert max(draws) > 0.48
    assert len(set(draws)) == len(draws)
    assert delays(7) == draws
    assert delays(8) != draws


def test_rate_delays_are_drawn_from_the_same_seeded_generator() -> None:
    rate = FaultRate("reads", "latency", 1.0, seconds=0.2, seconds_max=0.3)
    settings = dataclasses.replace(BASE, fault_rates=(rate,))
    first = drawn_delays(EmulatorState(settings), "list", 200)
    assert all(0.2 <= d <= 0.3 for d in first)
    assert drawn_delays(EmulatorState(settings), "list", 200) == first
    # Without seconds_max nothing is drawn for the delay: the fixed delay is exact, and an
    # injected fault of a kind without a delay leaves the generator alone.
    fixed = dataclasses.replace(
        settings, fault_rates=(FaultRate("list", "latency", 1.0, seconds=0.2),)
    )
    assert set(drawn_delays(EmulatorState(fixed), "list", 20)) == {0.2}
    state = EmulatorState(settings)
    state.inject(Fault("list", "code", seconds=0.1, seconds_max=9.0))
    code = state.take_fault("list")
    assert code is not None
    assert (code.kind, code.seconds_max) == ("code", 9.0)
    assert drawn_delays(state, "list", 200) == first


async def test_latency_faults_sleep_their_drawn_delay() -> None:
    fault = Fault("detail", "latency", seconds=0.02, seconds_max=0.12, count=None)
    replay = EmulatorState(BASE)
    replay.inject(fault)
    expected = drawn_delays(replay, "detail", 6)
    assert max(expected) - min(expected) > 0.03  # seed 1 spreads them: the check means something
    async with running() as api:
        api.emu.inject(fault)
        for delay in expected:
            started = time.monotonic()
            assert (await api.detail("x"))["code"] == 40000
            took = time.monotonic() - started
            assert delay - SLACK <= took < delay + 0.1


async def test_drop_after_handles_after_its_drawn_delay() -> None:
    fault = Fault("create", "drop_after", seconds=0.1, seconds_max=0.2)
    replay = EmulatorState(BASE)
    replay.inject(fault)
    (delay,) = drawn_delays(replay, "create", 1)
    async with running() as api:
        video = await api.upload()
        api.emu.inject(fault)
        started = time.monotonic()
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await api.create(tts_body(video))
        (task,) = api.emu.state.tasks.values()
    assert delay - SLACK <= task.created_at - started < delay + 0.1


# -- gateway answers that let the origin go on --------------------------------------------------


async def late_create(api: Api, video: str, **body: object) -> Reply:
    """POST a create on a session of its own, closed before returning: no one waits for it."""
    url, token = api.emu.base_url + CREATE, {"access_token": str(api.token)}
    async with aiohttp.ClientSession() as http:
        return await send(http, "POST", url, json=tts_body(video, **body), headers=token)


async def test_gateway_late_answers_524_at_once_and_creates_the_task_later() -> None:
    delay = 0.3
    async with running() as api:
        video = await api.upload()
        api.emu.inject(Fault("create", "gateway_late", status=524, seconds=delay))
        sent = time.monotonic()
        reply = await late_create(api, video, screen_width=720)
        answered = time.monotonic()
        assert reply.status == 524
        assert reply.headers["Content-Type"].startswith("text/html")
        assert b"524" in reply.body
        assert answered - sent < delay / 2
        state = api.emu.state
        assert state.tasks == {}
        assert state.arrivals("create") == []  # the limiter has not seen it yet
        assert create_stats(api) == {
            "requests": 1,
            "rejected_40001": 0,
            "errors": 1,
            "handled_late": 0,
        }
        # The client is gone; the origin handles the request anyway, from the body it kept.
        await until(lambda: create_stats(api)["handled_late"] == 1, 2.0)
        (task,) = state.tasks.values()
        assert task.request == tts_body(video, screen_width=720)
        assert task.created_at - sent >= delay - SLACK
        (arrival,) = state.arrivals("create")
        assert arrival.accepted
        assert arrival.at - sent >= delay - SLACK
        assert task.create_time >= int(reply.before + delay)
        assert create_stats(api) == {
            "requests": 1,
            "rejected_40001": 0,
            "errors": 1,
            "handled_late": 1,
        }
        stats = state.stats()
        assert stats["faults_applied"] == {"create": {"gateway_late 524": 1}}
        assert stats["tasks_created"] == 1
        listed = await api.call("POST", "/open/v1/video_lip_sync/list", body={})
        assert [t["id"] for t in listed["data"]["list"]] == [task.id]
        assert (await api.wait_terminal(task.id))["status"] == 20


async def test_a_late_create_is_counted_in_the_rate_window_when_handled() -> None:
    delay = 0.3
    # K = 300: the create window is 0.2 s, shorter than the delay, so an arrival counted when
    # the client sent it would have left the window before the create below.
    async with running(time_scale=300.0, create_limit=1) as api:
        video = await api.upload()
        api.emu.inject(Fault("create", "gateway_late", status=524, seconds=delay))
        sent = time.monotonic()
        assert (await late_create(api, video)).status == 524
        await until(lambda: create_stats(api)["handled_late"] == 1, 2.0)
        refused = await api.create(tts_body(video))
        assert (refused["code"], refused["msg"]) == (40001, "超出RPM限制")
        late, normal = api.emu.state.arrivals("create")
        assert (late.accepted, normal.accepted) == (True, False)
        assert late.at - sent >= delay - SLACK
        assert normal.at - late.at < 0.2
        assert len(api.emu.state.tasks) == 1


async def test_a_late_create_can_itself_be_refused_with_40001() -> None:
    async with running(create_limit=1) as api:  # one create per (1 s) window
        video = await api.upload()
        api.emu.inject(Fault("create", "gateway_late", status=524, seconds=0.2))
        assert (await late_create(api, video)).status == 524
        # A create sent after the 524 reaches the limiter first and is admitted...
        created = await api.create(tts_body(video))
        assert created["code"] == 0
        await until(lambda: create_stats(api)["handled_late"] == 1, 2.0)
        # ...so the origin's late handling is refused, and nothing more is created.
        assert list(api.emu.state.tasks) == [created["data"]]
        assert [a.accepted for a in api.emu.state.arrivals("create")] == [True, False]
        assert create_stats(api) == {
            "requests": 2,
            "rejected_40001": 1,
            "errors": 1,
            "handled_late": 1,
        }
        assert api.emu.state.stats()["tasks_created"] == 1


async def test_a_late_create_checks_the_token_when_handled() -> None:
    async with running() as api:
        video = await api.upload()
        api.emu.inject(Fault("create", "gateway_late", status=504, seconds=0.1))
        reply = await late_create(api, video)
        assert (reply.status, b"504 Gateway Time-out" in reply.body) == (504, True)
        assert api.emu.revoke_tokens()  # before the origin gets to it
        await until(lambda: create_stats(api)["handled_late"] == 1, 2.0)
        assert api.emu.state.tasks == {}
        assert api.emu.state.arrivals("create") == []  # refused before the limiter
        assert create_stats(api)["rejected_40001"] == 0


async def test_a_late_upload_stores_the_body_it_read_before_answering() -> None:
    async with running() as api:
        data = await api.announce("lip_sync_video", "face.mp4")
        api.emu.inject(Fault("upload", "gateway_late", status=503, seconds=0.1))
        body = MP4_HEAD + bytes(1000)
        headers = {"Content-Type": "video/mp4"}
        reply = await send(api.http, "PUT", data["sign_url"], data=body, headers=headers)
        assert reply.status == 503
        record = api.emu.state.files[data["file_id"]]
        assert record.uploaded_at is None
        await until(lambda: record.uploaded_at is not None, 2.0)
        assert (record.bytes, record.head) == (len(body), body[:16])
        await api.wait_ready(data["file_id"])
        assert (await api.create(tts_body(data["file_id"])))["code"] == 0


async def test_drawn_gateway_late_faults_draw_their_delay() -> None:
    rate = FaultRate("create", "gateway_late", 1.0, status=524, seconds=0.05, seconds_max=0.15)
    async with running(fault_rates=(rate,)) as api:
        video = await api.upload()
        sent = time.monotonic()
        replies = [await late_create(api, video, screen_width=w) for w in (720, 1080)]
        assert [r.status for r in replies] == [524, 524]
        await until(lambda: create_stats(api)["handled_late"] == 2, 2.0)
        tasks = list(api.emu.state.tasks.values())
        assert len(tasks) == 2
        assert all(sent + 0.05 - SLACK <= t.created_at <= time.monotonic() for t in tasks)
        assert api.emu.state.stats()["faults_applied"] == {"create": {"gateway_late 524": 2}}


async def test_shutdown_cancels_pending_late_handling_cleanly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncio")
    server = EmulatorServer(dataclasses.replace(BASE, time_scale=60.0))
    async with server, aiohttp.ClientSession() as http:
        api = Api(http, server)
        await api.login()
        video = await api.upload()
        server.inject(Fault("create", "gateway_late", status=524, seconds=30.0, count=2))
        for _ in range(2):
            assert (await late_create(api, video)).status == 524
        late = server.app[LATE_KEY]
        assert late.pending == 2
        closing = time.monotonic()
    assert time.monotonic() - closing < 1.0  # cancelled, not waited for
    assert late.pending == 0
    stats = server.state.stats()
    assert (stats["tasks_created"], stats["endpoints"]["create"]["handled_late"]) == (0, 0)
    # A handling that would start after shutdown is closed, never left unawaited.
    late.start(anyio.lowlevel.checkpoint())
    assert late.pending == 0
    gc.collect()
    assert not [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]
