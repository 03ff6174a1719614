"""Manifests as people make them (issue 16): Excel's encodings and separators, shifted columns,
cells over the CSV reader's limit; the two passes of a batch read a file the same way."""

from __future__ import annotations

import codecs
import csv
import tracemalloc
from typing import TYPE_CHECKING

import pytest

from chanjing_async import InvalidInputError
from chanjing_async.batch._manifest import ManifestRow, check_manifest, manifest_rows, read_manifest

if TYPE_CHECKING:
    from pathlib import Path

VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42" + bytes(64)
HEADER = ["output", "video", "text", "voice", "speed"]
ROWS = [
    ["问候/你好", "media/talk.mp4", "你好，世界", "C-1", "1.2"],
    ["bye", "media/talk.mp4", "再见", "C-1", ""],
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "talk.mp4").write_bytes(VIDEO_BYTES)
    return tmp_path


def table(rows: list[list[str]], separator: str = ",", header: list[str] = HEADER) -> str:
    return "".join(separator.join(cells) + "\r\n" for cells in [header, *rows])


def texts(path: Path, encoding: str | None = None) -> list[tuple[int, str, list[str], float]]:
    """(row, output, text, speed) of every row; the manifest must have no error."""
    manifest = read_manifest(path, encoding=encoding)
    assert manifest.errors == []
    found = []
    for row in manifest.rows:
        config = row.job.template.tts_config
        assert config is not None
        found.append((row.row, row.output, config.text, config.speed))
    return found


EXPECTED = [(1, "问候/你好", ["你好，世界"], 1.2), (2, "bye", ["再见"], 1.0)]


@pytest.mark.parametrize(
    ("name", "content", "codec"),
    [
        ("a.csv", table(ROWS).encode("utf-8"), "utf-8"),
        ("a.csv", codecs.BOM_UTF8 + table(ROWS).encode("utf-8"), "utf-8"),
        ("a.csv", table(ROWS).encode("gbk"), "gb18030"),  # Excel "CSV" on Chinese Windows
        ("a.csv", table(ROWS).encode("gb18030"), "gb18030"),
        # Excel "Unicode text": UTF-16LE with a BOM, TABs between the cells, saved as .txt
        ("a.txt", codecs.BOM_UTF16_LE + table(ROWS, "\t").encode("utf-16-le"), "utf-16-le"),
        ("a.csv", codecs.BOM_UTF16_LE + table(ROWS, "\t").encode("utf-16-le"), "utf-16-le"),
        ("a.tsv", codecs.BOM_UTF16_BE + table(ROWS, "\t").encode("utf-16-be"), "utf-16-be"),
        ("a.csv", codecs.BOM_UTF32_LE + table(ROWS).encode("utf-32-le"), "utf-32-le"),
        ("a.csv", table(ROWS, ";").encode("utf-8"), "utf-8"),  # Excel where 1,5 is a number
    ],
    ids=[
        "utf8",
        "utf8-bom",
        "gbk",
        "gb18030",
        "utf16-txt",
        "utf16-csv",
        "utf16be",
        "utf32",
        "semi",
    ],
)
def test_excel_encodings_and_separators_are_read(
    folder: Path, name: str, content: bytes, codec: str
) -> None:
    path = folder / name
    path.write_bytes(content)
    assert texts(path) == EXPECTED
    assert read_manifest(path).encoding == codec
    check = check_manifest(path)
    assert (check.encoding, check.rows, check.errors) == (codec, 2, 0)
    assert [item.output for item in manifest_rows(check) if isinstance(item, ManifestRow)] == [
        "问候/你好",
        "bye",
    ]


def test_a_gbk_file_whose_first_non_ascii_byte_is_far_down_is_read_as_gbk_by_both_passes(
    folder: Path,
) -> None:
    """UTF-8 fails only on the last line: the whole file is read as GB18030, from the start,
    and the second pass reads it so too (a chunk boundary falls inside the file)."""
    rows = [[f"clip-{n}", "media/talk.mp4", "plain ascii " * 20, "C-1", ""] for n in range(5000)]
    rows.append(["last", "media/talk.mp4", "最后一行", "C-1", ""])
    path = folder / "a.csv"
    path.write_bytes(table(rows).encode("gbk"))
    assert path.stat().st_size > 1 << 20
    check = check_manifest(path)
    assert (check.encoding, check.rows) == ("gb18030", 5001)
    last = list(manifest_rows(check))[-1]
    assert isinstance(last, ManifestRow)
    assert last.job.template.tts_config is not None
    assert last.job.template.tts_config.text == ["最后一行"]


