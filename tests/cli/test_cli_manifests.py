"""Manifests as people make them, through the real ``chanjing batch run`` (issue 16, items 1, 4
and 5): subprocesses against an emulator process."""

from __future__ import annotations

import codecs
import json
from typing import TYPE_CHECKING

import pytest

from tests.cli.test_batch_cli import batch_run, run, write_manifest
from tests.support import VOICE

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

    from tests.support import EmulatorProcess

pytestmark = pytest.mark.slow


HEADER = ["output", "video", "text", "voice", "speed"]
ROWS = [
    ["问候/你好", "media/face.mp4", "你好，世界", VOICE, "1.2"],
    ["bye", "media/face.mp4", "再见", VOICE, ""],
]


def lines(rows: list[list[str]], separator: str = ",", header: list[str] = HEADER) -> str:
    return "".join(separator.join(cells) + "\r\n" for cells in [header, *rows])


def batch(
    emulator: EmulatorProcess, folder: Path, name: str, content: bytes, *extra: str
) -> subprocess.CompletedProcess[str]:
    """``chanjing batch run`` of a manifest holding ``content`` (media from write_manifest)."""
    write_manifest(folder, 0)
    manifest = folder / name
    manifest.write_bytes(content)
    argv = batch_run(emulator, folder, *extra)
    argv[argv.index(str(folder / "manifest.csv"))] = str(manifest)  # .txt, for one
    result = run(emulator, argv)
    assert "Traceback" not in result.stderr
    return result


def nothing_sent(emulator: EmulatorProcess) -> bool:
    stats = emulator.stats()
    requests: int = sum(endpoint["requests"] for endpoint in stats["endpoints"].values())
    created: int = stats["tasks_created"]
    return created == 0 and requests == 0


def test_a_misspelt_column_refuses_the_manifest_even_with_skip_invalid(
    emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    """Item 1: every row used to be created (paid) at the default speed, exit 0."""
    header = ["output", "video", "text", "voice", "audio", "sped"]
    rows = [["a", "media/face.mp4", "hi", VOICE, "", "1.2"]]
    content = lines(rows, header=header).encode()
    result = batch(emulator_process, tmp_path, "manifest.csv", content, "--skip-invalid")
    assert result.returncode == 2, result.stderr
    assert "'sped' (did you mean 'speed'?); allowed: output, video" in result.stderr
    assert "nothing was submitted" in result.stderr
    assert nothing_sent(emulator_process)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("name", "content", "note"),
    [
        ("manifest.csv", codecs.BOM_UTF8 + lines(ROWS).encode(), None),
        ("manifest.csv", lines(ROWS).encode("gb18030"), "was read as GB18030"),
        (  # Excel's "Unicode text": UTF-16LE with a BOM, TABs between the cells
            "manifest.txt",
            codecs.BOM_UTF16_LE + lines(ROWS, "\t").encode("utf-16-le"),
            "was read as UTF-16-LE",
        ),
    ],
    ids=["utf8-bom", "gbk", "excel-unicode-text"],
)
def test_excel_manifests_run(
    emulator_process: EmulatorProcess, tmp_path: Path, name: str, content: bytes, note: str | None
) -> None:
    """Item 4: a GBK manifest was refused (``must be UTF-8 text (line 2 is not)``)."""
    result = batch(emulator_process, tmp_path, name, content, "--json")
    assert result.returncode == 0, result.stderr
    report = {row["row"]: (row["output"], row["result"]) for row in json.loads(result.stdout)}
    assert report == {1: ("问候/你好", "succeeded"), 2: ("bye", "succeeded")}
    assert (tmp_path / "out" / "问候" / "你好.mp4").is_file()
    if note is None:
        assert "was read as" not in result.stderr
    else:
        assert note in result.stderr
    assert emulator_process.stats()["tasks_created"] == 2


