"""Property-based tests: no input crashes the models or the envelope decoder untyped.

* Request models: ``LipSyncRequest(**anything)``, ``LipSyncRequest.tts(...)`` and
  ``LipSyncRequest.audio(...)`` either build a request that is within every documented range
  (and serialises to JSON), or raise :class:`InvalidInputError` naming a field - never a raw
  pydantic ``ValidationError``, ``TypeError`` or anything else.
* Envelope decoding (``_transport._decode``): arbitrary bytes, JSON values, envelope-like objects
  with fields of any type and HTML pages, under any HTTP status, either give an ``Envelope`` or
  raise our typed errors; a JSON body is never quoted in an error (it may hold a token).
* Response data (``_resources.parse``): anything in ``data`` gives the model or a
  ``ResponseValidationError``.

The cases the first runs found (a keyword named ``self`` or ``""``, factory options naming a
field the factory sets, ``model_validate``, millisecond ``create_time``) are pinned by the
tests at the end.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chanjing_async.client._endpoints import LIP_SYNC_DETAIL
from chanjing_async.client._resources import parse
from chanjing_async.client._transport import _decode
from chanjing_async.errors import (
    APIError,
    ChanjingError,
    HTTPStatusError,
    InvalidInputError,
    ResponseValidationError,
    error_for_code,
)
from chanjing_async.models import Envelope, FileDetail, LipSyncRequest, LipSyncTask, Page, TtsConfig

if TYPE_CHECKING:
    from collections.abc import Callable

# Hypothesis's report of a failing example touches mypy_extensions.TypedDict, whose deprecation
# warning pytest (filterwarnings = error) would turn into an INTERNALERROR hiding the failure.
pytestmark = [
    pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict:DeprecationWarning"),
    pytest.mark.slow,
]

PROPERTIES = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

FIELDS = (
    "video_file_id",
    "audio_type",
    "tts_config",
    "audio_file_id",
    "screen_width",
    "screen_height",
    "backway",
    "drive_mode",
    "model",
    "volume",
    "callback",
)
TTS_FIELDS = ("text", "audio_man_id", "speed", "pitch")

# ---- strategies

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-3, max_value=105),
    st.floats(),  # nan and infinities included
    st.floats(min_value=0, max_value=4),
    st.text(max_size=20),
    st.sampled_from(["", " ", "tts", "audio", "random", "http://x", "https://[::1", "ftp://x"]),
    st.binary(max_size=8),
)
anything = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=12,
)


ids = st.text(st.characters(codec="utf-8"), min_size=1, max_size=8).filter(str.strip)
VALID: dict[str, st.SearchStrategy[Any]] = {
    "video_file_id": ids,
    "audio_file_id": ids,
    "audio_type": st.sampled_from(["tts", "audio"]),
    "screen_width": st.integers(1, 4000),
    "screen_height": st.integers(1, 4000),
    "backway": st.sampled_from([1, 2]),
    "drive_mode": st.sampled_from(["", "random"]),
    "model": st.sampled_from([0, 1, 2]),
    "volume": st.integers(1, 100),
    "callback": st.sampled_from(["http://a/b", "https://example.com/cb?sig=1", None]),
    "text": st.one_of(ids, st.lists(ids, min_size=1, max_size=3)),
    "audio_man_id": ids,
    "speed": st.one_of(st.floats(0.5, 2.0), st.just(1), st.just(2)),
    "pitch": st.one_of(st.floats(0.1, 3.0), st.just(1), st.just(3)),
}
"""Values each field accepts."""
NEAR: dict[str, st.SearchStrategy[Any]] = {
    "video_file_id": st.text(max_size=6),
    "audio_file_id": st.text(max_size=6),
    "audio_type": st.sampled_from(["tts", "audio", "", "TTS"]),
    "screen_width": st.integers(-2, 2),
    "screen_height": st.integers(-2, 2),
    "backway": st.integers(0, 3),
    "drive_mode": st.sampled_from(["", "random", "Random", "shuffle"]),
    "model": st.integers(-1, 5),
    "volume": st.sampled_from([-1, 0, 1, 100, 101, 10**20]),
    "callback": st.sampled_from(["ftp://x", "http://", "x", "https://[::1", "http://[x]", ""]),
    "text": st.one_of(st.text(max_size=3), st.lists(st.text(max_size=3), max_size=3)),
    "audio_man_id": st.text(max_size=3),
    "speed": st.one_of(
        st.floats(0.4, 2.1), st.sampled_from([0.4999, 2.0001, math.nan, math.inf, True])
    ),
    "pitch": st.one_of(st.floats(0, 3.2), st.sampled_from([0.0999, 3.0001, -math.inf, False])),
}
"""Values around what each field accepts (both sides of each bound) and odd ones."""


def plausible(name: str) -> st.SearchStrategy[Any]:
    """Mostly a value ``name`` accepts, else one near a bound, else anything at all."""
    return st.one_of(VALID[name], VALID[name], VALID[name], NEAR[name], anything)


tts_configs = st.one_of(
    st.fixed_dictionaries(
        {"text": plausible("text"), "audio_man_id": plausible("audio_man_id")},
        optional={"speed": plausible("speed"), "pitch": plausible("pitch")},
    ),
    st.builds(TtsConfig, text=VALID["text"], audio_man_id=VALID["audio_man_id"]),
)
VALID["tts_config"] = tts_configs
NEAR["tts_config"] = st.one_of(
    st.none(), st.fixed_dictionaries({}, optional={f: plausible(f) for f in TTS_FIELDS})
)


keys = st.one_of(
    st.sampled_from(FIELDS), st.sampled_from((*TTS_FIELDS, "trace_id")), st.text(max_size=10)
)
OPTIONS = ("screen_width", "screen_height", "backway", "drive_mode", "model", "volume", "callback")
valid_kwargs = st.one_of(
    st.fixed_dictionaries(
        {"video_file_id": VALID["video_file_id"], "tts_config": VALID["tts_config"]},
        optional={"audio_type": st.just("tts"), **{f: VALID[f] for f in OPTIONS}},
    ),
    st.fixed_dictionaries(
        {
            "video_file_id": VALID["video_file_id"],
            "audio_type": st.just("audio"),
            "audio_file_id": VALID["audio_file_id"],
        },
        optional={f: VALID[f] for f in OPTIONS},
    ),
)


@st.composite
def one_field_off(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request's keywords with one field set, removed or added at random."""
    kwargs: dict[str, Any] = draw(valid_kwargs)
    name = draw(st.one_of(st.sampled_from(FIELDS), keys))
    change = draw(st.sampled_from(["near", "anything", "remove"]))
    if change == "remove":
        kwargs.pop(name, None)
    elif change == "near" and name in NEAR:
        kwargs[name] = draw(NEAR[name])
    else:
        kwargs[name] = draw(anything)
    return kwargs


