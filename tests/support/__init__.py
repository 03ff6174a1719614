"""Helpers shared by the tests: emulator settings at a shortened time scale, clients and
managers paced to it, a callback recorder, a fault-injecting proxy, an emulator process."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from typing import Any

import anyio
from aiohttp import web

from chanjing_async import AsyncChanjingClient, JobManager, LipSyncRequest, RetryPolicy, Timeouts
from chanjing_async.testing import (
    APP_ID,
    DEFAULT_TIME_SCALE,
    SECRET_KEY,
    Pace,
    emulator_settings,
    eventually,
    paced_client,
    paced_jobs,
)

__all__ = [
    "APP_ID",
    "JOB_POLL",
    "PACE",
    "SECRET_KEY",
    "SEED_EXAMPLE",
    "TIME_SCALE",
    "VOICE",
    "CallbackRecorder",
    "EmulatorProcess",
    "Proxy",
    "emulator_settings",
    "fail_fast",
    "job_manager",
    "make_client",
    "numbered",
    "start_emulator_process",
    "until",
]

TIME_SCALE = DEFAULT_TIME_SCALE  # the test kit's: a minute lasts one second
PACE = Pace(TIME_SCALE)

VOICE = "C-f2429d07554749839849497589199916"  # the create page's example voice
JOB_POLL = PACE.poll

# The request example of the API documentation's create page, verbatim.
SEED_EXAMPLE: dict[str, Any] = {
    "video_file_id": "e284db4d95de4220afe78132158156b5",
    "screen_width": 1080,
    "screen_height": 1920,
    "callback": "https://example.com/openapi/callback",
    "model": 0,
    "audio_type": "tts",
    "tts_config": {
        "text": "君不见黄河之水天上来,奔流到海不复回。",
        "audio_man_id": "C-f2429d07554749839849497589199916",
        "speed": 1,
        "pitch": 1,
    },
}

# Waits for a condition on state that signals no event (counters, the emulator's).
until = eventually


def fail_fast() -> dict[str, Any]:
    """Client options over the kit's pace: quick retries and short request timeouts, so a
    test fails fast where a user would wait."""
    return {
        "retry": RetryPolicy(max_retries=2, initial=0.01, maximum=0.05),
        "timeouts": Timeouts(total=5.0, connect=2.0, create_horizon=PACE.timeouts.create_horizon),
    }


def make_client(base_url: str, **overrides: Any) -> AsyncChanjingClient:
    """The kit's paced client, failing fast, for the test emulator at ``base_url`` (or a
    proxy before it)."""
    return paced_client(base_url, time_scale=TIME_SCALE, **{**fail_fast(), **overrides})


def numbered(video_id: str, n: int) -> LipSyncRequest:
    """A text-driven request saying "job <n>" (the number tells the tasks apart)."""
    return LipSyncRequest.tts(video_id, text=f"job {n}", audio_man_id=VOICE)


def job_manager(client: AsyncChanjingClient, **options: Any) -> JobManager:
    """The kit's paced manager; the suite re-reads the task list every 0.2 s while a create
    is ambiguous (its value before the kit)."""
    values: dict[str, Any] = {"reconcile_settle": 0.2}
    values.update(options)
    return paced_jobs(client, time_scale=TIME_SCALE, **values)


class CallbackRecorder:
    """A tiny loopback HTTP server recording the callbacks it receives."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.arrived = anyio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        self.arrived.set()
        return web.json_response({"ok": True})

    async def __aenter__(self) -> CallbackRecorder:
        app = web.Application()
        app.router.add_post("/callback", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/callback"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


class Proxy:
    """A loopback TCP relay that can stop listening (connections are refused) and resume."""

    def __init__(self, target_url: str) -> None:
        host, port = target_url.removeprefix("http://").split(":")
        self._target = (host, int(port))
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self._port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self._port}"

    async def listen(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self._port)

    async def stop_listening(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        async with anyio.create_task_group() as group:
            group.start_soon(pipe, reader, up_writer)
            group.start_soon(pipe, up_reader, writer)
        self._writers -= {writer, up_writer}

    async def __aenter__(self) -> Proxy:
        await self.listen()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_listening()


@dataclass
class EmulatorProcess:
    """An emulator in a process of its own, for commands run in- or out-of-process."""

    process: subprocess.Popen[str]
    base_url: str

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a ``chanjing`` subprocess: this emulator, its credentials and pace."""
        env = dict(os.environ)
        env.update(
            CHANJING_APP_ID=APP_ID,
            CHANJING_SECRET_KEY=SECRET_KEY,
            CHANJING_BASE_URL=self.base_url,
            CHANJING_TIME_SCALE=str(TIME_SCALE),
        )
        env.update(extra)
        return env

    def stop(self) -> None:
        """Terminate the process and close its pipe."""
        self.process.terminate()
        self.process.wait(timeout=10)
        assert self.process.stdout is not None
        self.process.stdout.close()

    def stats(self) -> dict[str, Any]:
        """``GET /_emulator/stats``."""
        with urllib.request.urlopen(f"{self.base_url}/_emulator/stats", timeout=5) as reply:
            data: dict[str, Any] = json.load(reply)
        return data


def start_emulator_process(*args: str) -> EmulatorProcess:
    """Start ``python -m chanjing_async.emulator`` on a free loopback port (test settings)."""
    command = [
        sys.executable,
        "-m",
        "chanjing_async.emulator",
        "--port=0",
        f"--app-id={APP_ID}",
        f"--secret-key={SECRET_KEY}",
        f"--time-scale={TIME_SCALE:g}",
        "--task-seconds=30",
        "--file-ready-seconds=3",
        "--seed=1",
        *args,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on " not in line:
        process.kill()
        raise RuntimeError(f"the emulator did not start: {line!r}")
    return EmulatorProcess(process, line.split("listening on ")[1].split()[0])