@pytest.mark.parametrize(
    ("content", "extra", "expected"),
    [
        (
            lines(ROWS).encode("gbk"),
            ("--encoding", "utf-8"),
            "is not utf-8 text (--encoding): line 2 cannot be decoded as it",
        ),
        (lines(ROWS).encode(), ("--encoding", "klingon"), "--encoding 'klingon': is no text"),
        (
            lines(ROWS, "\t").encode("utf-16-le"),
            (),
            "line 1 holds a NUL character (UTF-16 without a byte-order mark? then give"
            " --encoding utf-16-le)",
        ),
        (b"output,video\n\xff\xfe,x\n", (), "is neither UTF-8 nor GB18030 text (line 2 is not"),
    ],
    ids=["forced-wrong", "unknown-name", "utf16-without-bom", "neither"],
)
def test_a_manifest_in_no_usable_encoding_is_refused_before_anything_is_sent(
    emulator_process: EmulatorProcess,
    tmp_path: Path,
    content: bytes,
    extra: tuple[str, ...],
    expected: str,
) -> None:
    result = batch(emulator_process, tmp_path, "manifest.csv", content, *extra)
    assert result.returncode == 2, result.stderr
    assert expected in " ".join(result.stderr.split())
    assert nothing_sent(emulator_process)


def test_a_given_encoding_reads_a_utf16_file_without_a_bom(
    emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    content = lines(ROWS, "\t").encode("utf-16-le")
    result = batch(emulator_process, tmp_path, "manifest.csv", content, "--encoding", "utf-16-le")
    assert result.returncode == 0, result.stderr
    assert "was read as" not in result.stderr  # the user chose it
    assert emulator_process.stats()["tasks_created"] == 2


def test_an_unquoted_comma_is_one_error_and_rows_are_numbered_as_data(
    emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    """Item 5: ``hello, world`` unquoted gave four errors about the wrong columns, and the
    rows were numbered by line (the header counted as row 1)."""
    rows = [[f"clip-{n}", "media/face.mp4", "hi", VOICE, ""] for n in range(12)]
    rows[4] = ["clip-4", "media/face.mp4", "hello", " world", VOICE, "1.2"]
    rows[11] = ["clip-11", "media/face.mp4", "hi", VOICE, "9"]
    content = lines(rows).encode()
    result = batch(emulator_process, tmp_path, "manifest.csv", content)
    assert result.returncode == 2, result.stderr
    problems = [line for line in result.stderr.splitlines() if ": row " in line]
    assert [line.split(": ", 1)[1] for line in problems] == [
        "row 5 (line 6): has 6 fields, the header has 5 (a value holding a comma must be quoted,"
        ' e.g. "1,2")',
        "row 12 (line 13): speed='9': must be between 0.5 and 2",
    ]
    assert nothing_sent(emulator_process)


def test_a_cell_over_the_csv_limit_is_named_in_the_users_terms(
    emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    body = "".join(f"clip-{n},media/face.mp4,hi,{VOICE},\n" for n in range(4000))
    content = f'{",".join(HEADER)}\nbad,media/face.mp4,"unclosed,{VOICE},\n{body}'.encode()
    result = batch(emulator_process, tmp_path, "manifest.csv", content, "--skip-invalid")
    assert result.returncode == 2, result.stderr
    assert "row 1 (line 2): a cell holds more than 131,072 characters (an unclosed quote?)" in (
        " ".join(result.stderr.split())
    )
    assert "field limit" not in result.stderr
    assert nothing_sent(emulator_process)


def test_a_misspelt_jsonl_key_is_an_error_of_its_row_with_the_likely_column(
    emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    """Each JSONL object is its own header: the typo is a row error, named with its fix."""
    rows = [
        {"output": "a", "video": "media/face.mp4", "text": "hi", "voice": VOICE},
        {"output": "b", "video": "media/face.mp4", "text": "hi", "voice": VOICE, "sped": 1.2},
    ]
    content = "".join(json.dumps(row) + "\n" for row in rows).encode()
    result = batch(emulator_process, tmp_path, "manifest.jsonl", content)
    assert result.returncode == 2, result.stderr
    assert "row 2: sped=1.2: is not a known column (did you mean 'speed'?)" in result.stderr
    assert "nothing was submitted" in result.stderr
    assert nothing_sent(emulator_process)