@pytest.mark.slow
def test_the_check_of_a_gbk_manifest_stays_in_bounded_memory(folder: Path) -> None:
    rows = [[f"行-{n}", "media/talk.mp4", f"第 {n} 行", "C-1", ""] for n in range(5000)]
    path = folder / "a.csv"
    path.write_bytes(table(rows).encode("gb18030"))
    tracemalloc.start()
    try:
        check = check_manifest(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (check.encoding, check.rows) == ("gb18030", 5000)
    assert peak < 1_000_000, peak


@pytest.mark.parametrize(
    ("given", "codec"), [("gbk", "gbk"), ("GB2312", "gb2312"), ("cp936", "gbk")]
)
def test_a_given_encoding_is_used(folder: Path, given: str, codec: str) -> None:
    path = folder / "a.csv"
    path.write_bytes(table(ROWS).encode("gb2312"))
    assert texts(path, given) == EXPECTED
    assert check_manifest(path, encoding=given).encoding == codec


def test_utf16_without_a_bom_is_refused_with_a_hint_and_read_when_given(folder: Path) -> None:
    path = folder / "a.csv"
    path.write_bytes(table(ROWS, "\t").encode("utf-16-le"))
    with pytest.raises(InvalidInputError) as caught:
        check_manifest(path)
    assert caught.value.field == "manifest"
    assert caught.value.allowed == (
        "is not a text file: line 1 holds a NUL character (UTF-16 without a byte-order mark? "
        "then give --encoding utf-16-le)"
    )
    assert texts(path, "utf-16-le") == EXPECTED


@pytest.mark.parametrize(
    ("content", "given", "fragment"),
    [
        (table(ROWS).encode("gbk"), "utf-8", "is not utf-8 text (--encoding): line 2 cannot"),
        (b"output,video\na,b\n\xff\xfe\n", None, "(line 3 is not UTF-8, line 3 not GB18030)"),
        (b"output,video\na,b\x00\n", "gbk", "line 2 holds a NUL character"),
        (b"output,video\na,b\x00\n", None, "line 2 holds a NUL character"),
        (codecs.BOM_UTF8 + "a\n".encode("gbk") + "你好\n".encode("gbk"), None, "UTF-8 byte-order"),
    ],
    ids=["forced-wrong", "neither", "nul-forced", "nul", "utf8-bom-then-gbk"],
)
def test_a_file_that_fits_no_encoding_is_refused_naming_the_line(
    folder: Path, content: bytes, given: str | None, fragment: str
) -> None:
    path = folder / "a.csv"
    path.write_bytes(content)
    for reading in (read_manifest, check_manifest):
        with pytest.raises(InvalidInputError) as caught:
            reading(path, encoding=given)
        assert caught.value.field == "manifest"
        assert fragment in caught.value.allowed, caught.value.allowed


@pytest.mark.parametrize("given", ["nope", "hex", "rot13", ""])
def test_an_unknown_encoding_name_is_an_error_of_the_encoding(folder: Path, given: str) -> None:
    path = folder / "a.csv"
    path.write_bytes(table(ROWS).encode("utf-8"))
    with pytest.raises(InvalidInputError) as caught:
        check_manifest(path, encoding=given)
    assert (caught.value.field, caught.value.value) == ("encoding", given)
    assert "is no text encoding Python knows; e.g. utf-8, gb18030" in caught.value.allowed


def test_jsonl_in_utf16_is_read(folder: Path) -> None:
    line = '{"output": "你好", "video": "media/talk.mp4", "text": "嗨", "voice": "C-1"}\n'
    path = folder / "a.jsonl"
    path.write_bytes(codecs.BOM_UTF16_LE + (line * 2).replace("你好", "x", 1).encode("utf-16-le"))
    manifest = read_manifest(path)
    assert manifest.errors == []
    assert [row.output for row in manifest.rows] == ["x", "你好"]


# --------------------------------------------------------------------------------------------
# Shifted columns and cells over the reader's limit (issue 16, item 5)


@pytest.mark.parametrize(("separator", "name"), [(",", "comma"), ("\t", "tab")])
def test_an_unquoted_separator_is_one_error_naming_the_counts(
    folder: Path, separator: str, name: str
) -> None:
    shifted = ["clip", "media/talk.mp4", "hello", " world", "C-1", "1.2"]
    path = folder / "a.csv"
    path.write_text(table([ROWS[1], shifted], separator), encoding="utf-8")
    manifest = read_manifest(path)
    assert [row.output for row in manifest.rows] == ["bye"]
    assert [str(error) for error in manifest.errors] == [
        f"row 2 (line 3): has 6 fields, the header has 5 (a value holding a {name} must be"
        f' quoted, e.g. "1{separator}2")'
    ]


def test_a_cell_over_the_csv_limit_refuses_the_manifest_in_the_users_terms(folder: Path) -> None:
    """An unclosed quote swallowed the next rows into one cell: 131,072 characters later the
    reader failed, and every row it had swallowed was silently missing from the batch."""
    limit = csv.field_size_limit()
    good = "clip-{n},media/talk.mp4,hi,C-1,\n"
    body = "".join(good.format(n=n) for n in range(limit // 20))
    path = folder / "a.csv"
    path.write_text(f'{",".join(HEADER)}\n{good.format(n="x")}a,media/talk.mp4,"oops,C-1,\n{body}')
    for reading in (read_manifest, check_manifest):
        with pytest.raises(InvalidInputError) as caught:
            reading(path)
        assert caught.value.field == "manifest"
        assert caught.value.allowed.startswith(
            "row 2 (line 3): a cell holds more than 131,072 characters (an unclosed quote?)"
        )


def test_a_long_cell_closed_in_time_is_a_value_like_any_other(folder: Path) -> None:
    path = folder / "a.csv"
    path.write_text(f"{','.join(HEADER)}\nclip,media/talk.mp4,{'x' * 100_000},C-1,\n")
    manifest = read_manifest(path)  # a value the request may refuse, not the reader
    assert [(error.row, error.field) for error in manifest.errors] in ([], [(1, "text")])
    assert len(manifest.rows) + len(manifest.errors) == 1