request_kwargs = st.one_of(
    valid_kwargs,
    one_field_off(),
    st.fixed_dictionaries(
        {"video_file_id": plausible("video_file_id")},
        optional={f: plausible(f) for f in FIELDS if f != "video_file_id"},
    ),
    st.fixed_dictionaries({}, optional={f: plausible(f) for f in FIELDS}),
    st.dictionaries(keys, anything, max_size=6),
)


def factory_options(factory: str) -> st.SearchStrategy[dict[str, Any]]:
    """Extra create fields for ``tts``/``audio`` (its own parameter names left out: Python
    refuses those at the call site, before any of our code runs)."""
    own = {"video_file_id", "cls", *TTS_FIELDS} if factory == "tts" else {"video_file_id", "cls"}
    own |= {"audio_file_id"} if factory == "audio" else set()
    allowed = [f for f in FIELDS if f not in own]
    return st.fixed_dictionaries({}, optional={f: plausible(f) for f in allowed})


def check_outcome(build: Any) -> None:
    """``build()`` gives a request within every range, or raises InvalidInputError only."""
    try:
        request = build()
    except InvalidInputError as exc:
        failure = exc
    else:
        check_request(request)
        return
    assert failure.field
    assert str(failure).startswith(failure.field)


def check_request(request: object) -> None:
    """Every documented range holds, and the body is plain JSON."""
    assert isinstance(request, LipSyncRequest)
    wire = request.to_wire()
    json.dumps(wire, allow_nan=False)  # nan/inf never get through
    assert wire["video_file_id"].strip()
    assert wire["screen_width"] > 0
    assert wire["screen_height"] > 0
    assert wire["backway"] in (1, 2)
    assert wire["drive_mode"] in ("", "random")
    assert wire["model"] in (0, 1, 2)
    assert 1 <= wire["volume"] <= 100
    if wire["audio_type"] == "tts":
        tts = wire["tts_config"]
        assert "audio_file_id" not in wire
        assert tts["text"]
        assert all(isinstance(part, str) and part.strip() for part in tts["text"])
        assert tts["audio_man_id"].strip()
        assert 0.5 <= tts["speed"] <= 2.0
        assert 0.1 <= tts["pitch"] <= 3.0
    else:
        assert wire["audio_type"] == "audio"
        assert "tts_config" not in wire
        assert wire["audio_file_id"].strip()
    if "callback" in wire:
        assert wire["callback"].startswith(("http://", "https://"))


