"""The emulator's callbacks: the detail envelope, POSTed once; failures and drops counted."""

from __future__ import annotations

import pytest

from tests.support.emulator_helpers import HEX32, receiver, running, tts_body, wait_callbacks

pytestmark = pytest.mark.anyio


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
