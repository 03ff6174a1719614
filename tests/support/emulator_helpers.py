"""Raw-HTTP helpers for the emulator's tests: what a client of the real API would see.

``Api`` is a bare-bones client that checks the answer envelope on every call; ``running`` gives
a fresh emulator on ``BASE`` with changed settings and a logged-in ``Api`` (the ``api`` fixture
of ``tests/emulator/conftest.py`` is one on ``BASE`` unchanged).
"""

from __future__ import annotations

import dataclasses
import re
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
from aiohttp import web

from chanjing_async.emulator import EmulatorServer
from tests.support import APP_ID, SECRET_KEY, VOICE, emulator_settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

# K = 60: tasks take 0.5 s, files are ready 50 ms after the PUT, create allows 10 per second.
BASE = emulator_settings()
HEX32 = re.compile(r"[0-9a-f]{32}")
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42"
DETAIL = "/open/v1/video_lip_sync/detail"
# asyncio may run a timer up to one clock tick early.
SLACK = 0.002
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
    """A text-driven create body for ``video``, with ``overrides``."""
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


async def put_upload(api: Api, url: str, content_type: str) -> tuple[int, str]:
    """PUT a small body to a signed upload URL; the status and the answer as text."""
    async with api.http.put(url, data=b"data", headers={"Content-Type": content_type}) as r:
        return r.status, await r.text()


async def detail_codes(api: Api, count: int) -> list[int]:
    """The codes of ``count`` detail calls for an unknown id (40000 unless a fault answers)."""
    return [(await api.call("GET", DETAIL, params={"id": "0" * 32}))["code"] for _ in range(count)]


async def fetch(api: Api, url: str) -> tuple[int, str]:
    """GET ``url``; the status and the body as text (binary media decode with replacement)."""
    async with api.http.get(url) as response:
        return response.status, (await response.read()).decode(errors="replace")


async def finished_task(api: Api, **body: object) -> Json:
    """Upload a video, create a task with ``body`` and wait until it succeeds; its detail."""
    task_id = (await api.create(tts_body(await api.upload(), **body)))["data"]
    task = await api.wait_terminal(task_id)
    assert task["status"] == 20, task
    return task


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
    """Wait until ``total`` callbacks are sent, failed or dropped; the stats then."""
    with anyio.fail_after(3):
        while True:
            stats = api.emu.state.stats()
            done = stats["callbacks_sent"] + stats["callbacks_failed"] + stats["callbacks_dropped"]
            if done >= total:
                return stats
            await anyio.sleep(0.02)
