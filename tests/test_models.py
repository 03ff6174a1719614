"""Request validation (before anything is sent) and tolerant response parsing."""

from __future__ import annotations

from typing import Any

import pytest

from chanjing_async import (
    InvalidInputError,
    LipSyncJob,
    LipSyncRequest,
    LipSyncTask,
    Page,
    TaskStatus,
)
from chanjing_async.emulator._validation import MAX_TEXT_CHARS as EMULATOR_MAX_TEXT_CHARS
from chanjing_async.models import (
    MAX_TEXT_CHARS,
    AccessToken,
    FileDetail,
    TtsConfig,
    UploadUrl,
    check_page,
)
from chanjing_async.models._fields import FIELD, FIELDS
from tests.support import SEED_EXAMPLE


def tts(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "video_file_id": "v1",
        "tts_config": {"text": ["hello"], "audio_man_id": "voice"},
    }
    body.update(overrides)
    return body


def audio(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"video_file_id": "v1", "audio_type": "audio", "audio_file_id": "a1"}
    body.update(overrides)
    return body


def test_seed_example_is_accepted_and_text_goes_out_as_a_list() -> None:
    wire = LipSyncRequest(**SEED_EXAMPLE).to_wire()
    assert wire["tts_config"]["text"] == ["君不见黄河之水天上来,奔流到海不复回。"]
    assert wire["callback"] == "https://example.com/openapi/callback"
    assert "audio_file_id" not in wire


def test_documented_defaults_are_sent() -> None:
    wire = LipSyncRequest(**audio()).to_wire()
    assert wire == {
        "video_file_id": "v1",
        "audio_type": "audio",
        "audio_file_id": "a1",
        "screen_width": 1080,
        "screen_height": 1920,
        "backway": 1,
        "drive_mode": "",
        "model": 0,
        "volume": 100,
    }


def test_constructors_build_the_same_request_as_keywords() -> None:
    assert LipSyncRequest.tts("v1", text="hello", audio_man_id="voice") == LipSyncRequest(**tts())
    assert LipSyncRequest.audio("v1", audio_file_id="a1") == LipSyncRequest(**audio())


@pytest.mark.parametrize(
    ("body", "field", "allowed"),
    [
        ({"audio_type": "tts"}, "video_file_id", "is required"),
        (tts(video_file_id="  "), "video_file_id", "non-empty"),
        (tts(tts_config=None), "tts_config", "required when audio_type='tts'"),
        (tts(tts_config={"text": [], "audio_man_id": "v"}), "tts_config.text", "non-empty"),
        (tts(tts_config={"text": ["a", ""], "audio_man_id": "v"}), "tts_config.text", "non-empty"),
        (tts(tts_config={"text": "a"}), "tts_config.audio_man_id", "is required"),
        (
            tts(tts_config={"text": "a", "audio_man_id": "v", "speed": 2.5}),
            "tts_config.speed",
            "between 0.5 and 2",
        ),
        (
            tts(tts_config={"text": "a", "audio_man_id": "v", "speed": 0.4}),
            "tts_config.speed",
            "between 0.5 and 2",
        ),
        (
            tts(tts_config={"text": "a", "audio_man_id": "v", "pitch": 3.5}),
            "tts_config.pitch",
            "between 0.1 and 3",
        ),
        (tts(audio_file_id="a1"), "audio_file_id", "omitted when audio_type='tts'"),
        (audio(audio_file_id=None), "audio_file_id", "required when audio_type='audio'"),
        (audio(tts_config={"text": "a", "audio_man_id": "v"}), "tts_config", "omitted"),
        (audio(audio_type="video"), "audio_type", "'tts' or 'audio'"),
        (audio(volume=0), "volume", "between 1 and 100"),
        (audio(volume=101), "volume", "between 1 and 100"),
        (audio(backway=3), "backway", "1 or 2"),
        (audio(backway=True), "backway", "integer"),
        (audio(drive_mode="fast"), "drive_mode", "'' or 'random'"),
        (audio(model=3), "model", "0 or 1 or 2"),
        (audio(screen_width=0), "screen_width", "positive"),
        (audio(screen_height=-5), "screen_height", "positive"),
        (audio(callback="ftp://example.com/cb"), "callback", "http:// or https://"),
        (audio(callback="not a url"), "callback", "http:// or https://"),
        (audio(volumee=5), "volumee", "not a known field"),
    ],
)
def test_invalid_fields_are_named_with_value_and_rule(
    body: dict[str, Any], field: str, allowed: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        LipSyncRequest(**body)
    assert caught.value.field == field
    assert allowed in caught.value.allowed
    assert str(caught.value).startswith(f"{field}=")


def test_text_is_bounded_as_the_emulator_bounds_it() -> None:
    assert MAX_TEXT_CHARS == EMULATOR_MAX_TEXT_CHARS  # the SDK refuses what the emulator would
    accepted = LipSyncRequest.tts("v", text=["长" * 3000, "x" * 999], audio_man_id="C-1")
    assert accepted.tts_config is not None
    assert sum(map(len, accepted.tts_config.text)) == 3999
    with pytest.raises(InvalidInputError) as caught:
        LipSyncRequest.tts("v", text=["长" * 3000, "x" * 1000], audio_man_id="C-1")
    assert str(caught.value) == (
        "tts_config.text='4,000 characters': "
        "must be at most 3,999 characters in all (the TTS limit: under 4,000)"
    )


def test_tts_config_alone_names_its_wire_prefix() -> None:
    with pytest.raises(InvalidInputError, match=r"^tts_config\.speed=3: must be between"):
        TtsConfig(text=["a"], audio_man_id="v", speed=3)


def test_invalid_input_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="volume=0"):
        LipSyncRequest(**audio(volume=0))


