"""The emulator's voices and text limit: the catalogue, ``extra_voices`` and nothing else."""

from __future__ import annotations

import dataclasses

import pytest

from chanjing_async.emulator._validation import MAX_TEXT_CHARS
from tests.emulator.test_emulator import BASE, running, tts_body

pytestmark = pytest.mark.anyio


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
