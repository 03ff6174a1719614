"""The emulator over loopback, with raw aiohttp: what a client of the real API would see."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
import signal
import statistics
import sys
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from chanjing_async.emulator import EmulatorServer, EmulatorSettings, Fault, FaultRate, serve
from chanjing_async.emulator.__main__ import build_parser, main, settings_from_args
from chanjing_async.emulator._network import NetworkLatency
from chanjing_async.emulator._ratelimit import Arrival, WindowLimiter
from chanjing_async.emulator._validation import MAX_TEXT_CHARS
from tests.support import VOICE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.anyio

APP_ID = "test-app"
SECRET_KEY = "test-secret-key"
# K = 60: tasks take 0.5 s, files are ready 50 ms after the PUT, create allows 10 per second.
BASE = EmulatorSettings(
    app_id=APP_ID,
    secret_key=SECRET_KEY,
    time_scale=60.0,
    task_seconds=30.0,
    file_ready_seconds=3.0,
    seed=1,
)
BAD_CREDENTIALS = "参数错误: app_id 或 secret_key 错误"
HEX32 = re.compile(r"[0-9a-f]{32}")
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42"
Json = dict[str, Any]


class Api:
    """A bare-bones client: one token, envelope checks on every answer."""

    def __init__(self, http: aiohttp.ClientSession, emu: EmulatorServer) -> None:
        self.http = http
        self.emu = emu
        self.token: str | None = None

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Json:
        if headers is None:
            headers = {"access_token": self.token} if self.token else {}
        url = self.emu.base_url + path
        async with self.http.request(
            method, url, json=body, params=params, headers=headers
        ) as response:
            assert response.status == 200
            payload: Json = await response.json()
        assert set(payload) == {"trace_id", "code", "msg", "data"}
        assert HEX32.fullmatch(payload["trace_id"])
        if payload["code"] == 0:
            assert payload["msg"] == "success"
        else:
            assert payload["data"] is None
        return payload

    async def login(self) -> Json:
        payload = await self.call(
            "POST", "/open/v1/access_token", body={"app_id": APP_ID, "secret_key": SECRET_KEY}
        )
        self.token = payload["data"]["access_token"]
        return payload

    async def announce(self, service: str, name: str) -> Json:
        params = {"service": service, "name": name}
        payload = await self.call("GET", "/open/v1/common/create_upload_url", params=params)
        assert payload["code"] == 0, payload
        data: Json = payload["data"]
        return data

    async def file_detail(self, file_id: str) -> Json:
        return await self.call("GET", "/open/v1/common/file_detail", params={"id": file_id})

    async def upload(
        self,
        service: str = "lip_sync_video",
        name: str = "face.mp4",
        size: int = 32_000,
        head: bytes | None = None,
    ) -> str:
        """Announce, PUT and wait until ready; returns the file id.

        The body is ``head`` padded with zeros to ``size`` bytes; ``head`` defaults to an MP4
        header in the video bucket (the emulator fails tasks on undecodable videos) and to
        nothing elsewhere.
        """
        if head is None:
            head = MP4_HEAD if service == "lip_sync_video" else b""
        body = head + b"\0" * max(0, size - len(head))
        announced = await self.announce(service, name)
        headers = {"Content-Type": announced["mime_type"]}
        async with self.http.put(announced["sign_url"], data=body, headers=headers) as r:
            assert r.status == 200
        file_id: str = announced["file_id"]
        await self.wait_ready(file_id)
        return file_id

    async def wait_ready(self, file_id: str) -> None:
        with anyio.fail_after(2):
            while True:
                if (await self.file_detail(file_id))["data"]["status"] == 1:
                    return
                await anyio.sleep(0.01)

    async def create(self, body: Json) -> Json:
        return await self.call("POST", "/open/v1/video_lip_sync/create", body=body)

    async def detail(self, task_id: str) -> Json:
        return await self.call("GET", "/open/v1/video_lip_sync/detail", params={"id": task_id})

    async def wait_terminal(self, task_id: str) -> Json:
        with anyio.fail_after(3):
            while True:
                task: Json = (await self.detail(task_id))["data"]
                if task["status"] in (20, 30):
                    return task
                await anyio.sleep(0.02)


def tts_body(video: str, **overrides: object) -> Json:
    body: Json = {
        "video_file_id": video,
        "audio_type": "tts",
        "tts_config": {"text": ["君不见黄河之水天上来"], "audio_man_id": VOICE},
    }
    body.update(overrides)
    return body


@asynccontextmanager
async def running(**overrides: Any) -> AsyncIterator[Api]:
    """A fresh emulator with ``overrides`` on ``BASE`` and a logged-in client."""
    settings = dataclasses.replace(BASE, **overrides)
    async with EmulatorServer(settings) as emu, aiohttp.ClientSession() as http:
        api = Api(http, emu)
        await api.login()
        yield api


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with running() as client:
        yield client


# -- settings and faults ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"time_scale": 0}, "time_scale must be positive"),
        ({"time_scale": math.inf}, "time_scale must be a finite number"),
        ({"task_seconds": -1}, "task_seconds must not be negative"),
        ({"fail_rate": 1.5}, "fail_rate must be between 0 and 1"),
        ({"fail_rate": 0.6, "billing_fail_rate": 0.6}, "must not exceed 1"),
        ({"rate_window": "leaky"}, "rate_window must be"),
        ({"create_limit": 0}, "create_limit must be a positive integer"),
        ({"read_limit": True}, "read_limit must be a positive integer"),
        ({"secret_key": ""}, "secret_key must be a non-empty string"),
        ({"seed": 1.5}, "seed must be an integer"),
    ],
)
def test_settings_reject_bad_values(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(BASE, **overrides)


def test_settings_repr_hides_the_secret() -> None:
    assert SECRET_KEY not in repr(BASE)
    assert BASE.scaled(60) == 1


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


# -- auth -----------------------------------------------------------------------------------------


async def test_token_is_issued_with_an_absolute_expiry(api: Api) -> None:
    payload = await api.login()
    token, expire_in = payload["data"]["access_token"], payload["data"]["expire_in"]
    assert re.fullmatch(r"[A-Za-z0-9]{64}", token)
    # 86400 s at K = 60 is 1440 s from now, as a Unix time, not a TTL.
    assert abs(expire_in - (time.time() + 1440)) <= 2
    assert api.emu.state.stats()["tokens_issued"] == 2


async def test_a_new_token_invalidates_the_previous_one(api: Api) -> None:
    superseded = {"access_token": str(api.token)}
    await api.login()
    assert (await api.detail("x"))["msg"] == "任务不存在"  # the new token works
    old = await api.call("GET", "/open/v1/list_common_audio", headers=superseded)
    assert (old["code"], old["msg"]) == (10400, "AccessToken验证失败")


@pytest.mark.parametrize("headers", [{}, {"access_token": "bogus"}, {"access_token": ""}])
async def test_missing_or_unknown_token_gives_10400(api: Api, headers: dict[str, str]) -> None:
    payload = await api.call("GET", "/open/v1/list_common_audio", headers=headers)
    assert (payload["code"], payload["msg"]) == (10400, "AccessToken验证失败")


async def test_token_expires_after_its_scaled_ttl() -> None:
    async with running(token_ttl_seconds=6.0) as api:  # 0.1 s at K = 60
        assert (await api.detail("x"))["code"] == 40000
        await anyio.sleep(0.15)
        assert (await api.detail("x"))["code"] == 10400


@pytest.mark.parametrize(
    ("body", "code", "msg"),
    [
        ({"app_id": APP_ID, "secret_key": "wrong"}, 40000, "参数错误: app_id 或 secret_key 错误"),
        (
            {"app_id": "other", "secret_key": SECRET_KEY},
            40000,
            "参数错误: app_id 或 secret_key 错误",
        ),
        ({"app_id": APP_ID}, 400, "传入参数格式错误"),
        ({"app_id": APP_ID, "secret_key": 1}, 400, "传入参数格式错误"),
        ([APP_ID, SECRET_KEY], 400, "传入参数格式错误"),
    ],
)
async def test_token_request_errors(api: Api, body: object, code: int, msg: str) -> None:
    payload = await api.call("POST", "/open/v1/access_token", body=body)
    assert (payload["code"], payload["msg"]) == (code, msg)


async def test_token_request_with_a_non_json_body(api: Api) -> None:
    url = api.emu.base_url + "/open/v1/access_token"
    async with api.http.post(url, data=b"app_id=x") as response:
        assert (await response.json())["code"] == 400


# -- uploads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["service", "name"])
async def test_upload_url_requires_service_and_name(api: Api, missing: str) -> None:
    params = {"service": "lip_sync_video", "name": "a.mp4"}
    del params[missing]
    payload = await api.call("GET", "/open/v1/common/create_upload_url", params=params)
    assert (payload["code"], payload["msg"]) == (40000, f"参数错误: {missing}: is required")


@pytest.mark.parametrize(
    ("name", "mime_type"),
    [
        ("face.mp4", "video/mp4"),
        ("face.mov", "video/quicktime"),
        ("voice.m4a", "audio/mp4"),
        ("voice.mp3", "audio/mpeg"),
        ("blob", "application/octet-stream"),
    ],
)
async def test_upload_url_fields(api: Api, name: str, mime_type: str) -> None:
    data = await api.announce("lip_sync_audio", name)
    file_id = data["file_id"]
    assert HEX32.fullmatch(file_id)
    assert data["mime_type"] == mime_type
    assert data["key"] == f"lip_sync_audio/{file_id}/{name}"
    assert data["full_path"] == f"{api.emu.base_url}/_emulator/files/{file_id}/{name}"
    sign_url = data["sign_url"]
    assert sign_url.startswith(f"{api.emu.base_url}/_emulator/upload/{file_id}?OSSAccessKeyId=")
    assert re.search(r"&Expires=\d+&Signature=[0-9a-f]{64}$", sign_url)


async def test_file_becomes_ready_after_the_put_plus_the_delay() -> None:
    async with running(file_ready_seconds=12.0) as api:  # 0.2 s at K = 60
        data = await api.announce("lip_sync_video", "face.mp4")
        file_id = data["file_id"]
        before = (await api.file_detail(file_id))["data"]
        assert (before["status"], before["bytes"], before["service"]) == (0, 0, "lip_sync_video")
        headers = {"Content-Type": "video/mp4"}
        async with api.http.put(data["sign_url"], data=b"x" * 1234, headers=headers) as r:
            assert (r.status, await r.read()) == (200, b"")
        put_at = time.monotonic()
        after = (await api.file_detail(file_id))["data"]
        assert (after["status"], after["bytes"]) == (0, 1234)
        await api.wait_ready(file_id)
        assert time.monotonic() - put_at >= 0.2
        ready = (await api.file_detail(file_id))["data"]
        assert ready["file_path"] == data["full_path"]
        assert ready["name"] == "face.mp4"


async def test_unknown_file_and_missing_id(api: Api) -> None:
    payload = await api.file_detail("0" * 32)
    assert (payload["code"], payload["msg"]) == (40000, "文件不存在")
    payload = await api.call("GET", "/open/v1/common/file_detail")
    assert (payload["code"], payload["msg"]) == (40000, "参数错误: id: is required")


async def _put(api: Api, url: str, content_type: str) -> tuple[int, str]:
    async with api.http.put(url, data=b"data", headers={"Content-Type": content_type}) as r:
        return r.status, await r.text()


async def test_put_is_refused_like_object_storage() -> None:
    async with running(upload_url_ttl_seconds=6.0) as api:  # URLs live 0.1 s
        data = await api.announce("lip_sync_video", "face.mp4")
        url = data["sign_url"]
        status, text = await _put(api, url, "application/octet-stream")
        assert (status, "<Code>SignatureDoesNotMatch</Code>" in text) == (403, True)
        tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
        assert (await _put(api, tampered, "video/mp4"))[0] == 403
        assert api.emu.state.files[data["file_id"]].uploaded_at is None
        await anyio.sleep(0.15)
        status, text = await _put(api, url, "video/mp4")
        assert (status, "<Code>AccessDenied</Code>" in text) == (403, True)
        assert api.emu.state.stats()["endpoints"]["upload"] == {
            "requests": 3,
            "rejected_40001": 0,
            "errors": 3,
            "handled_late": 0,
        }


# -- create: validation and files ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"video_file_id": None}, "video_file_id: is required"),
        ({"video_file_id": ""}, "video_file_id: must be a non-empty string"),
        ({"video_file_id": 7}, "video_file_id: must be a non-empty string"),
        ({"audio_type": "video"}, 'audio_type: must be "tts" or "audio"'),
        ({"tts_config": None}, "tts_config: is required when audio_type is tts"),
        ({"tts_config": "hi"}, "tts_config: must be an object"),
        ({"tts_config": {"audio_man_id": VOICE}}, "tts_config.text: must be a non-empty string"),
        ({"tts_config": {"text": [], "audio_man_id": VOICE}}, "tts_config.text: must be"),
        ({"tts_config": {"text": ["a", ""], "audio_man_id": VOICE}}, "tts_config.text: must be"),
        ({"tts_config": {"text": "  ", "audio_man_id": VOICE}}, "tts_config.text: must be"),
        ({"tts_config": {"text": "hi"}}, "tts_config.audio_man_id: is required"),
        (
            {"tts_config": {"text": "x" * (MAX_TEXT_CHARS + 1), "audio_man_id": VOICE}},
            f"tts_config.text: must be at most 3999 characters in all, got {MAX_TEXT_CHARS + 1}",
        ),
        (
            {"tts_config": {"text": ["一" * 2000, "二" * 2000], "audio_man_id": VOICE}},
            "tts_config.text: must be at most 3999 characters in all, got 4000",
        ),
        (
            {"tts_config": {"text": "hi", "audio_man_id": "C-doesnotexist"}},
            "tts_config.audio_man_id: 没有找到对应的声音ID 'C-doesnotexist' (list_common_audio",
        ),
        (
            {"tts_config": {"text": "hi", "audio_man_id": "晓晓"}},
            "tts_config.audio_man_id: 没有找到对应的声音ID '晓晓' (list_common_audio lists the "
            "voice ids): '晓晓' is a voice name, its id is c52ba7f8141cd5221b965edf83525f20",
        ),
        (
            {"tts_config": {"text": "hi", "audio_man_id": VOICE, "speed": 2.5}},
            "tts_config.speed: must be between 0.5 and 2",
        ),
        (
            {"tts_config": {"text": "hi", "audio_man_id": VOICE, "speed": True}},
            "tts_config.speed: must be between 0.5 and 2",
        ),
        (
            {"tts_config": {"text": "hi", "audio_man_id": VOICE, "pitch": 0.05}},
            "tts_config.pitch: must be between 0.1 and 3",
        ),
        ({"audio_type": "audio"}, "audio_file_id: is required"),
        ({"volume": 0}, "volume: must be an integer between 1 and 100"),
        ({"volume": 50.0}, "volume: must be an integer between 1 and 100"),
        ({"backway": 3}, "backway: must be 1 or 2"),
        ({"backway": True}, "backway: must be 1 or 2"),
        ({"drive_mode": "chaos"}, 'drive_mode: must be "" or "random"'),
        ({"model": 3}, "model: must be 0, 1 or 2"),
        ({"model": 1.0}, "model: must be 0, 1 or 2"),
        ({"screen_width": 0}, "screen_width: must be a positive integer"),
        ({"screen_height": "1920"}, "screen_height: must be a positive integer"),
        ({"callback": "ftp://example.com/cb"}, "callback: must be an http(s) URL"),
        ({"callback": 5}, "callback: must be an http(s) URL"),
    ],
)
async def test_create_validation_names_the_field(api: Api, change: Json, message: str) -> None:
    # Validation runs before the file check, so no upload is needed.
    payload = await api.create(tts_body("0" * 32, **change))
    assert payload["code"] == 40000
    assert payload["msg"].startswith(f"参数错误: {message}")


async def test_create_needs_a_json_object(api: Api) -> None:
    payload = await api.create(["not", "an", "object"])  # type: ignore[arg-type]
    assert (payload["code"], payload["msg"]) == (40000, "参数错误: body: must be a JSON object")


@pytest.mark.parametrize("text", ["一二三四五", ["一二", "三四五"]])
async def test_text_as_string_or_list_is_accepted(api: Api, text: object) -> None:
    video = await api.upload()
    config = {"text": text, "audio_man_id": VOICE, "speed": 0.5, "pitch": 3}
    extras = {"model": 2, "backway": 2, "drive_mode": "random", "volume": 1, "callback": ""}
    extras["audio_type"] = None  # null is absent: the default, tts
    payload = await api.create(tts_body(video, tts_config=config, unknown_field=1, **extras))
    assert payload["code"] == 0
    task_id = payload["data"]
    assert HEX32.fullmatch(task_id)
    assert api.emu.state.tasks[task_id].duration == 1500  # 300 ms per character


async def test_audio_mode_needs_a_ready_audio_file_in_its_bucket(api: Api) -> None:
    video = await api.upload()
    in_video_bucket = await api.upload("lip_sync_video", "voice.mp3")
    body = {"video_file_id": video, "audio_type": "audio", "audio_file_id": in_video_bucket}
    payload = await api.create(body)
    assert (payload["code"], payload["msg"]) == (50000, "音频文件还未完成上传")
    audio = await api.upload("lip_sync_audio", "voice.mp3", size=64_000)
    payload = await api.create({**body, "audio_file_id": audio})
    assert payload["code"] == 0
    assert api.emu.state.tasks[payload["data"]].duration == 4000  # 64 kB of 128 kbit/s


async def test_video_must_be_uploaded_ready_and_in_its_bucket(api: Api) -> None:
    wrong_bucket = await api.upload("lip_sync_audio", "face.mp4")
    not_put = (await api.announce("lip_sync_video", "face.mp4"))["file_id"]
    for file_id in (wrong_bucket, not_put, "f" * 32):
        payload = await api.create(tts_body(file_id))
        assert (payload["code"], payload["msg"]) == (50000, "视频文件还未完成上传")
    assert api.emu.state.stats()["tasks_created"] == 0


async def test_forced_file_statuses(api: Api) -> None:
    video = await api.upload()
    api.emu.state.set_file_status(video, 99)
    assert (await api.create(tts_body(video)))["msg"] == "视频文件已删除"
    url = f"{api.emu.base_url}/_emulator/files/{video}/status"
    async with api.http.post(url, json={"status": 98}) as response:
        assert response.status == 200
        assert (await response.json())["status"] == 98
    assert (await api.file_detail(video))["data"]["msg"] == "文件内容安全检测失败"
    assert (await api.create(tts_body(video)))["msg"] == "视频文件内容安全检测失败"
    async with api.http.post(url, json={"status": "1"}) as response:
        assert response.status == 400
    async with api.http.post(url.replace(video, "0" * 32), json={"status": 1}) as response:
        assert response.status == 404
    api.emu.state.set_file_status(video, 1)
    assert (await api.create(tts_body(video)))["code"] == 0


# -- tasks ------------------------------------------------------------------------------------


async def test_lifecycle_queued_generating_succeeded(api: Api) -> None:
    video = await api.upload()
    created_wall = time.time()
    task_id = (await api.create(tts_body(video)))["data"]
    seen: list[tuple[int, int]] = []
    with anyio.fail_after(3):
        while True:
            task: Json = (await api.detail(task_id))["data"]
            seen.append((task["status"], task["progress"]))
            if task["status"] == 20:
                break
            await anyio.sleep(0.02)
    statuses = [status for status, _ in seen]
    assert seen[0] == (0, 0)
    assert 10 in statuses
    assert statuses == sorted(statuses)
    progress = [p for status, p in seen if status == 10]
    assert progress == sorted(progress)
    assert len(set(progress)) > 1
    assert max(progress) <= 99
    assert task == {
        "id": task_id,
        "status": 20,
        "progress": 100,
        "msg": "success",
        "video_url": f"{api.emu.base_url}/_emulator/results/{task_id}.mp4",
        "preview_url": f"{api.emu.base_url}/_emulator/results/{task_id}.jpg",
        "duration": 3000,
        "create_time": task["create_time"],
    }
    assert abs(task["create_time"] - created_wall) <= 1
    for url, content_type in (
        (task["video_url"], "video/mp4"),
        (task["preview_url"], "image/jpeg"),
    ):
        async with api.http.get(url) as response:
            assert (response.status, response.content_type) == (200, content_type)
            assert await response.read()


async def test_results_are_absent_before_success(api: Api) -> None:
    task_id = (await api.create(tts_body(await api.upload())))["data"]
    async with api.http.get(f"{api.emu.base_url}/_emulator/results/{task_id}.mp4") as response:
        assert response.status == 404


@pytest.mark.parametrize(
    ("overrides", "msg"),
    [
        ({"fail_rate": 1.0}, "视频生成失败: 素材人脸检测失败"),
        ({"billing_fail_rate": 1.0}, "扣费失败: 蝉豆不足"),
    ],
)
async def test_failed_tasks(overrides: dict[str, float], msg: str) -> None:
    async with running(task_seconds=6.0, **overrides) as api:
        payload = await api.create(tts_body(await api.upload()))
        assert payload["code"] == 0  # billing is checked after creation
        task = await api.wait_terminal(payload["data"])
        assert (task["status"], task["msg"], task["progress"]) == (30, msg, 99)
        assert (task["video_url"], task["preview_url"], task["duration"]) == ("", "", 0)
        result = f"{api.emu.base_url}/_emulator/results/{task['id']}.jpg"
        async with api.http.get(result) as response:
            assert response.status == 404


async def test_a_zero_length_task_is_terminal_at_once() -> None:
    async with running(task_seconds=0.0, fail_rate=1.0) as api:
        task_id = (await api.create(tts_body(await api.upload())))["data"]
        task = (await api.detail(task_id))["data"]
        assert (task["status"], task["progress"]) == (30, 0)


async def test_detail_errors(api: Api) -> None:
    payload = await api.detail("f" * 32)
    assert (payload["code"], payload["msg"]) == (40000, "任务不存在")
    payload = await api.call("GET", "/open/v1/video_lip_sync/detail")
    assert (payload["code"], payload["msg"]) == (40000, "参数错误: id: is required")


async def test_list_pages_newest_first(api: Api) -> None:
    video = await api.upload()
    ids = [(await api.create(tts_body(video)))["data"] for _ in range(3)]

    async def page(body: object) -> Json:
        return await api.call("POST", "/open/v1/video_lip_sync/list", body=body)

    first = (await page({"page": 1, "page_size": 2}))["data"]
    assert [task["id"] for task in first["list"]] == [ids[2], ids[1]]
    assert first["page_info"] == {"page": 1, "size": 2, "total_count": 3, "total_page": 2}
    second = (await page({"page": 2, "page_size": 2}))["data"]
    assert [task["id"] for task in second["list"]] == [ids[0]]
    assert set(second["list"][0]) == set(first["list"][0]) >= {"status", "progress", "duration"}
    default = (await page(None))["data"]
    assert default["page_info"] == {"page": 1, "size": 10, "total_count": 3, "total_page": 1}
    assert (await page({"page": 9}))["data"]["list"] == []
    for body, message in [
        ({"page": 0}, "参数错误: page: must be a positive integer"),
        ({"page": True}, "参数错误: page: must be a positive integer"),
        ({"page_size": 101}, "参数错误: page_size: must be an integer between 1 and 100"),
        ([1], "参数错误: body: must be a JSON object"),
    ]:
        assert (await page(body))["msg"] == message


async def test_voices_are_a_fixed_paged_catalogue(api: Api) -> None:
    async def voices(**params: str) -> Json:
        return await api.call("GET", "/open/v1/list_common_audio", params=params)

    first = (await voices())["data"]
    assert first["page_info"] == {"page": 1, "size": 10, "total_count": 26, "total_page": 3}
    example, voice = first["list"][:2]
    assert (example["id"], example["name"]) == (VOICE, "示例声音")  # the docs' example id
    assert set(voice) == {
        "id", "grade", "name", "gender", "lang", "desc", "speed", "pitch", "audition"
    }  # fmt: skip
    assert HEX32.fullmatch(voice["id"])
    last = (await voices(page="3", size="10"))["data"]["list"]
    assert len(last) == 6
    again = (await voices(page="1", size="26"))["data"]["list"]
    assert again[:10] == first["list"]  # deterministic
    async with api.http.get(voice["audition"]) as response:
        assert (response.status, response.content_type) == (200, "audio/mpeg")
    assert (await voices(size="0"))["msg"] == "参数错误: size: must be an integer between 1 and 100"
    assert (await voices(page="x"))["msg"] == "参数错误: page: must be a positive integer"


# -- rate limits ------------------------------------------------------------------------------


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


# -- faults -----------------------------------------------------------------------------------


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


async def test_latency_setting_delays_api_calls_but_not_uploads() -> None:
    async with running(latency_seconds=12.0) as api:  # 0.2 s at K = 60
        data = await api.announce("lip_sync_video", "face.mp4")
        started = time.monotonic()
        assert (await _put(api, data["sign_url"], "video/mp4"))[0] == 200
        assert time.monotonic() - started < 0.2
        await api.file_detail(data["file_id"])
        assert time.monotonic() - started >= 0.2


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
    status, text = await _put(api, data["sign_url"], "video/mp4")
    assert status == 500
    assert "<Code>InternalError</Code>" in text
    assert "oss down" in text
    async with api.http.delete(url) as response:
        assert (await response.json()) == {"faults": []}
    assert (await _put(api, data["sign_url"], "video/mp4"))[0] == 200
    for bad in ({"endpoint": "create"}, {"endpoint": "create", "kind": "code", "x": 1}, [1]):
        async with api.http.post(url, json=bad) as response:
            assert response.status == 400
    async with api.http.post(url, data=b"{") as response:
        assert response.status == 400


# -- stats ------------------------------------------------------------------------------------


async def test_stats_count_every_endpoint(api: Api) -> None:
    await api.upload()  # announce, PUT, at least one file_detail
    await api.create({})
    await api.detail("x")
    api.emu.inject(Fault(endpoint="list", kind="drop_before"))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.call("POST", "/open/v1/video_lip_sync/list", body={})
    async with api.http.get(api.emu.base_url + "/_emulator/stats") as response:
        served = await response.json()
    assert served == api.emu.state.stats()
    endpoints = served["endpoints"]
    assert set(endpoints) == {
        "access_token", "create_upload_url", "upload", "file_detail",
        "create", "detail", "list", "voices",
    }  # fmt: skip
    calm = {"rejected_40001": 0, "handled_late": 0}  # no 40001, no gateway_late fault
    assert endpoints["access_token"] == {"requests": 1, "errors": 0, **calm}
    assert endpoints["create_upload_url"]["requests"] == 1
    assert endpoints["upload"] == {"requests": 1, "errors": 0, **calm}
    assert endpoints["file_detail"]["requests"] >= 1
    assert endpoints["create"] == {"requests": 1, "errors": 1, **calm}
    assert endpoints["detail"] == {"requests": 1, "errors": 1, **calm}
    assert endpoints["list"] == {"requests": 1, "errors": 1, **calm}
    assert endpoints["voices"] == {"requests": 0, "errors": 0, **calm}
    assert (served["tokens_issued"], served["tasks_created"]) == (1, 0)


# -- callbacks --------------------------------------------------------------------------------


@asynccontextmanager
async def receiver(status: int = 200) -> AsyncIterator[tuple[str, list[Json]]]:
    """A callback receiver on 127.0.0.1:0 answering ``status``; yields its URL and the bodies."""
    bodies: list[Json] = []

    async def receive(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/cb", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/cb", bodies
    finally:
        await runner.cleanup()


async def wait_callbacks(api: Api, total: int) -> Json:
    with anyio.fail_after(3):
        while True:
            stats = api.emu.state.stats()
            done = stats["callbacks_sent"] + stats["callbacks_failed"] + stats["callbacks_dropped"]
            if done >= total:
                return stats
            await anyio.sleep(0.02)


@pytest.mark.parametrize("fail_rate", [0.0, 1.0])
async def test_callback_posts_the_detail_envelope(fail_rate: float) -> None:
    async with receiver() as (url, bodies), running(fail_rate=fail_rate, task_seconds=6.0) as api:
        video = await api.upload()
        task_id = (await api.create(tts_body(video, callback=url)))["data"]
        await api.create(tts_body(video))  # no callback URL: nothing is sent
        stats = await wait_callbacks(api, 1)
        assert (stats["callbacks_sent"], stats["callbacks_failed"]) == (1, 0)
        [body] = bodies
        assert (body["code"], body["msg"]) == (0, "success")
        assert HEX32.fullmatch(body["trace_id"])
        assert body["data"] == (await api.detail(task_id))["data"]
        assert body["data"]["status"] == (30 if fail_rate else 20)


async def test_callback_failures_are_counted() -> None:
    async with receiver(status=500) as (url, bodies), running(task_seconds=6.0) as api:
        video = await api.upload()
        await api.create(tts_body(video, callback=url))
        await api.create(tts_body(video, callback="http://127.0.0.1:9/closed"))
        stats = await wait_callbacks(api, 2)
        assert (stats["callbacks_sent"], stats["callbacks_failed"]) == (0, 2)
        assert len(bodies) == 1


async def test_callbacks_off_drops_them() -> None:
    async with receiver() as (url, bodies), running(callbacks=False, task_seconds=6.0) as api:
        video = await api.upload()
        task_id = (await api.create(tts_body(video, callback=url)))["data"]
        assert (await api.wait_terminal(task_id))["status"] == 20
        stats = await wait_callbacks(api, 1)
        assert (stats["callbacks_dropped"], stats["callbacks_sent"], bodies) == (1, 0, [])


# -- server and CLI ---------------------------------------------------------------------------


async def test_server_lifecycle() -> None:
    server = EmulatorServer(BASE)
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url
    async with server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.base_url)
        assert server.base_url in repr(server)
        with pytest.raises(RuntimeError, match="only once"):
            await server.__aenter__()
    assert "not running" in repr(server)


async def test_a_busy_port_fails_cleanly() -> None:
    async with EmulatorServer(BASE) as first:
        port = int(first.base_url.rsplit(":", 1)[1])
        with pytest.raises(OSError, match=r"(?i)in use"):
            async with EmulatorServer(BASE, port=port):
                pass


async def test_serve_runs_until_cancelled() -> None:
    urls: list[str] = []
    listening = anyio.Event()

    def ready(url: str) -> None:
        urls.append(url)
        listening.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: serve(BASE, "127.0.0.1", 0, ready=ready))
        with anyio.fail_after(2):
            await listening.wait()
        async with aiohttp.ClientSession() as http, http.get(urls[0] + "/_emulator/stats") as r:
            assert r.status == 200
        tg.cancel_scope.cancel()


def test_cli_arguments_become_settings() -> None:
    argv = (
        "--app-id a --secret-key s --time-scale 60 --task-seconds 5 --file-ready-seconds 1"
        " --fail-rate 0.1 --billing-fail-rate 0.2 --rate-window fixed --no-callbacks --seed 7"
        " --port 0"
    )
    ns = build_parser().parse_args(argv.split())
    settings = settings_from_args(ns)
    assert settings == dataclasses.replace(
        EmulatorSettings(),
        app_id="a",
        secret_key="s",
        time_scale=60.0,
        task_seconds=5.0,
        file_ready_seconds=1.0,
        fail_rate=0.1,
        billing_fail_rate=0.2,
        rate_window="fixed",
        callbacks=False,
        seed=7,
    )
    assert (ns.host, ns.port) == ("127.0.0.1", 0)
    assert settings_from_args(build_parser().parse_args([])) == EmulatorSettings()


def test_cli_rejects_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--time-scale", "0"])
    assert exit_info.value.code == 2
    assert "time_scale must be positive" in capsys.readouterr().err


async def test_cli_serves_until_interrupted() -> None:
    command = [sys.executable, "-m", "chanjing_async.emulator", "--port", "0"]
    command += ["--secret-key", "do-not-print-me", "--time-scale", "60"]
    async with await anyio.open_process(command) as process:
        assert process.stdout is not None
        banner = ""
        with anyio.fail_after(10):
            while not banner.endswith("Ctrl-C stops it.\n"):
                banner += (await process.stdout.receive()).decode()
        process.send_signal(signal.SIGINT)
        try:
            with anyio.fail_after(10):
                assert await process.wait() == 0
        finally:
            if process.returncode is None:
                process.kill()  # a failure, not a hang on exit
        assert re.match(
            r"Chanjing emulator listening on http://127\.0\.0\.1:\d+ "
            r"\(app_id=emulator-app, time scale 60\)\n",
            banner,
        )
        assert "do-not-print-me" not in banner
        assert "CHANJING_SECRET_KEY='<the --secret-key you gave>'" in banner


# -- list order -------------------------------------------------------------------------------


async def list_ids(api: Api, page: int, size: int) -> list[str]:
    body = {"page": page, "page_size": size}
    payload = await api.call("POST", "/open/v1/video_lip_sync/list", body=body)
    assert payload["code"] == 0, payload
    return [task["id"] for task in payload["data"]["list"]]


def test_settings_reject_an_unknown_list_order() -> None:
    unknown: Any = "sorted"
    with pytest.raises(ValueError, match="list_order must be one of 'newest', 'oldest', 'random'"):
        dataclasses.replace(BASE, list_order=unknown)
    assert BASE.list_order == "newest"


async def test_list_order_oldest_is_creation_order() -> None:
    async with running(list_order="oldest") as api:
        video = await api.upload()
        ids = [(await api.create(tts_body(video)))["data"] for _ in range(3)]
        assert await list_ids(api, 1, 2) == ids[:2]
        assert await list_ids(api, 2, 2) == ids[2:]
        assert await list_ids(api, 1, 10) == ids


async def test_list_order_random_reshuffles_on_every_call() -> None:
    async with running(list_order="random", create_limit=100, read_limit=1000) as api:
        video = await api.upload()
        ids = [(await api.create(tts_body(video)))["data"] for _ in range(30)]
        # Two full listings hold every task, in orders that differ (equal with odds 1/30!).
        first, second = await list_ids(api, 1, 30), await list_ids(api, 1, 30)
        assert sorted(first) == sorted(second) == sorted(ids)
        assert first != second
        # Pages are cut from a fresh shuffle each time: the same page changes between calls,
        # and repeated calls of page 1 alone reach every task (a miss has odds 30 * (2/3)**200).
        pages = [await list_ids(api, 1, 10) for _ in range(200)]
        assert all(len(page) == 10 for page in pages)
        assert len({tuple(page) for page in pages}) > 1
        assert set().union(*pages) == set(ids)


async def test_random_list_order_leaves_task_fates_alone() -> None:
    """Task fates depend on the seed alone, however many list calls come between creates."""
    fates: list[list[str | None]] = []
    for lists_between in (0, 3):
        async with running(
            list_order="random", fail_rate=0.5, create_limit=100, read_limit=1000
        ) as api:
            video = await api.upload()
            for _ in range(8):
                await api.create(tts_body(video))
                for _ in range(lists_between):
                    await list_ids(api, 1, 10)
            fates.append([task.failure for task in api.emu.state.tasks.values()])
    assert fates[0] == fates[1]
    assert None in fates[0]
    assert any(fates[0])


def test_cli_list_order_option() -> None:
    for order in ("newest", "oldest", "random"):
        ns = build_parser().parse_args(["--list-order", order])
        assert settings_from_args(ns).list_order == order
    assert build_parser().parse_args([]).list_order == "newest"


def test_cli_rejects_an_unknown_list_order(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--list-order", "sorted"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'sorted'" in capsys.readouterr().err


# -- expiring result URLs ---------------------------------------------------------------------

SIGNED = re.compile(r"\?Expires=(\d+\.\d{3})&Signature=([0-9a-f]{64})")


async def fetch(api: Api, url: str) -> tuple[int, str]:
    """GET ``url``; the status and the body as text (binary media decode with replacement)."""
    async with api.http.get(url) as response:
        return response.status, (await response.read()).decode(errors="replace")


async def finished_task(api: Api, **body: object) -> Json:
    task_id = (await api.create(tts_body(await api.upload(), **body)))["data"]
    task = await api.wait_terminal(task_id)
    assert task["status"] == 20, task
    return task


def signed_parts(api: Api, task: Json, field: str, ext: str) -> tuple[float, str]:
    """Check ``task[field]`` is the signed result URL of ``task``; its Expires and Signature."""
    plain = f"{api.emu.base_url}/_emulator/results/{task['id']}.{ext}"
    url: str = task[field]
    assert url.startswith(plain)
    match = SIGNED.fullmatch(url.removeprefix(plain))
    assert match, url
    return float(match[1]), match[2]


@pytest.mark.parametrize("ttl", [0, -5, math.inf, math.nan, True, "60"])
def test_settings_reject_a_bad_result_url_ttl(ttl: Any) -> None:
    message = "result_url_ttl_seconds must be None or a positive finite number"
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(BASE, result_url_ttl_seconds=ttl)


def test_result_url_ttl_defaults_to_never_and_accepts_a_positive_number() -> None:
    assert BASE.result_url_ttl_seconds is None
    for ttl in (0.5, 60):
        assert dataclasses.replace(BASE, result_url_ttl_seconds=ttl).result_url_ttl_seconds == ttl


async def test_result_urls_expire_after_the_ttl_and_a_fresh_read_renews_them() -> None:
    async with running(result_url_ttl_seconds=18.0, task_seconds=6.0) as api:  # 0.3 s valid
        task = await finished_task(api)
        read_at = time.time()
        expires, signature = signed_parts(api, task, "video_url", "mp4")
        assert read_at - 0.1 <= expires - 0.3 <= read_at + 0.001  # Expires keeps milliseconds
        preview_expires, preview_signature = signed_parts(api, task, "preview_url", "jpg")
        assert preview_expires == expires
        assert preview_signature != signature  # each signature covers its own file
        assert (await fetch(api, task["video_url"]))[0] == 200
        async with api.http.get(task["preview_url"]) as response:
            assert (response.status, response.content_type) == (200, "image/jpeg")

        await anyio.sleep(max(0.0, expires - time.time()) + 0.05)
        status, body = await fetch(api, task["video_url"])
        assert status == 403
        assert "<Code>AccessDenied</Code>" in body
        assert "Request has expired" in body

        fresh = (await api.detail(task["id"]))["data"]
        assert fresh["video_url"] != task["video_url"]
        assert signed_parts(api, fresh, "video_url", "mp4")[0] > expires
        async with api.http.get(fresh["video_url"]) as response:
            assert (response.status, response.content_type) == (200, "video/mp4")
            assert (await response.read())[4:8] == b"ftyp"
        stats = api.emu.state.stats()
        assert (stats["result_downloads"], stats["result_downloads_refused"]) == (3, 1)


async def test_result_urls_need_their_own_valid_signature() -> None:
    async with running(result_url_ttl_seconds=900.0, task_seconds=6.0) as api:  # 15 s valid
        task = await finished_task(api)
        url: str = task["video_url"]
        plain, query = url.split("?")
        expires, signature = signed_parts(api, task, "video_url", "mp4")
        flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
        later = f"{expires + 100:.3f}"
        refusals = {
            plain: "AccessDenied",  # no query at all
            f"{plain}?Expires={expires:.3f}": "AccessDenied",  # no signature
            f"{plain}?Expires={expires:.3f}&Signature={flipped}": "SignatureDoesNotMatch",
            f"{plain}?Expires={later}&Signature={signature}": "SignatureDoesNotMatch",
            f"{plain}?Expires=soon&Signature={signature}": "SignatureDoesNotMatch",
            f"{plain.replace('.mp4', '.jpg')}?{query}": "SignatureDoesNotMatch",
            url.replace(task["id"], "0" * 32): "SignatureDoesNotMatch",
        }
        for refused, code in refusals.items():
            status, body = await fetch(api, refused)
            assert (status, f"<Code>{code}</Code>" in body) == (403, True), refused
        assert (await fetch(api, url))[0] == 200
        stats = api.emu.state.stats()
        assert stats["result_downloads"] == 1
        assert stats["result_downloads_refused"] == len(refusals)


async def test_plain_result_urls_still_work_without_a_ttl(api: Api) -> None:
    task = await finished_task(api)
    assert "?" not in task["video_url"]
    assert (await fetch(api, task["video_url"] + "?Expires=1&Signature=junk"))[0] == 200
    assert (await fetch(api, task["preview_url"].replace(task["id"], "0" * 32)))[0] == 404
    stats = api.emu.state.stats()
    assert (stats["result_downloads"], stats["result_downloads_refused"]) == (1, 1)


async def test_list_items_and_callbacks_carry_signed_result_urls() -> None:
    overrides: dict[str, Any] = {"result_url_ttl_seconds": 600.0, "task_seconds": 6.0}
    async with receiver() as (url, bodies), running(**overrides) as api:
        task = await finished_task(api, callback=url)
        await wait_callbacks(api, 1)
        [body] = bodies
        called_back = body["data"]
        assert called_back["status"] == 20
        signed_parts(api, called_back, "video_url", "mp4")
        assert (await fetch(api, called_back["video_url"]))[0] == 200
        payload = await api.call("POST", "/open/v1/video_lip_sync/list", body={})
        [listed] = payload["data"]["list"]
        assert listed["id"] == task["id"]
        signed_parts(api, listed, "preview_url", "jpg")
        assert (await fetch(api, listed["preview_url"]))[0] == 200


async def test_failed_tasks_have_no_result_urls_to_sign() -> None:
    async with running(result_url_ttl_seconds=600.0, task_seconds=6.0, fail_rate=1.0) as api:
        task_id = (await api.create(tts_body(await api.upload())))["data"]
        task = await api.wait_terminal(task_id)
        assert (task["status"], task["video_url"], task["preview_url"]) == (30, "", "")


def test_cli_result_url_ttl_and_decode_check_options(capsys: pytest.CaptureFixture[str]) -> None:
    ns = build_parser().parse_args(["--result-url-ttl", "120", "--no-decode-check"])
    settings = settings_from_args(ns)
    assert (settings.result_url_ttl_seconds, settings.decode_check) == (120.0, False)
    defaults = settings_from_args(build_parser().parse_args([]))
    assert (defaults.result_url_ttl_seconds, defaults.decode_check) == (None, True)
    with pytest.raises(SystemExit) as exit_info:
        main(["--result-url-ttl", "0"])
    assert exit_info.value.code == 2
    assert "result_url_ttl_seconds must be None or a positive" in capsys.readouterr().err


# -- undecodable videos -----------------------------------------------------------------------

DECODE_FAILURE = "视频解析失败: video could not be decoded"
WEBM_HEAD = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01"


@pytest.mark.parametrize(
    ("name", "head", "size"),
    [
        ("face.mp4", b"", 32_000),  # all zeros
        ("face.mp4", b"RIFF\x00\x00\x00\x00AVI LIST", 32_000),
        ("face.mp4", b"ftypmp42", 32_000),  # ftyp, but at bytes 0..4
        ("face.mp4", MP4_HEAD[:7], 7),  # cut short before the box type ends
        ("face.mov", b"GIF89a", 32_000),
    ],
)
@pytest.mark.parametrize("seed", [1, 2, None])
async def test_an_undecodable_video_fails_early_whatever_the_seed(
    name: str, head: bytes, size: int, seed: int | None
) -> None:
    # Neither the seed nor the fail rates change the verdict on the video.
    async with running(seed=seed, task_seconds=30.0, billing_fail_rate=0.5) as api:  # 0.5 s
        video = await api.upload(name=name, size=size, head=head)
        assert api.emu.state.files[video].head == (head + b"\0" * size)[: min(16, size)]
        payload = await api.create(tts_body(video))
        assert payload["code"] == 0  # create accepts it: decoding happens in the task
        created = time.monotonic()
        seen: list[Json] = []
        with anyio.fail_after(3):
            while not seen or seen[-1]["status"] not in (20, 30):
                seen.append((await api.detail(payload["data"]))["data"])
                await anyio.sleep(0.01)
        task = seen[-1]
        assert (task["status"], task["msg"]) == (30, DECODE_FAILURE)
        assert 0 < task["progress"] < 20  # a little progress, then the decoder gave up
        assert (task["video_url"], task["preview_url"], task["duration"]) == ("", "", 0)
        assert time.monotonic() - created < 0.4  # well before the 0.5 s a task takes
        assert [t["status"] for t in seen[:-1]] == sorted(t["status"] for t in seen[:-1])


@pytest.mark.parametrize(
    ("name", "head"),
    [
        ("face.mp4", MP4_HEAD),
        ("face.mov", b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00"),
        ("face.webm", WEBM_HEAD),
    ],
)
async def test_mp4_mov_and_webm_videos_decode(name: str, head: bytes) -> None:
    async with running(task_seconds=6.0) as api:
        video = await api.upload(name=name, head=head)
        task_id = (await api.create(tts_body(video)))["data"]
        task = await api.wait_terminal(task_id)
        assert (task["status"], task["msg"]) == (20, "success")


async def test_decode_check_off_lets_any_bytes_through() -> None:
    async with running(decode_check=False, task_seconds=6.0) as api:
        video = await api.upload(head=b"not a video at all")
        task_id = (await api.create(tts_body(video)))["data"]
        assert (await api.wait_terminal(task_id))["status"] == 20


async def test_an_undecodable_video_leaves_other_task_fates_alone() -> None:
    """The bad video's task still takes its draw, so later tasks keep their seeded fates."""
    fates: list[list[str | None]] = []
    for decode_check in (True, False):
        async with running(decode_check=decode_check, fail_rate=0.5) as api:
            good, bad = await api.upload(), await api.upload(head=b"")
            for video in (good, bad, good, good, good, good, good, good):
                assert (await api.create(tts_body(video)))["code"] == 0
            fates.append([task.failure for task in api.emu.state.tasks.values()])
    checked, unchecked = fates
    assert checked[1] == DECODE_FAILURE
    assert unchecked[1] != DECODE_FAILURE
    assert checked[:1] + checked[2:] == unchecked[:1] + unchecked[2:]
    assert None in unchecked[2:]
    assert any(unchecked[2:])


