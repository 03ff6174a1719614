"""The emulator's result URLs: plain, or signed and expiring (renewed by each read)."""

from __future__ import annotations

import re
import time
from typing import Any

import anyio
import pytest

from tests.support.emulator_helpers import (
    Api,
    Json,
    fetch,
    finished_task,
    receiver,
    running,
    tts_body,
    wait_callbacks,
)

pytestmark = pytest.mark.anyio


SIGNED = re.compile(r"\?Expires=(\d+\.\d{3})&Signature=([0-9a-f]{64})")


def signed_parts(api: Api, task: Json, field: str, ext: str) -> tuple[float, str]:
    """Check ``task[field]`` is the signed result URL of ``task``; its Expires and Signature."""
    plain = f"{api.emu.base_url}/_emulator/results/{task['id']}.{ext}"
    url: str = task[field]
    assert url.startswith(plain)
    match = SIGNED.fullmatch(url.removeprefix(plain))
    assert match, url
    return float(match[1]), match[2]


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
