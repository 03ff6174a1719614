"""Batch manifests: CSV and JSONL rows become jobs; every bad row is reported, nothing raised."""

from __future__ import annotations

import json
import unicodedata
from typing import TYPE_CHECKING, Any

import pytest

from chanjing_async import InvalidInputError
from chanjing_async.batch._manifest import (
    MANIFEST_FIELDS,
    Manifest,
    RowError,
    output_paths,
    read_manifest,
)

if TYPE_CHECKING:
    from pathlib import Path

VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42" + bytes(64)
AUDIO_BYTES = b"RIFF" + bytes(64)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A manifest folder with ``media/talk.mp4``, ``media/speech.wav`` and ``media/notes.txt``."""
    media = tmp_path / "media"
    media.mkdir()
    (media / "talk.mp4").write_bytes(VIDEO_BYTES)
    (media / "speech.wav").write_bytes(AUDIO_BYTES)
    (media / "notes.txt").write_text("not media", encoding="utf-8")
    return tmp_path


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def csv_of(rows: list[dict[str, str]]) -> str:
    """A CSV whose header is every key used by ``rows``, in first-seen order."""
    header: list[str] = []
    for row in rows:
        header.extend(key for key in row if key not in header)
    lines = [",".join(header)]
    lines.extend(",".join(row.get(column, "") for column in header) for row in rows)
    return "\n".join(lines) + "\n"


def jsonl_of(rows: list[object]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def errors_of(manifest: Manifest) -> list[tuple[int, str]]:
    return [(error.row, error.field) for error in manifest.errors]


GOOD_TEXT = {"output": "good", "video": "media/talk.mp4", "text": "hello", "voice": "C-1"}


# --------------------------------------------------------------------------------------------
# Good manifests


def test_csv_text_and_audio_rows_become_jobs(folder: Path) -> None:
    path = write(
        folder,
        "batch.csv",
        "output,video,video_file_id,text,voice,speed,pitch,audio,audio_file_id,model,"
        "screen_width,screen_height,backway,drive_mode,volume,callback\n"
        "greetings/hello,media/talk.mp4,,你好,C-f24,1.5,0.8,,,1,720,1280,2,random,40,"
        "https://example.com/cb?sig=1\n"
        "greetings/bye.mp4,,vid-1,,,,,media/speech.wav,,2,,,,,,\n"
        "ids,,vid-2,,,,,,aud-2,,,,,,,\n",
    )
    manifest = read_manifest(path)
    assert manifest.errors == []
    assert manifest.path == path.absolute()
    assert [(row.row, row.output) for row in manifest.rows] == [
        (1, "greetings/hello"),
        (2, "greetings/bye"),
        (3, "ids"),
    ]

    text_job = manifest.rows[0].job
    assert text_job.video_path == (folder / "media" / "talk.mp4").resolve()
    assert text_job.audio_path is None
    template = text_job.template
    assert template.audio_type == "tts"
    assert template.tts_config is not None
    assert template.tts_config.text == ["你好"]
    assert template.tts_config.audio_man_id == "C-f24"
    assert template.tts_config.speed == 1.5
    assert template.tts_config.pitch == 0.8
    assert (template.model, template.screen_width, template.screen_height) == (1, 720, 1280)
    assert (template.backway, template.drive_mode, template.volume) == (2, "random", 40)
    assert template.callback == "https://example.com/cb?sig=1"

    audio_job = manifest.rows[1].job
    assert audio_job.video_path is None
    assert audio_job.audio_path == (folder / "media" / "speech.wav").resolve()
    assert audio_job.template.audio_type == "audio"
    assert audio_job.template.video_file_id == "vid-1"
    assert audio_job.template.model == 2
    assert audio_job.template.volume == 100  # not given: the request's default

    ids_job = manifest.rows[2].job
    assert ids_job.uploads() == []
    assert ids_job.to_request({}).to_wire()["audio_file_id"] == "aud-2"


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson", ".JSONL"])
def test_jsonl_rows_accept_numbers_strings_and_text_lists(folder: Path, suffix: str) -> None:
    path = write(
        folder,
        f"batch{suffix}",
        jsonl_of(
            [
                {
                    "output": "a",
                    "video": "media/talk.mp4",
                    "text": ["one", "two"],
                    "audio_man_id": "C-9",
                    "speed": 2,
                    "pitch": "1.5",
                    "model": 1,
                    "screen_width": "720",
                    "volume": 55.0,
                    "callback": None,
                },
                {"output": "b", "video_file_id": "v", "audio": "media/speech.wav", "model": "0"},
            ]
        ),
    )
    manifest = read_manifest(path)
    assert manifest.errors == []
    first, second = manifest.rows
    config = first.job.template.tts_config
    assert config is not None
    assert (config.text, config.audio_man_id, config.speed, config.pitch) == (
        ["one", "two"],
        "C-9",
        2.0,
        1.5,
    )
    assert (first.job.template.model, first.job.template.screen_width) == (1, 720)
    assert first.job.template.volume == 55
    assert first.job.template.callback is None
    assert second.row == 2
    assert second.job.audio_path == (folder / "media" / "speech.wav").resolve()
    assert second.job.template.model == 0


def test_paths_are_relative_to_the_manifest_folder_not_the_working_directory(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    sub = folder / "jobs"
    sub.mkdir()
    path = write(sub, "batch.csv", csv_of([{**GOOD_TEXT, "video": "../media/talk.mp4"}]))
    (row,) = read_manifest(path).rows
    assert row.job.video_path == (folder / "media" / "talk.mp4").resolve()
    assert row.job.video_path.is_absolute()


def test_a_relative_manifest_path_resolves_files_from_its_own_folder(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(folder, "batch.csv", csv_of([GOOD_TEXT]))
    monkeypatch.chdir(folder / "media")
    manifest = read_manifest("../batch.csv")
    assert manifest.errors == []
    assert manifest.rows[0].job.video_path == (folder / "media" / "talk.mp4").resolve()


def test_tilde_is_expanded(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "me.mp4").write_bytes(VIDEO_BYTES)
    monkeypatch.setenv("HOME", str(home))
    path = write(folder, "batch.csv", csv_of([{**GOOD_TEXT, "video": "~/me.mp4"}]))
    (row,) = read_manifest(path).rows
    assert row.job.video_path == (home / "me.mp4").resolve()


def test_bom_crlf_blank_lines_and_empty_rows_are_skipped_and_lines_still_named(
    folder: Path,
) -> None:
    text = (
        "\ufeffoutput, video ,text,voice\r\n"
        "\r\n"
        " a ,media/talk.mp4, hi , C-1 \r\n"
        ",,,\r\n"
        "b,media/talk.mp4,hi,\r\n"
    )
    manifest = read_manifest(write(folder, "batch.csv", text))
    assert [(row.row, row.output) for row in manifest.rows] == [(1, "a")]
    config = manifest.rows[0].job.template.tts_config
    assert config is not None
    assert (config.text, config.audio_man_id) == (["hi"], "C-1")
    assert [(e.row, e.line, e.field) for e in manifest.errors] == [(2, 5, "voice")]
    assert (
        str(manifest.errors[0])
        == "row 2 (line 5): voice: is required for a text-driven row (text + voice)"
    )


def test_jsonl_blank_lines_and_bom_keep_line_numbers(folder: Path) -> None:
    row = json.dumps({**GOOD_TEXT, "output": "x"})
    bad = json.dumps({**GOOD_TEXT, "output": "y", "speed": 9})
    text = f'\ufeff{row}\n\n   \n{{}}\n{{"output": null, "text": " "}}\n{bad}\r\n'
    manifest = read_manifest(write(folder, "batch.jsonl", text))
    assert [row.row for row in manifest.rows] == [1]
    assert [(e.row, e.line, e.field) for e in manifest.errors] == [(2, 6, "speed")]
    assert str(manifest.errors[0]).startswith("row 2 (line 6): speed=9: ")


def test_a_multi_line_csv_record_is_numbered_by_its_first_line(folder: Path) -> None:
    text = (
        'output,video,text,voice\na,media/talk.mp4,"line one\nline two",C-1\nb,media/talk.mp4,hi,\n'
    )
    manifest = read_manifest(write(folder, "batch.csv", text))
    config = manifest.rows[0].job.template.tts_config
    assert config is not None
    assert config.text == ["line one\nline two"]
    assert [(e.row, e.line, e.field) for e in manifest.errors] == [(2, 4, "voice")]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("clip.mp4", "clip"),
        ("Greetings/Clip-01.MP4", "Greetings/Clip-01"),
        ("  spaced/out  ", "spaced/out"),
        ("take.2", "take.2"),
        ("cafe\u0301", "caf\u00e9"),  # NFC
    ],
)
def test_output_is_normalised(folder: Path, given: str, expected: str) -> None:
    path = write(folder, "batch.jsonl", jsonl_of([{**GOOD_TEXT, "output": given}]))
    manifest = read_manifest(path)
    assert manifest.errors == []
    assert manifest.rows[0].output == expected


def test_manifest_fields_document_every_column() -> None:
    assert MANIFEST_FIELDS[0] == "output"
    assert len(set(MANIFEST_FIELDS)) == len(MANIFEST_FIELDS)
    assert {"video", "video_file_id", "text", "voice", "audio_man_id", "audio"} <= set(
        MANIFEST_FIELDS
    )
    assert {"model", "screen_width", "screen_height", "backway", "drive_mode"} <= set(
        MANIFEST_FIELDS
    )
    assert {"speed", "pitch", "audio_file_id", "volume", "callback"} <= set(MANIFEST_FIELDS)


# --------------------------------------------------------------------------------------------
# Row errors

AUDIO_ROW = {"output": "bad", "video": "media/talk.mp4", "audio": "media/speech.wav"}

ROW_ERRORS: list[tuple[str, dict[str, str], str, str]] = [
    ("bad speed", {**GOOD_TEXT, "speed": "9"}, "speed", "between 0.5 and 2"),
    ("speed not a number", {**GOOD_TEXT, "speed": "fast"}, "speed", "must be a number"),
    ("bad pitch", {**GOOD_TEXT, "pitch": "0"}, "pitch", "between 0.1 and 3"),
    ("bad model", {**GOOD_TEXT, "model": "7"}, "model", "must be 0 or 1 or 2"),
    ("model not a number", {**GOOD_TEXT, "model": "high"}, "model", "whole number"),
    ("fractional width", {**GOOD_TEXT, "screen_width": "720.5"}, "screen_width", "whole"),
    ("negative height", {**GOOD_TEXT, "screen_height": "-5"}, "screen_height", "positive"),
    ("bad backway", {**GOOD_TEXT, "backway": "3"}, "backway", "must be 1 or 2"),
    ("bad drive mode", {**GOOD_TEXT, "drive_mode": "often"}, "drive_mode", "random"),
    ("bad volume", {**GOOD_TEXT, "volume": "0"}, "volume", "between 1 and 100"),
    ("bad callback", {**GOOD_TEXT, "callback": "ftp://x/y"}, "callback", "http"),
    ("missing output", {**GOOD_TEXT, "output": ""}, "output", "is required"),
    ("blank output", {**GOOD_TEXT, "output": "   "}, "output", "is required"),
    ("only an extension", {**GOOD_TEXT, "output": ".mp4"}, "output", "must name a file"),
    ("traversal", {**GOOD_TEXT, "output": "../x"}, "output", "inside the output folder"),
    ("absolute", {**GOOD_TEXT, "output": "/abs"}, "output", "inside the output folder"),
    ("inner traversal", {**GOOD_TEXT, "output": "a/../b"}, "output", "no '..'"),
    ("dot part", {**GOOD_TEXT, "output": "./a"}, "output", "inside the output folder"),
    ("empty part", {**GOOD_TEXT, "output": "a//b"}, "output", "empty parts"),
    ("trailing slash", {**GOOD_TEXT, "output": "a/"}, "output", "empty parts"),
    ("drive letter", {**GOOD_TEXT, "output": "C:x"}, "output", "inside the output folder"),
    ("colon", {**GOOD_TEXT, "output": "ab:c"}, "output", "drive letters"),
    ("backslash", {**GOOD_TEXT, "output": "a\\b"}, "output", "use / between folders"),
    ("control character", {**GOOD_TEXT, "output": "a\tb"}, "output", "control characters"),
    ("leading dash", {**GOOD_TEXT, "output": "-rf"}, "output", "must not start with '-'"),
    ("part ends with a dot", {**GOOD_TEXT, "output": "a./b"}, "output", "ends with '.'"),
    ("too long", {**GOOD_TEXT, "output": "x" * 201}, "output", "longer than 200 bytes"),
    ("both videos", {**GOOD_TEXT, "video_file_id": "v1"}, "video", "only one of video"),
    ("no video", {**GOOD_TEXT, "video": ""}, "video", "give video (a local file) or"),
    ("missing video file", {**GOOD_TEXT, "video": "media/gone.mp4"}, "video", "existing file"),
    ("video extension", {**GOOD_TEXT, "video": "media/notes.txt"}, "video", ".mp4"),
    ("audio extension", {**AUDIO_ROW, "audio": "media/talk.mp4"}, "audio", ".wav"),
    ("missing audio file", {**AUDIO_ROW, "audio": "media/gone.wav"}, "audio", "existing file"),
    ("both audios", {**AUDIO_ROW, "audio_file_id": "a1"}, "audio", "only one of audio"),
    ("text without voice", {**GOOD_TEXT, "voice": ""}, "voice", "is required"),
    ("voice without text", {**GOOD_TEXT, "text": ""}, "text", "is required"),
    ("speed with audio", {**AUDIO_ROW, "speed": "1.2"}, "speed", "only for text-driven"),
    ("pitch with audio", {**AUDIO_ROW, "pitch": "1.2"}, "pitch", "only for text-driven"),
    ("text with audio", {**AUDIO_ROW, "text": "hi", "voice": "v"}, "text", "text-driven"),
    ("voice with audio id", {**GOOD_TEXT, "audio_file_id": "a1"}, "voice", "text-driven"),
    ("no drive", {"output": "bad", "video": "media/talk.mp4"}, "row", "text + voice"),
    ("speed alone", {"output": "bad", "video_file_id": "v", "speed": "1"}, "text", "required"),
    (
        "voice and its alias",
        {**GOOD_TEXT, "audio_man_id": "C-2"},
        "audio_man_id",
        "another name for voice",
    ),
]


@pytest.mark.parametrize(
    ("row", "field", "fragment"),
    [case[1:] for case in ROW_ERRORS],
    ids=[case[0] for case in ROW_ERRORS],
)
def test_csv_row_errors_name_row_field_and_reason(
    folder: Path, row: dict[str, str], field: str, fragment: str
) -> None:
    good = {**GOOD_TEXT, "output": "first"}
    manifest = read_manifest(
        write(folder, "batch.csv", csv_of([good, row, good | {"output": "z"}]))
    )
    mine = [error for error in manifest.errors if error.row == 2]
    assert [error.field for error in mine].count(field) == 1, manifest.errors
    (error,) = [error for error in mine if error.field == field]
    assert fragment in error.reason
    assert all((error.row, error.line) == (2, 3) for error in manifest.errors)
    assert [r.output for r in manifest.rows] == ["first", "z"]


@pytest.mark.parametrize(
    ("line", "field", "fragment"),
    [
        ("[1, 2]", "row", "must be a JSON object"),
        ('"just text"', "row", "must be a JSON object"),
        ("42", "row", "must be a JSON object"),
        ('{"output": "x", ', "row", "is not valid JSON"),
        ("not json", "row", "is not valid JSON"),
        (json.dumps({**GOOD_TEXT, "colour": "red"}), "colour", "allowed: output, video"),
        (json.dumps({**GOOD_TEXT, "text": ["a", 1]}), "text", "list of strings"),
        (json.dumps({**GOOD_TEXT, "text": []}), "text", "non-empty"),
        (json.dumps({**GOOD_TEXT, "text": ["a", " "]}), "text", "non-empty"),
        (json.dumps({**GOOD_TEXT, "model": True}), "model", "whole number"),
        (json.dumps({**GOOD_TEXT, "model": 1.5}), "model", "whole number"),
        (json.dumps({**GOOD_TEXT, "speed": [1]}), "speed", "must be a number"),
        (
            '{"output": "x", "video_file_id": "v", "text": "t", "voice": "v", "speed": NaN}',
            "speed",
            "must be a number",
        ),
        (json.dumps({**GOOD_TEXT, "output": 5}), "output", "must be a string"),
        (json.dumps({**GOOD_TEXT, "voice": 5}), "voice", "must be a string"),
        ('{"output": "x", "output": "y"}', "output", "more than once"),
    ],
)
def test_jsonl_row_errors(folder: Path, line: str, field: str, fragment: str) -> None:
    good = json.dumps({**GOOD_TEXT, "output": "first"})
    manifest = read_manifest(write(folder, "batch.jsonl", f"{good}\n{line}\n"))
    assert [row.output for row in manifest.rows] == ["first"]
    matching = [error for error in manifest.errors if error.field == field]
    assert len(matching) == 1, manifest.errors
    assert matching[0].row == 2
    assert fragment in matching[0].reason


def test_duplicate_outputs_are_compared_case_insensitively(folder: Path) -> None:
    rows = [
        {**GOOD_TEXT, "output": "Greetings/Clip"},
        {**GOOD_TEXT, "output": "other"},
        {**GOOD_TEXT, "output": "greetings/clip.mp4"},
        {**GOOD_TEXT, "output": "GREETINGS/CLIP"},
    ]
    manifest = read_manifest(write(folder, "batch.csv", csv_of(rows)))
    assert [row.output for row in manifest.rows] == ["Greetings/Clip", "other"]
    assert [(e.row, e.field, e.value, e.reason) for e in manifest.errors] == [
        (3, "output", "greetings/clip.mp4", "duplicates the output of row 1"),
        (4, "output", "GREETINGS/CLIP", "duplicates the output of row 1"),
    ]


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        (
            "output,video,text,voice,audio,sped",
            "has unknown column(s) in its header (line 1): 'sped' (did you mean 'speed'?);"
            " allowed: output, video, video_file_id,",
        ),
        ("output,video,text,Voice", "'Voice' (did you mean 'voice'?)"),
        ("output,video,text,voice,colour,mdoel", "'colour', 'mdoel' (did you mean 'model'?);"),
        ("output,video,text,voice,text", "names the column(s) text more than once"),
        ("ouptut,video,text,voice", "'ouptut' (did you mean 'output'?)"),
        ("video,text,voice", "has no 'output' column (header, line 1: video, text, voice)"),
    ],
)
def test_any_header_problem_refuses_the_whole_manifest(
    folder: Path, header: str, fragment: str
) -> None:
    """Issue 16, item 1: a misspelt column used to be a warning, and every row was created
    without its value; no row may be read under a header with a problem."""
    cells = header.count(",") + 1
    row = ",".join(["a", "media/talk.mp4", "hi", "C-1", "", "1.2"][:cells])
    path = write(folder, "batch.csv", f"\n{header}\n{row}\n")
    with pytest.raises(InvalidInputError) as caught:
        read_manifest(path)
    assert caught.value.field == "manifest"
    assert fragment.replace("line 1", "line 2") in caught.value.allowed


def test_every_independent_problem_of_a_row_is_reported(folder: Path) -> None:
    row = {
        "output": "../escape",
        "video": "media/gone.mp4",
        "text": "hi",
        "voice": "C-1",
        "speed": "9",
        "model": "5",
        "volume": "loud",
    }
    manifest = read_manifest(write(folder, "batch.csv", csv_of([row])))
    assert sorted(errors_of(manifest)) == [
        (1, "model"),
        (1, "output"),
        (1, "speed"),
        (1, "video"),
        (1, "volume"),
    ]
    assert manifest.rows == []
    video = next(error for error in manifest.errors if error.field == "video")
    assert video.value == "media/gone.mp4"
    assert str((folder / "media" / "gone.mp4").resolve()) in video.reason


def test_every_out_of_range_value_is_reported_not_only_the_first(folder: Path) -> None:
    row = {**GOOD_TEXT, "video": "media/gone.mp4", "speed": "9", "pitch": "5", "model": "5"}
    row |= {"volume": "0", "backway": "3"}
    manifest = read_manifest(write(folder, "batch.csv", csv_of([row])))
    assert sorted(errors_of(manifest)) == [
        (1, "backway"),
        (1, "model"),
        (1, "pitch"),
        (1, "speed"),
        (1, "video"),
        (1, "volume"),
    ]
    assert all("(also:" not in error.reason for error in manifest.errors)


def test_structural_and_value_errors_are_reported_together(folder: Path) -> None:
    row = {"output": "x", "video": "media/talk.mp4", "audio": "media/speech.wav", "speed": "9"}
    row |= {"callback": "nope", "video_file_id": "v"}
    manifest = read_manifest(write(folder, "batch.csv", csv_of([row])))
    assert sorted(error.field for error in manifest.errors) == ["callback", "speed", "video"]


def test_an_alias_voice_is_named_as_written(folder: Path) -> None:
    row = {"output": "x", "video_file_id": "v", "audio_man_id": "C-1", "audio": "media/x.wav"}
    manifest = read_manifest(write(folder, "batch.jsonl", jsonl_of([row])))
    fields = {error.field: error for error in manifest.errors}
    assert set(fields) == {"audio_man_id", "audio"}
    assert fields["audio_man_id"].value == "C-1"
    assert "text-driven" in fields["audio_man_id"].reason


def test_a_jsonl_row_with_an_unknown_key_is_not_accepted(folder: Path) -> None:
    manifest = read_manifest(write(folder, "batch.jsonl", jsonl_of([{**GOOD_TEXT, "mdoel": 1}])))
    assert manifest.rows == []
    assert [(e.row, e.field, e.value) for e in manifest.errors] == [(1, "mdoel", 1)]
    assert str(manifest.errors[0]).startswith(
        "row 1: mdoel=1: is not a known column (did you mean 'model'?); allowed: output, video"
    )


def test_malformed_csv_records_and_extra_cells_are_row_errors(folder: Path) -> None:
    text = (
        "output,video,text,voice\n"
        'a,media/talk.mp4,"hi"there,C-1\n'
        "b,media/talk.mp4,hi,C-1,surplus\n"
        "c,media/talk.mp4,hi,C-1,\n"
        "d,media/talk.mp4,hi,C-1\n"
    )
    manifest = read_manifest(write(folder, "batch.csv", text))
    assert errors_of(manifest) == [(1, "row"), (2, "row")]
    assert "not valid CSV" in manifest.errors[0].reason
    assert str(manifest.errors[1]) == (
        "row 2 (line 3): has 5 fields, the header has 4"
        ' (a value holding a comma must be quoted, e.g. "1,2")'
    )
    assert [row.output for row in manifest.rows] == ["c", "d"]


def test_a_value_under_an_unnamed_csv_column_is_an_error(folder: Path) -> None:
    text = "output,video,text,voice,\na,media/talk.mp4,hi,C-1,\nb,media/talk.mp4,hi,C-1,oops\n"
    manifest = read_manifest(write(folder, "batch.csv", text))
    assert [(e.row, e.field, e.value) for e in manifest.errors] == [(2, "row", "oops")]
    assert "no name" in manifest.errors[0].reason
    assert [row.output for row in manifest.rows] == ["a"]


def test_row_error_text() -> None:
    assert (
        str(RowError(7, "speed", "9", "must be between 0.5 and 2.0"))
        == "row 7: speed='9': must be between 0.5 and 2.0"
    )
    assert str(RowError(3, "voice", None, "is required")) == "row 3: voice: is required"
    assert str(RowError(4, "row", None, "needs text")) == "row 4: needs text"
    assert str(RowError(5, "row", "[1]", "must be a JSON object")) == (
        "row 5: '[1]': must be a JSON object"
    )
    assert (
        str(RowError(12, "speed", "9", "too fast", 13)) == "row 12 (line 13): speed='9': too fast"
    )
    assert str(RowError(3, "voice", None, "is required", 3)) == "row 3: voice: is required"


# --------------------------------------------------------------------------------------------
# Whole-file errors


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("batch.xlsx", b"output\nx\n", "must be a .csv, .jsonl or .ndjson file (or .tsv"),
        ("batch.csv", None, "cannot be read"),
        (
            "batch.csv",
            b"output,text\nok,fine\nbad,\xff\xfe\n",
            "neither UTF-8 nor GB18030 text (line 3 is not UTF-8, line 3 not GB18030)",
        ),
        ("batch.jsonl", b'{"output": "\xe9"}\n', "(line 1 is not UTF-8, line 1 not GB18030)"),
        ("batch.csv", b"", "needs a header row"),
        ("batch.csv", b"\n\n", "needs a header row"),
        ("batch.csv", b"output,video,text,voice\n", "has no rows"),
        ("batch.csv", b"output,video\n,,\n\n", "has no rows"),
        ("batch.csv", b"video,text\nmedia/talk.mp4,hi\n", "has no 'output' column"),
        ("batch.csv", b"output,text,text\na,b,c\n", "text more than once"),
        ("batch.csv", b"output,colour\na,red\n", "unknown column(s) in its header (line 1)"),
        ("batch.csv", b'"output\nx,y', "header row"),
        ("batch.jsonl", b"\n  \n", "has no rows"),
        ("batch.jsonl", b'{}\n{"output": null}\n', "has no rows"),
    ],
)
def test_whole_file_problems_raise(
    folder: Path, name: str, content: bytes | None, fragment: str
) -> None:
    path = folder / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InvalidInputError) as caught:
        read_manifest(path)
    assert caught.value.field == "manifest"
    assert caught.value.value == str(path)
    assert fragment in caught.value.allowed


def test_a_folder_is_not_a_manifest(folder: Path) -> None:
    (folder / "dir.csv").mkdir()
    with pytest.raises(InvalidInputError, match="cannot be read"):
        read_manifest(folder / "dir.csv")


# --------------------------------------------------------------------------------------------
# Fingerprints


def fingerprints(path: Path) -> dict[str, str]:
    manifest = read_manifest(path)
    assert manifest.errors == []
    return {row.output: row.fingerprint for row in manifest.rows}


def test_fingerprint_is_stable_and_ignores_layout(folder: Path) -> None:
    rows = [GOOD_TEXT, {**AUDIO_ROW, "output": "b", "model": "1"}]
    path = write(folder, "batch.csv", csv_of(rows))
    first = fingerprints(path)
    assert len(first["good"]) == 64
    assert int(first["good"], 16) >= 0
    assert first == fingerprints(path)
    assert first["good"] != first["b"]

    # The same values as JSONL, numbers as numbers, with blank lines and spaces: same rows.
    jsonl = "\n" + jsonl_of([{**GOOD_TEXT, "text": [" hello "]}, {**rows[1], "model": 1}])
    assert fingerprints(write(folder, "batch.jsonl", jsonl)) == first


@pytest.mark.parametrize(
    "change",
    [
        {"speed": "1.1"},
        {"text": "hello!"},
        {"voice": "C-2"},
        {"model": "1"},
        {"video": "media/copy.mp4"},
        {"video": "", "video_file_id": "v1"},
    ],
)
def test_fingerprint_changes_with_a_value(folder: Path, change: dict[str, str]) -> None:
    (folder / "media" / "copy.mp4").write_bytes(VIDEO_BYTES)
    before = fingerprints(write(folder, "a.csv", csv_of([{**GOOD_TEXT, "speed": "1.0"}])))
    after = fingerprints(write(folder, "b.csv", csv_of([{**GOOD_TEXT, "speed": "1.0", **change}])))
    assert after["good"] != before["good"]


def test_fingerprint_uses_the_resolved_path(folder: Path) -> None:
    one = fingerprints(write(folder, "a.csv", csv_of([GOOD_TEXT])))
    sub = folder / "sub"
    sub.mkdir()
    same_file = {**GOOD_TEXT, "video": "../media/talk.mp4"}
    assert fingerprints(write(sub, "b.csv", csv_of([same_file]))) == one
    assert (
        fingerprints(write(folder, "c.csv", csv_of([{**GOOD_TEXT, "video": "./media/talk.mp4"}])))[
            "good"
        ]
        == one["good"]
    )


# --------------------------------------------------------------------------------------------
# Output paths


def test_output_paths(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert output_paths(out, "greetings/clip-01") == (
        out / "greetings" / "clip-01.mp4",
        out / "greetings" / "clip-01.jpg",
    )
    assert output_paths(out, "a") == (out / "a.mp4", out / "a.jpg")


@pytest.mark.parametrize("output", ["../x", "/abs", "a/../../b", "C:x", "a\\..\\b", "", "./a"])
def test_output_paths_refuse_escapes(tmp_path: Path, output: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        output_paths(tmp_path / "out", output)
    assert caught.value.field == "output"
    assert caught.value.value == output


def test_output_paths_refuse_a_symbolic_link_leaving_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (out / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidInputError, match="inside the output folder"):
        output_paths(out, "link/clip")
    assert output_paths(out, "inner/clip")[0] == out / "inner" / "clip.mp4"


# Windows device names (any part, any case, with or without an extension) and characters that
# make a name look like another (issue 15, finding 10).
DEVICE_NAMES = [
    "CON",
    "con",
    "prn",
    "Aux",
    "nul",
    "nul.mp4",
    "Com1.txt",
    "COM9",
    "lpt1",
    "LPT9.tar.gz",
    "aux/x",
    "clips/nul/take",
    "clips/com3.mp4",
    "conin$",
    "CONOUT$.log",
    "com\u00b9",
]
HIDDEN_CHARACTERS = [
    "clip\u202egpj",  # RIGHT-TO-LEFT OVERRIDE: clip\u202egpj.mp4 is shown as clip4pm.jpg
    "\u202aa",
    "a\u202bb",
    "a\u202cb",
    "a\u202db",
    "a\u2066b",
    "a\u2067b",
    "a\u2068b",
    "a\u2069b",
    "a\u200eb",
    "a\u200fb",
    "a\u061cb",
    "a\u200bb",  # ZERO WIDTH SPACE (category Cf)
    "a\ufeffb",  # ZERO WIDTH NO-BREAK SPACE
    "a\u00adb",  # SOFT HYPHEN
    "a\u0085b",  # a C1 control
    "a\u2028b",  # LINE SEPARATOR
    "dir\u202e/clip",
]
# Invisible characters outside categories Cf, Cc, Zl and Zp: Default_Ignorable_Code_Point (range
# ends where a range is long) and blank symbols. Each of them was accepted before.
IGNORABLE_AND_BLANK = [
    "\u034f",  # COMBINING GRAPHEME JOINER (Mn): a\u034fb reads ab
    "\u115f",  # HANGUL CHOSEONG FILLER (Lo)
    "\u1160",  # HANGUL JUNGSEONG FILLER (Lo)
    "\u3164",  # HANGUL FILLER (Lo)
    "\uffa0",  # HALFWIDTH HANGUL FILLER (Lo)
    "\u17b4",  # KHMER VOWEL INHERENT AQ (Mn)
    "\u17b5",  # KHMER VOWEL INHERENT AA (Mn)
    "\u180b",  # MONGOLIAN FREE VARIATION SELECTOR ONE (Mn)
    "\u180f",  # MONGOLIAN FREE VARIATION SELECTOR FOUR (Mn)
    "\ufe00",  # VARIATION SELECTOR-1 (Mn)
    "\ufe0f",  # VARIATION SELECTOR-16 (Mn)
    "\U000e0100",  # VARIATION SELECTOR-17 (Mn)
    "\U000e01ef",  # VARIATION SELECTOR-256 (Mn)
    "\U000e0000",  # reserved in the tags block (Cn)
    "\U000e0080",
    "\U000e0fff",
    "\u2065",  # reserved among the invisible operators (Cn)
    "\ufff0",  # reserved before the specials (Cn)
    "\u2800",  # BRAILLE PATTERN BLANK (So)
    "\U0001d159",  # MUSICAL SYMBOL NULL NOTEHEAD (So)
]


@pytest.mark.parametrize("output", DEVICE_NAMES)
def test_output_names_refuse_windows_device_names(tmp_path: Path, output: str) -> None:
    with pytest.raises(InvalidInputError, match="Windows device name") as caught:
        output_paths(tmp_path / "out", output)
    assert caught.value.field == "output"
    assert caught.value.value == output
    assert "CON, PRN, AUX, NUL" in caught.value.allowed


@pytest.mark.parametrize("output", HIDDEN_CHARACTERS)
def test_output_names_refuse_invisible_and_direction_changing_characters(
    tmp_path: Path, output: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        output_paths(tmp_path / "out", output)
    assert caught.value.field == "output"
    assert "invisible or direction-changing" in caught.value.allowed
    hidden = next(char for char in output if not char.isalnum() and char != "/")
    assert f"U+{ord(hidden):04X}" in caught.value.allowed


@pytest.mark.parametrize("template", ["a{}b", "{}", "clips/{}"])
@pytest.mark.parametrize("char", IGNORABLE_AND_BLANK, ids=lambda char: f"U+{ord(char):04X}")
def test_output_names_refuse_default_ignorable_and_blank_characters(
    tmp_path: Path, char: str, template: str
) -> None:
    output = template.format(char)
    with pytest.raises(InvalidInputError) as caught:
        output_paths(tmp_path / "out", output)
    assert caught.value.field == "output"
    name = unicodedata.name(char, "a reserved character")  # U+2065 ... have no name
    assert f"invisible or direction-changing characters (U+{ord(char):04X} {name})" in (
        caught.value.allowed
    )


@pytest.mark.parametrize(
    "output",
    ["console", "auxiliary/x", "nullable", "com10", "lpt", "com", "my-con", "x.con", "con_1"],
)
def test_names_that_only_resemble_devices_are_accepted(tmp_path: Path, output: str) -> None:
    assert output_paths(tmp_path / "out", output)[0] == tmp_path / "out" / f"{output}.mp4"


@pytest.mark.parametrize(
    "output",
    [
        "\u0645\u0631\u062d\u0628\u0627",
        "\u4f60\u597d/\u4e16\u754c",
        "caf\u00e9",
        "cafe\u0301",  # a combining accent is visible
        "\u4f60\u3000\u597d",  # a space inside a part is visible, whatever its width
        "\u2801",  # a Braille pattern with a dot
    ],
)
def test_visible_unicode_names_are_accepted(tmp_path: Path, output: str) -> None:
    assert output_paths(tmp_path / "out", output)[0] == tmp_path / "out" / f"{output}.mp4"


def test_a_manifest_row_with_a_device_name_or_an_override_is_a_row_error(folder: Path) -> None:
    rows: list[object] = [
        {**GOOD_TEXT, "output": "ok"},
        {**GOOD_TEXT, "output": "NUL.mp4"},
        {**GOOD_TEXT, "output": "aux/x"},
        {**GOOD_TEXT, "output": "clip\u202egpj"},
    ]
    manifest = read_manifest(write(folder, "batch.jsonl", jsonl_of(rows)))
    assert [row.output for row in manifest.rows] == ["ok"]
    assert errors_of(manifest) == [(2, "output"), (3, "output"), (4, "output")]
    assert "Windows device name ('NUL')" in manifest.errors[0].reason
    assert "Windows device name ('aux')" in manifest.errors[1].reason
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in manifest.errors[2].reason


# --------------------------------------------------------------------------------------------
# Size


def test_thousands_of_rows_are_read_each_with_its_own_fingerprint(folder: Path) -> None:
    """How fast is for the benchmark (``manifest``), not for a timed unit test."""
    rows: list[dict[str, Any]] = []
    for index in range(3000):
        if index % 2:
            rows.append({**GOOD_TEXT, "output": f"batch/clip-{index}", "speed": "1.1"})
        else:
            rows.append({**AUDIO_ROW, "output": f"batch/clip-{index}", "model": "1"})
    path = write(folder, "big.csv", csv_of(rows))
    manifest = read_manifest(path)
    assert manifest.errors == []
    assert len(manifest.rows) == 3000
    assert len({row.fingerprint for row in manifest.rows}) == 3000


# --------------------------------------------------------------------------------------------
# Values that used to crash the reader (issue 14, defect 3): each is a row error instead

HUGE_INTEGER = "7" * 5000  # int() refuses more than 4,300 digits
LONG_PATH = "media/" + "a" * 300 + ".mp4"  # one part longer than any file system allows


@pytest.mark.parametrize(
    ("row", "field", "fragment"),
    [
        ({**GOOD_TEXT, "model": HUGE_INTEGER}, "model", "whole number"),
        ({**GOOD_TEXT, "volume": f"-{HUGE_INTEGER}"}, "volume", "whole number"),
        ({**GOOD_TEXT, "video": LONG_PATH}, "video", "not a usable path"),
        ({**GOOD_TEXT, "video": "media/" + "/".join(["d" * 200] * 25) + ".mp4"}, "video", "path"),
    ],
    ids=["integer-5000-digits", "negative-5000-digits", "name-too-long", "path-too-long"],
)
def test_values_that_crashed_are_row_errors_in_csv(
    folder: Path, row: dict[str, str], field: str, fragment: str
) -> None:
    good = {**GOOD_TEXT, "output": "first"}
    manifest = read_manifest(write(folder, "batch.csv", csv_of([good, row])))
    assert [r.output for r in manifest.rows] == ["first"]
    (error,) = manifest.errors
    assert (error.row, error.line, error.field) == (2, 3, field)
    assert fragment in error.reason


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({**GOOD_TEXT, "text": "hi\udc00"}, "text"),
        ({**GOOD_TEXT, "text": ["fine", "\ud800"]}, "text"),
        ({**GOOD_TEXT, "voice": "C-\udfff"}, "voice"),
        ({**GOOD_TEXT, "output": "clip\udc80"}, "output"),
        ({**GOOD_TEXT, "video": "media/talk\udc00.mp4"}, "video"),
        ({**GOOD_TEXT, "callback": "https://example.com/\ud83d"}, "callback"),
        ({**GOOD_TEXT, "col\udc00our": "red"}, "col\\udc00our"),
    ],
)
def test_a_lone_surrogate_is_a_row_error_naming_the_field(
    folder: Path, item: dict[str, object], field: str
) -> None:
    # json.dumps writes "\udc00" as an escape: valid JSON, decoding to a lone surrogate.
    lines = "".join(json.dumps(row) + "\n" for row in [{**GOOD_TEXT, "output": "first"}, item])
    manifest = read_manifest(write(folder, "batch.jsonl", lines))
    assert [r.output for r in manifest.rows] == ["first"]
    assert [(error.row, error.field) for error in manifest.errors] == [(2, field)]
    error = manifest.errors[0]
    assert "lone surrogate" in error.reason or "allowed" in error.reason
    str(error).encode("utf-8")  # the message itself is printable


def test_a_5000_digit_json_integer_is_a_row_error(folder: Path) -> None:
    line = json.dumps({**GOOD_TEXT, "output": "x"})[:-1] + f', "model": {HUGE_INTEGER}}}'
    manifest = read_manifest(write(folder, "batch.jsonl", line + "\n"))
    assert manifest.rows == []
    assert [(error.row, error.field) for error in manifest.errors] == [(1, "row")]
    assert "more than 4,300 digits" in manifest.errors[0].reason


@pytest.mark.parametrize("char", "\u2044\u2215\u29f8\u29f9\uff0f\uff3c\u2216\ufe68")
def test_output_names_refuse_slash_look_alikes(tmp_path: Path, char: str) -> None:
    # a∕..∕b reads as a path leaving the folder, while it is one file name.
    with pytest.raises(InvalidInputError) as caught:
        output_paths(tmp_path / "out", f"a{char}..{char}b")
    assert f"U+{ord(char):04X}" in caught.value.allowed
    assert "use / between folders" in caught.value.allowed


def test_a_long_value_is_cut_in_its_error(folder: Path) -> None:
    """A 4,000-character text used to be echoed whole: a 12 KB line per row."""
    path = write(folder, "long.csv", csv_of([{**GOOD_TEXT, "text": "长" * 4000}]))
    (error,) = read_manifest(path).errors
    message = str(error)
    assert message.startswith("row 1 (line 2): text='" + "长" * 79 + "... (4,000 characters): ")
    assert "3,999" in message
    assert len(message) < 300