async def test_an_undecodable_video_is_reported_by_callback_at_its_early_end() -> None:
    async with receiver() as (url, bodies), running(task_seconds=30.0) as api:  # 0.5 s tasks
        video = await api.upload(head=b"")
        created = time.monotonic()
        task_id = (await api.create(tts_body(video, callback=url)))["data"]
        await wait_callbacks(api, 1)
        assert time.monotonic() - created < 0.4
        [body] = bodies
        assert (body["data"]["id"], body["data"]["status"]) == (task_id, 30)
        assert body["data"]["msg"] == DECODE_FAILURE


# -- random network latency -------------------------------------------------------------------

# K = 1200: one real-scale second of latency lasts 0.83 ms, so trips of tens of real seconds
# stay in the tens of milliseconds.
FAST = 1200.0
# asyncio may run a timer up to one clock tick early.
SLACK = 0.002


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"latency_base_seconds": -1}, "latency_base_seconds must not be negative"),
        ({"latency_mean_seconds": math.inf}, "latency_mean_seconds must be a finite number"),
        ({"latency_tail_rate": 1.5}, "latency_tail_rate must be between 0 and 1"),
        ({"latency_tail_rate": -0.1}, "latency_tail_rate must not be negative"),
        ({"latency_tail_seconds": (3.0, 1.0)}, "latency_tail_seconds must have low <= high"),
        ({"latency_tail_seconds": (1.0,)}, "latency_tail_seconds must be a \\(low, high\\) pair"),
        ({"latency_tail_seconds": "ab"}, "latency_tail_seconds must be a \\(low, high\\) pair"),
        ({"latency_tail_seconds": (-1.0, 1.0)}, "latency_tail_seconds must not be negative"),
        ({"latency_tail_seconds": (0.0, math.nan)}, "latency_tail_seconds must be a finite"),
    ],
)
def test_settings_reject_bad_latency(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(BASE, **overrides)


def test_a_latency_tail_given_as_a_list_is_stored_as_a_tuple() -> None:
    settings = dataclasses.replace(BASE, latency_tail_seconds=[1, 2.5])  # type: ignore[arg-type]
    tail: object = settings.latency_tail_seconds
    assert isinstance(tail, tuple)
    assert tail == (1, 2.5)


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
        assert (await _put(api, data["sign_url"], "video/mp4"))[0] == 200
        put = time.monotonic() - started
        started = time.monotonic()
        async with api.http.get(api.emu.base_url + "/_emulator/stats") as response:
            stats = await response.json()
        control = time.monotonic() - started
    assert download >= floor - SLACK
    assert put >= floor - SLACK
    assert control < floor  # control routes are no network trip
    assert stats["result_downloads"] == 1


def test_cli_latency_options(capsys: pytest.CaptureFixture[str]) -> None:
    argv = "--latency-base 0.05 --latency-mean 0.15 --latency-tail-rate 0.05 --latency-tail 0.5 3"
    settings = settings_from_args(build_parser().parse_args(argv.split()))
    assert (
        settings.latency_base_seconds,
        settings.latency_mean_seconds,
        settings.latency_tail_rate,
        settings.latency_tail_seconds,
    ) == (0.05, 0.15, 0.05, (0.5, 3.0))
    assert "--latency-tail LO HI" in build_parser().format_help()
    with pytest.raises(SystemExit) as exit_info:
        main(["--latency-tail", "3", "1"])
    assert exit_info.value.code == 2
    assert "latency_tail_seconds must have low <= high" in capsys.readouterr().err


# -- random faults and token revocation ---------------------------------------------------------

DETAIL = "/open/v1/video_lip_sync/detail"


async def detail_codes(api: Api, count: int) -> list[int]:
    """The codes of ``count`` detail calls for an unknown id (40000 unless a fault answers)."""
    return [(await api.call("GET", DETAIL, params={"id": "0" * 32}))["code"] for _ in range(count)]


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


def test_settings_reject_fault_rates_over_one_per_endpoint() -> None:
    rates = (FaultRate("reads", "code", 0.6), FaultRate("detail", "gateway", 0.5))
    with pytest.raises(ValueError, match="fault_rates on detail add up to more than 1"):
        dataclasses.replace(BASE, fault_rates=rates)
    fault: Any = (Fault(endpoint="detail", kind="code"),)
    with pytest.raises(ValueError, match="fault_rates must be a tuple of FaultRate"):
        dataclasses.replace(BASE, fault_rates=fault)
    as_list: Any = [FaultRate("list", "code", 0.7)]
    listed = dataclasses.replace(BASE, fault_rates=as_list)
    assert isinstance(listed.fault_rates, tuple)
    assert BASE.fault_rates == ()


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


async def test_revoking_the_token_makes_the_next_call_answer_10400() -> None:
    async with running() as api:
        assert (await detail_codes(api, 1)) == [40000]
        assert api.emu.revoke_tokens() is True
        payload = await api.call("GET", DETAIL, params={"id": "x"})
        assert (payload["code"], payload["msg"]) == (10400, "AccessToken验证失败")
        assert api.emu.revoke_tokens() is False  # nothing left to revoke
        await api.login()
        assert (await detail_codes(api, 1)) == [40000]
        async with api.http.post(api.emu.base_url + "/_emulator/tokens/revoke") as response:
            assert (response.status, await response.json()) == (200, {"revoked": True})
        assert (await detail_codes(api, 1)) == [10400]
        stats = api.emu.state.stats()
    assert (stats["tokens_issued"], stats["tokens_revoked"]) == (2, 2)
    assert stats["faults_applied"] == {}
