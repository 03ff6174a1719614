"""The emulator's voices and text limit: the catalogue, ``extra_voices`` and nothing else."""

from __future__ import annotations

import dataclasses

import pytest

from chanjing_async.emulator._validation import MAX_TEXT_CHARS
from tests.support import VOICE
from tests.support.emulator_helpers import BASE, HEX32, Api, Json, running, tts_body

pytestmark = pytest.mark.anyio


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


async def test_voices_are_those_listed_or_configured_and_texts_are_bounded() -> None:
    async with running(extra_voices=("C-my-own-voice",), create_limit=100) as api:
        video = await api.upload()
        listed = await api.call("GET", "/open/v1/list_common_audio", params={"size": "100"})
        voices = [voice["id"] for voice in listed["data"]["list"]]
        assert "C-my-own-voice" not in voices  # accepted, not listed (a customised voice)
        for voice in [*voices, "C-my-own-voice"]:
            config = {"text": "x" * MAX_TEXT_CHARS, "audio_man_id": voice}
            payload = await api.create(tts_body(video, tts_config=config))
            assert payload["code"] == 0, (voice, payload)
        config = {"text": "hi", "audio_man_id": "C-another-voice"}
        assert (await api.create(tts_body(video, tts_config=config)))["code"] == 40000


def test_settings_check_the_extra_voices() -> None:
    for bad in ("C-1", ("",), (None,)):
        with pytest.raises(ValueError, match="extra_voices must"):
            dataclasses.replace(BASE, extra_voices=bad)  # type: ignore[arg-type]
    assert dataclasses.replace(BASE, extra_voices=["a"]).extra_voices == ("a",)  # type: ignore[arg-type]