# ---- request models


@PROPERTIES
@given(request_kwargs)
@example({"video_file_id": "v", "tts_config": {"text": "hi", "audio_man_id": "a"}})
@example({"video_file_id": "v", "audio_type": "audio", "audio_file_id": "a", "volume": math.nan})
@example({"video_file_id": "v", "tts_config": {"text": ["a", ""], "audio_man_id": "a"}})
def test_request_from_any_keywords(kwargs: dict[str, Any]) -> None:
    check_outcome(lambda: LipSyncRequest(**kwargs))


@PROPERTIES
@given(
    plausible("video_file_id"),
    plausible("text"),
    plausible("audio_man_id"),
    plausible("speed"),
    plausible("pitch"),
    factory_options("tts"),
)
@example("v", "hi", "a", math.inf, 1.0, {})
@example("v", ["hi", " "], "a", 1.0, 1.0, {})
def test_tts_factory_with_any_values(
    video: Any, text: Any, voice: Any, speed: Any, pitch: Any, options: dict[str, Any]
) -> None:
    check_outcome(
        lambda: LipSyncRequest.tts(
            video, text=text, audio_man_id=voice, speed=speed, pitch=pitch, **options
        )
    )


@PROPERTIES
@given(plausible("video_file_id"), plausible("audio_file_id"), factory_options("audio"))
@example("v", "a", {"volume": 101})
def test_audio_factory_with_any_values(video: Any, audio: Any, options: dict[str, Any]) -> None:
    check_outcome(lambda: LipSyncRequest.audio(video, audio_file_id=audio, **options))


@PROPERTIES
@given(st.dictionaries(st.one_of(st.sampled_from(TTS_FIELDS), st.text(max_size=6)), anything))
def test_tts_config_from_any_keywords(kwargs: dict[str, Any]) -> None:
    try:
        config = TtsConfig(**kwargs)
    except InvalidInputError as exc:
        field = exc.field
    else:
        assert 0.5 <= config.speed <= 2.0
        assert 0.1 <= config.pitch <= 3.0
        return
    assert field.startswith("tts_config")


# ---- envelope decoding

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),  # json.dumps writes NaN / Infinity: not JSON, still must not crash
        st.text(max_size=20),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=15,
)
envelopes = st.fixed_dictionaries(
    {"code": st.sampled_from([0, 0, 400, 10400, 10401, 40000, 40001, 50000, 51000, -1, 2**70])},
    optional={
        "msg": st.text(max_size=10),
        "data": json_values,
        "trace_id": st.text(max_size=10),
        "extra": json_values,
    },
)
envelope_like = st.fixed_dictionaries(
    {},
    optional={
        "code": st.one_of(
            st.sampled_from([0, 400, 10400, 10401, 40000, 40001, 50000, 51000]), json_values
        ),
        "msg": st.one_of(st.sampled_from(["", "视频文件还未完成上传", "ok"]), json_values),
        "data": json_values,
        "trace_id": st.one_of(st.text(max_size=10), json_values),
        "extra": json_values,
    },
)
html_pages = st.builds(
    "{}<html><head><title>{}</title></head><body>{}</body></html>".format,
    st.sampled_from(["", " ", "\n", "<!DOCTYPE html>"]),
    st.sampled_from(["502 Bad Gateway", "524: A timeout occurred", "Error"]),
    st.text(max_size=40),
).map(lambda page: page.encode())
bodies = st.one_of(
    envelopes.map(lambda value: json.dumps(value, ensure_ascii=False).encode()),
    envelopes.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=64),
    json_values.map(lambda value: json.dumps(value).encode()),
    envelope_like.map(lambda value: json.dumps(value, ensure_ascii=False).encode()),
    envelope_like.map(lambda value: json.dumps(value).encode()[:-1]),  # cut short
    html_pages,
    st.text(max_size=30).map(lambda text: text.encode("utf-8", "surrogatepass")),
)
statuses = st.one_of(
    st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 429, 500, 502, 503, 504, 524]),
    st.integers(min_value=-1, max_value=1000),
)
SECRET = "tok-7f3a9c"