def test_model_two_is_accepted_and_documented() -> None:
    assert LipSyncRequest(**audio(model=2)).model == 2
    assert "cartoon" in (LipSyncRequest.__doc__ or "")


@pytest.mark.parametrize(
    ("page", "size", "field"),
    [(0, 10, "page"), (1, 0, "page_size"), (1, 101, "page_size"), (True, 10, "page")],
)
def test_check_page(page: int, size: int, field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_page(page, size)
    assert caught.value.field == field


def test_responses_tolerate_unknown_fields_and_unknown_statuses() -> None:
    task = LipSyncTask.model_validate(
        {"id": "t", "status": 20, "progress": 100, "create_time": 1738636800, "new_field": 1}
    )
    assert task.succeeded
    assert task.is_terminal
    assert not task.failed
    assert task.created_at.year == 2025
    running = LipSyncTask.model_validate({"id": "t", "status": 10, "video_url": None, "msg": None})
    assert running.video_url == ""
    assert running.msg == ""
    odd = LipSyncTask.model_validate({"id": "t", "status": 15})
    assert not odd.is_terminal
    page = Page[LipSyncTask].model_validate(
        {
            "list": [{"id": "a", "status": 0}],
            "page_info": {"page": 1, "size": 10, "total_count": 1, "total_page": 1},
        }
    )
    assert [t.id for t in page.items] == ["a"]
    assert TaskStatus.FAILED.is_terminal
    assert not TaskStatus.GENERATING.is_terminal


@pytest.mark.parametrize(
    ("status", "failed"),
    [
        *[(status, True) for status in (30, 40, 41, 50, 1101)],
        *[(status, False) for status in (0, 10, 1100, 15, -1, 10**12)],
    ],
)
def test_only_20_succeeds_and_the_failure_statuses_are_terminal(status: int, failed: bool) -> None:
    task = LipSyncTask.model_validate({"id": "t", "status": status, "msg": "m"})
    assert not task.succeeded
    assert task.failed is failed
    assert task.is_terminal is failed


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: LipSyncRequest.tts("v", text="hi\udc00", audio_man_id="C-1"), "tts_config.text"),
        (
            lambda: LipSyncRequest.tts("v", text=["ok", "\ud800"], audio_man_id="C"),
            "tts_config.text",
        ),
        (
            lambda: LipSyncRequest.tts("v", text="hi", audio_man_id="C\udc80"),
            "tts_config.audio_man_id",
        ),
        (lambda: LipSyncRequest.tts("v\udc80", text="hi", audio_man_id="C"), "video_file_id"),
        (lambda: LipSyncRequest.audio("v", audio_file_id="a\udfff"), "audio_file_id"),
        (
            lambda: LipSyncRequest.audio("v", audio_file_id="a", callback="https://h/\udc80"),
            "callback",
        ),
        (
            lambda: LipSyncRequest.model_validate(
                {"video_file_id": "v", "tts_config": {"text": "\udc00", "audio_man_id": "C"}}
            ),
            "tts_config.text",
        ),
    ],
)
def test_text_that_utf8_cannot_encode_is_refused_naming_its_field(build: Any, field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        build()
    assert caught.value.field == field
    assert "UTF-8" in caught.value.allowed
    str(caught.value).encode("utf-8")  # the message itself can be printed and logged


def test_file_detail_ready_and_failed_statuses() -> None:
    assert FileDetail.model_validate({"id": "f", "status": 1}).is_ready
    assert FileDetail.model_validate({"id": "f", "status": 2}).is_ready
    assert FileDetail.model_validate({"id": "f", "status": 98}).is_failed
    assert not FileDetail.model_validate({"id": "f", "status": 0}).is_ready


def test_secrets_do_not_show_in_reprs() -> None:
    token = AccessToken.model_validate({"access_token": "tok-123456", "expire_in": 1})
    upload = UploadUrl.model_validate(
        {"sign_url": "http://x/u?Signature=abc", "mime_type": "video/mp4", "file_id": "f"}
    )
    assert "tok-123456" not in repr(token)
    assert "tok-123456" not in str(token)
    assert "Signature=abc" not in repr(upload)


def test_a_local_path_the_system_cannot_use_is_refused_naming_the_field() -> None:
    # is_file() raises OSError (ENAMETOOLONG) for a name longer than the system allows: it
    # must not escape as a raw error.
    with pytest.raises(InvalidInputError, match="video") as caught:
        LipSyncJob.tts("x" * 300 + ".mp4", text="hi", audio_man_id="C-1")
    assert "usable path" in str(caught.value)


def test_the_request_takes_each_default_and_check_from_the_field_table() -> None:
    wire = LipSyncRequest.tts("v", text="hi", audio_man_id="C-1").to_wire()
    config = wire["tts_config"]
    for field in FIELDS:
        name = field.request.removeprefix("tts_config.")
        if field.default is not None:
            assert (config if field.request.startswith("tts_config.") else wire)[name] == (
                field.default
            ), field
    with pytest.raises(InvalidInputError) as caught:
        LipSyncRequest.tts("v", text="hi", audio_man_id="C-1", volume=0)
    check = FIELD["volume"].check
    assert check is not None
    with pytest.raises(ValueError, match=caught.value.allowed):
        check(0)
