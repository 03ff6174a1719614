"""The emulator's server: its lifecycle, ``serve`` and the statistics it keeps."""

from __future__ import annotations

import re

import aiohttp
import anyio
import pytest

from chanjing_async.emulator import EmulatorServer, Fault, serve
from tests.support.emulator_helpers import BASE, Api

pytestmark = pytest.mark.anyio


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
