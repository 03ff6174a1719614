"""Manifests of any length: checked in one streaming pass, then run through a bounded window.

``check_manifest`` must find exactly what ``read_manifest`` finds (the same rows, the same
errors, duplicates included) while holding only counts and digests; ``manifest_rows`` reads
the file again and refuses to go on if it changed; ``run_batch`` never has more rows in
progress than its window.
"""

from __future__ import annotations

import os
import tracemalloc
from typing import TYPE_CHECKING

import pytest

from chanjing_async import InvalidInputError
from chanjing_async.batch import BatchProgress, run_batch
from chanjing_async.batch._manifest import (
    ManifestRow,
    RowError,
    check_manifest,
    manifest_rows,
    read_manifest,
)
from chanjing_async.emulator import EmulatorServer
from tests.support import JOB_POLL, VOICE, emulator_settings, make_client

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42" + bytes(64)
HEADER = "output,video,text,voice,speed\n"


def manifest(folder: Path, lines: list[str], name: str = "batch.csv") -> Path:
    media = folder / "media"
    media.mkdir(exist_ok=True)
    (media / "talk.mp4").write_bytes(VIDEO_BYTES)
    path = folder / name
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    return path


def good(n: int, *, output: str | None = None) -> str:
    return f"{output or f'clip-{n}'},media/talk.mp4,line {n},{VOICE},1\n"


def both_passes(path: Path) -> tuple[list[ManifestRow], list[RowError], list[RowError]]:
    """The rows and errors of the second pass, and the errors the first pass reported."""
    reported: list[RowError] = []
    check = check_manifest(path, on_error=reported.append)
    rows: list[ManifestRow] = []
    errors: list[RowError] = []
    for item in manifest_rows(check):
        if isinstance(item, ManifestRow):
            rows.append(item)
        else:
            errors.extend(item)
    assert check.rows == len(rows)
    assert check.errors == len(reported)
    return rows, errors, reported


def test_the_two_passes_find_what_read_manifest_finds(tmp_path: Path) -> None:
    lines = [good(n) for n in range(40)]
    lines[5] = good(5, output="CLIP-1")  # a duplicate of row 2, in another case
    lines[9] = "clip-9,media/talk.mp4,hi,,\n"  # no voice
    lines[12] = f"clip-12,media/missing.mp4,hi,{VOICE},9\n"  # two problems
    lines[30] = good(30, output="clip-12")  # duplicates an invalid row's output
    path = manifest(tmp_path, lines)
    whole = read_manifest(path)
    rows, errors, reported = both_passes(path)
    assert [(r.row, r.output, r.fingerprint) for r in rows] == [
        (r.row, r.output, r.fingerprint) for r in whole.rows
    ]
    assert sorted(errors, key=lambda e: e.row) == whole.errors
    assert sorted(reported, key=lambda e: e.row) == whole.errors
    assert [(e.row, e.field) for e in whole.errors] == [
        (6, "output"),
        (10, "voice"),
        (13, "video"),
        (13, "speed"),
        (31, "output"),
    ]
    assert all(error.line == error.row + 1 for error in whole.errors)
    assert str(whole.errors[0]) == (
        "row 6 (line 7): output='CLIP-1': duplicates the output of row 2"
    )
    assert "of row 13" in whole.errors[-1].reason


def test_duplicates_among_many_rows_name_the_first_row(tmp_path: Path) -> None:
    lines = [good(n) for n in range(5000)]
    lines[4999] = good(4999, output="Clip-17")
    path = manifest(tmp_path, lines)
    _, errors, _ = both_passes(path)
    assert [str(error) for error in errors] == [
        "row 5000 (line 5001): output='Clip-17': duplicates the output of row 18"
    ]


def test_a_manifest_changed_between_the_passes_is_refused(tmp_path: Path) -> None:
    path = manifest(tmp_path, [good(1), good(2)])
    check = check_manifest(path)
    with path.open("a", encoding="utf-8") as more:
        more.write(good(3))
    with pytest.raises(InvalidInputError, match="changed since the manifest was checked"):
        next(manifest_rows(check))


def test_a_file_gone_between_the_passes_fails_its_row_only(tmp_path: Path) -> None:
    path = manifest(tmp_path, [good(1), good(2, output="other").replace("talk", "other")])
    (tmp_path / "media" / "other.mp4").write_bytes(VIDEO_BYTES)
    check = check_manifest(path)
    assert (check.rows, check.invalid) == (2, 0)
    (tmp_path / "media" / "other.mp4").unlink()
    first, second = list(manifest_rows(check))
    assert isinstance(first, ManifestRow)
    assert isinstance(second, list)
    assert [error.field for error in second] == ["video", "row"]
    assert "changed since the manifest was checked" in second[-1].reason


def test_an_output_leaving_the_folder_is_a_row_error_of_the_check(tmp_path: Path) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "link").symlink_to(outside, target_is_directory=True)
    path = manifest(tmp_path, [good(1), good(2, output="link/clip")])
    check = check_manifest(path, out_dir=out)
    assert (check.rows, check.invalid) == (1, 1)
    items = list(manifest_rows(check))
    assert isinstance(items[1], list)
    assert str(items[1][0]).startswith(
        "row 2 (line 3): output='link/clip': must be a relative name"
    )


def _traced_peak(work: Iterator[object] | None = None, *, whole: Path | None = None) -> int:
    tracemalloc.start()
    try:
        if whole is not None:
            kept = read_manifest(whole)
            assert kept.rows
        else:
            assert work is not None
            for _ in work:
                pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_manifest(tmp_path: Path) -> None:
    """5,000 rows: the passes hold counts and 24 bytes a row; read_manifest holds every job."""
    path = manifest(tmp_path, [good(n) for n in range(5000)])
    check = check_manifest(path)
    first = _traced_peak(iter([check_manifest(path)]))
    second = _traced_peak(manifest_rows(check))
    whole = _traced_peak(whole=path)
    assert max(first, second) < 1_000_000, (first, second)
    assert whole > 10 * max(first, second), (whole, first, second)


pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_run_batch_keeps_at_most_its_window_of_rows_in_progress(tmp_path: Path) -> None:
    path = manifest(tmp_path, [good(n) for n in range(12)])
    out = tmp_path / "out"
    check = check_manifest(path, out_dir=out)
    pulled = 0
    in_progress: list[int] = []

    def rows() -> Iterator[ManifestRow | list[RowError]]:
        nonlocal pulled
        for item in manifest_rows(check):
            pulled += 1
            yield item

    def seen(snapshot: BatchProgress) -> None:
        in_progress.append(pulled - snapshot.finished)
        assert snapshot.total == 12

    async with EmulatorServer(emulator_settings()) as emulator:
        async with make_client(emulator.base_url) as client:
            report = await run_batch(
                client,
                rows(),
                journal=tmp_path / "jobs.sqlite",
                out_dir=out,
                poll=JOB_POLL,
                on_progress=seen,
                total=check.rows,
                window=4,
            )
        created = emulator.state.stats()["tasks_created"]
    assert [outcome.result for outcome in report.outcomes] == ["succeeded"] * 12
    assert created == 12
    assert max(in_progress) <= 4 + 1  # the window, and the row being submitted
    assert max(in_progress) >= 4  # the window was reached: the bound did the work
    assert sorted(os.listdir(out)) == sorted(
        f"clip-{n}.{x}" for n in range(12) for x in "mp4 jpg".split()
    )