@PROPERTIES
@given(statuses, bodies)
@example(200, b"")
@example(200, b"\xef\xbb\xbf" + b'{"code": 0}')
@example(200, b'{"code": 0, "data": ' + b"[" * 3000 + b"]" * 3000 + b"}")
@example(502, b"<html>\xff\xfe</html>")
@example(200, b'{"code": 1e400}')
@example(200, b'{"code": 0, "msg": "\\ud800"}')
def test_decode_gives_an_envelope_or_a_typed_error(status: int, body: bytes) -> None:
    try:
        envelope = _decode("/open/v1/x", status, body)
    except (HTTPStatusError, ResponseValidationError) as exc:
        message = str(exc)
    else:
        check_envelope(envelope)
        return
    assert message


def check_envelope(envelope: Envelope) -> None:
    """Fields of the documented types; a non-zero code maps to its typed error."""
    assert isinstance(envelope, Envelope)
    assert isinstance(envelope.code, int)
    assert isinstance(envelope.msg, str)
    assert isinstance(envelope.trace_id, str)
    if envelope.code != 0:
        error = error_for_code(
            envelope.code, envelope.msg, trace_id=envelope.trace_id, endpoint="/open/v1/x"
        )
        assert isinstance(error, APIError)
        assert str(envelope.code) in str(error)


@PROPERTIES
@given(statuses, envelope_like)
def test_a_json_body_is_never_quoted_in_an_error(status: int, value: dict[str, Any]) -> None:
    value = {**value, "data": {"access_token": SECRET, "other": value.get("data")}}
    body = json.dumps(value).encode()
    for attempt in (body, body[:-1]):
        message = ""
        try:
            _decode("/open/v1/access_token", status, attempt)
        except ChanjingError as exc:
            message = str(exc)
        assert SECRET not in message


# ---- response data


@PROPERTIES
@given(
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {},
            optional={
                name: st.one_of(st.integers(-5, 10**10), st.text(max_size=5), json_values)
                for name in ("id", "status", "progress", "msg", "video_url", "duration")
            },
        ),
    )
)
def test_response_data_gives_the_model_or_a_typed_error(data: Any) -> None:
    for model in (LipSyncTask, FileDetail, Page[LipSyncTask]):
        try:
            parsed = parse(LIP_SYNC_DETAIL, model, data)
        except ResponseValidationError as exc:
            endpoint = exc.endpoint
        else:
            endpoint = LIP_SYNC_DETAIL.path
            if isinstance(parsed, LipSyncTask):
                assert isinstance(parsed.is_terminal, bool)
                assert parsed.succeeded or parsed.failed or not parsed.is_terminal
        assert endpoint == LIP_SYNC_DETAIL.path


# ---- cases the first runs found


@pytest.mark.parametrize("model", [LipSyncRequest, TtsConfig])
def test_a_keyword_named_self_is_an_input_error(model: type[LipSyncRequest]) -> None:
    kwargs: dict[str, Any] = {"self": 1}
    with pytest.raises(InvalidInputError, match="self"):
        model(**kwargs)


def test_an_empty_keyword_is_named_in_the_error() -> None:
    kwargs: dict[str, Any] = {"video_file_id": "v", "audio_type": "audio", "audio_file_id": "a"}
    kwargs[""] = 1
    with pytest.raises(InvalidInputError) as caught:
        LipSyncRequest(**kwargs)
    assert caught.value.field, str(caught.value)


@pytest.mark.parametrize(
    "build",
    [
        lambda: LipSyncRequest.tts("v", text="hi", audio_man_id="a", audio_type="audio"),
        lambda: LipSyncRequest.tts("v", text="hi", audio_man_id="a", tts_config=None),
        lambda: LipSyncRequest.audio("v", audio_file_id="a", audio_type="tts"),
    ],
    ids=["tts-audio_type", "tts-tts_config", "audio-audio_type"],
)
def test_factory_options_naming_a_field_it_sets_are_an_input_error(
    build: Callable[[], LipSyncRequest],
) -> None:
    with pytest.raises(InvalidInputError):
        build()


@pytest.mark.parametrize(
    "data", [{}, None, {"video_file_id": "v", "tts_config": {"text": "", "audio_man_id": "a"}}]
)
def test_model_validate_raises_input_errors_too(data: Any) -> None:
    with pytest.raises(InvalidInputError):
        LipSyncRequest.model_validate(data)


@pytest.mark.parametrize("create_time", [1_700_000_000_000, -(10**12)])
def test_created_at_of_any_create_time_does_not_crash(create_time: int) -> None:
    task = LipSyncTask.model_validate({"id": "a", "status": 20, "create_time": create_time})
    assert task.created_at.year >= 1
