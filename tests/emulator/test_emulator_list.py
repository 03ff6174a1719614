"""The emulator's task list: pages, and the newest, oldest or random order."""

from __future__ import annotations

import pytest

from tests.support.emulator_helpers import Api, Json, running, tts_body

pytestmark = pytest.mark.anyio


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


async def list_ids(api: Api, page: int, size: int) -> list[str]:
    body = {"page": page, "page_size": size}
    payload = await api.call("POST", "/open/v1/video_lip_sync/list", body=body)
    assert payload["code"] == 0, payload
    return [task["id"] for task in payload["data"]["list"]]


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
