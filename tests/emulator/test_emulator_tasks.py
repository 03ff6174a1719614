"""The emulator's tasks: create validation, the lifecycle, failures and detail."""

from __future__ import annotations

import time

import anyio
import pytest

from chanjing_async.emulator._validation import MAX_TEXT_CHARS
from tests.support import VOICE
from tests.support.emulator_helpers import HEX32, Api, Json, running, tts_body

pytestmark = pytest.mark.anyio


# -- create: validation ------------------------------------------------------------------------


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


# -- lifecycle and detail ----------------------------------------------------------------------


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
