"""The emulator's task controls: a chosen status for a task, and forgetting every task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from chanjing_async import InvalidRequestError, LipSyncRequest
from chanjing_async.emulator import EmulatorServer
from tests.support import emulator_settings, make_client

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from chanjing_async import AsyncChanjingClient

pytestmark = pytest.mark.anyio


@pytest.fixture
async def slow() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(emulator_settings(task_seconds=3600.0)) as server:
        yield server


async def post(emulator: EmulatorServer, path: str, body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{emulator.base_url}{path}", json=body) as response:
            return response.status, await response.json(content_type=None)


async def make_task(client: AsyncChanjingClient, files: tuple[str, str]) -> str:
    return await client.lip_sync.create(LipSyncRequest.audio(files[0], audio_file_id=files[1]))


@pytest.fixture
async def slow_files(slow: EmulatorServer, media: Any) -> AsyncIterator[tuple[str, str]]:
    async with make_client(slow.base_url) as client:
        video = await client.files.upload(media[0], service="lip_sync_video", poll_interval=0.01)
        audio = await client.files.upload(media[1], service="lip_sync_audio", poll_interval=0.01)
        yield video.id, audio.id


async def test_a_set_status_shows_on_detail_and_list_until_undone(
    slow: EmulatorServer, slow_files: tuple[str, str]
) -> None:
    async with make_client(slow.base_url) as client:
        task_id = await make_task(client, slow_files)
        status, body = await post(slow, f"/_emulator/tasks/{task_id}/status", {"status": 1100})
        assert status == 200
        assert (body["status"], body["msg"]) == (1100, "人工审核中")
        task = await client.lip_sync.get(task_id)
        assert (task.status, task.msg, task.video_url) == (1100, "人工审核中", "")
        page = await client.lip_sync.list(page=1, page_size=10)
        assert [(t.id, t.status) for t in page.items] == [(task_id, 1100)]

        slow.set_task_status(task_id, 40, msg="custom")
        task = await client.lip_sync.get(task_id)
        assert (task.status, task.msg) == (40, "custom")
        assert not slow.state.succeeded(task_id)

        status, body = await post(slow, f"/_emulator/tasks/{task_id}/status", {"status": None})
        assert status == 200
        assert body["status"] in (0, 10)  # back on its clock
        assert (await client.lip_sync.get(task_id)).status in (0, 10)


@pytest.mark.parametrize(
    "body", [None, [], {}, {"status": "40"}, {"status": 40.0}, {"status": 40, "msg": 5}]
)
async def test_a_bad_status_body_is_refused(
    slow: EmulatorServer, slow_files: tuple[str, str], body: Any
) -> None:
    async with make_client(slow.base_url) as client:
        task_id = await make_task(client, slow_files)
    status, answer = await post(slow, f"/_emulator/tasks/{task_id}/status", body)
    assert status == 400
    assert "status" in answer["error"]


async def test_a_status_for_an_unknown_task_is_404(slow: EmulatorServer) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"{slow.base_url}/_emulator/tasks/nope/status"
        async with session.post(url, json={"status": 40}) as response:
            assert response.status == 404


async def test_forgetting_every_task_is_a_restart_for_detail_and_list(
    slow: EmulatorServer, slow_files: tuple[str, str]
) -> None:
    async with make_client(slow.base_url) as client:
        ids = [await make_task(client, slow_files) for _ in range(3)]
        status, body = await post(slow, "/_emulator/tasks/forget")
        assert (status, body) == (200, {"forgotten": 3})
        with pytest.raises(InvalidRequestError) as caught:
            await client.lip_sync.get(ids[0])
        assert caught.value.code == 40000
        assert caught.value.msg == "任务不存在"
        page = await client.lip_sync.list(page=1, page_size=10)
        assert page.items == []
        assert page.page_info.total_count == 0
        # The server goes on: new tasks are created and listed as before.
        fresh = await make_task(client, slow_files)
        assert [t.id for t in (await client.lip_sync.list(page=1, page_size=10)).items] == [fresh]
    assert slow.forget_tasks() == 1
    assert slow.state.stats()["tasks_created"] == 4  # counters are kept


async def test_seeded_tasks_run_like_created_ones(slow: EmulatorServer) -> None:
    status, body = await post(slow, "/_emulator/tasks/seed", {"count": 3})
    assert status == 200
    ids = body["ids"]
    assert len(set(ids)) == 3
    assert slow.seed_tasks(2)[0] in slow.state.tasks
    async with make_client(slow.base_url) as client:
        page = await client.lip_sync.list(page=1, page_size=10)
        assert page.page_info.total_count == 5
        task = await client.lip_sync.get(ids[0])
        assert task.status in (0, 10)
    assert slow.state.stats()["tasks_created"] == 0  # no create made them
    for bad in (None, {"count": 0}, {"count": "3"}, {"count": 10**7}):
        status, answer = await post(slow, "/_emulator/tasks/seed", bad)
        assert status == 400
        assert "count" in answer["error"]
