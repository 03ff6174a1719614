"""The emulator's files: upload URLs, the PUT, readiness, statuses and undecodable videos."""

from __future__ import annotations

import re
import time

import anyio
import pytest

from tests.support.emulator_helpers import (
    HEX32,
    MP4_HEAD,
    Api,
    Json,
    put_upload,
    receiver,
    running,
    tts_body,
    wait_callbacks,
)

pytestmark = pytest.mark.anyio


# -- uploads -----------------------------------------------------------------------------------


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


async def test_put_is_refused_like_object_storage() -> None:
    async with running(upload_url_ttl_seconds=6.0) as api:  # URLs live 0.1 s
        data = await api.announce("lip_sync_video", "face.mp4")
        url = data["sign_url"]
        status, text = await put_upload(api, url, "application/octet-stream")
        assert (status, "<Code>SignatureDoesNotMatch</Code>" in text) == (403, True)
        tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
        assert (await put_upload(api, tampered, "video/mp4"))[0] == 403
        assert api.emu.state.files[data["file_id"]].uploaded_at is None
        await anyio.sleep(0.15)
        status, text = await put_upload(api, url, "video/mp4")
        assert (status, "<Code>AccessDenied</Code>" in text) == (403, True)
        assert api.emu.state.stats()["endpoints"]["upload"] == {
            "requests": 3,
            "rejected_40001": 0,
            "errors": 3,
            "handled_late": 0,
        }


# -- files a create refers to ------------------------------------------------------------------


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


# -- undecodable videos ------------------------------------------------------------------------


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
