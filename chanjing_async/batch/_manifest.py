"""Batch manifests: one lip-sync job per row of a CSV or JSONL file, every row checked first.

Every problem is a :class:`RowError` (row and line, column, value, reason); a batch runs only
when there is none (or the invalid rows are skipped). Two ways to read a manifest:

``read_manifest``
    Everything in memory: the valid rows and the errors, as lists. For manifests of a few
    thousand rows, and for programs that want the jobs themselves.
``check_manifest`` then ``manifest_rows``
    For a manifest of any length, in memory that does not grow with it: the first pass reads
    the file as a stream, checks every row and keeps counts, the numbers of invalid rows (one
    bit each) and a 16-byte digest of each output name (duplicates are found by sorting the
    digests at the end, then confirmed on the full 128 bits); the second pass reads the file
    again and yields the rows one at a time, for ``run_batch`` to submit through a window.

Files
    ``.csv`` (also ``.tsv`` and ``.txt``): a header row naming the columns, then one job per
    row. The separator is decided by the header line: the most frequent of comma, TAB and
    semicolon (a comma when tied), so Excel's "CSV" and "Unicode text" (TABs) both read.
    Cells are strings: surrounding whitespace is stripped and an empty cell means "not given".
    A row shorter than the header leaves the missing cells empty; a row with values beyond the
    header's columns (an unquoted value holding the separator) is one error of that row, its
    cells unread; a record that is not valid CSV is an error of that row. Any problem of the
    header (an unknown column, a column named twice, no ``output`` column) refuses the whole
    manifest, whatever the caller does with invalid rows: a misspelt column would otherwise
    leave its value out of every row. A cell longer than the ``csv`` module reads (131,072
    characters: an unclosed quote, usually) refuses it too, as the rows after it cannot be
    told apart.

    ``.jsonl`` or ``.ndjson``: one JSON object per line. Values may be strings or numbers
    (``"1080"`` and ``1080`` are the same); strings are stripped; ``null`` or an empty string
    means "not given"; ``text`` may also be a list of strings. A line that is not a JSON
    object is an error of that row, and so is a string holding a lone surrogate
    (``"\\udc00"``: valid JSON, but no Unicode text), an error of its column. Each object is
    its own header: an unknown key is an error of its row.

    Encodings (``_text``): UTF-8 with or without a byte-order mark, UTF-16 or UTF-32
    with one, else GB18030 (which GBK files are) when the file is not UTF-8; ``encoding=``
    forces one. The decision is made once, reading the whole file before any row, and both
    passes use it (:attr:`ManifestCheck.encoding`). A file holding a NUL character, or text in
    none of these, is refused.

    Numbers are read by the manifest: the integer columns take whole numbers (``720`` or
    ``720.0``, at most 4,300 digits), ``speed`` and ``pitch`` any finite number; the ranges
    are the request's. A local path the system cannot use (a name too long for it, a NUL
    character) is an error of its column, like a missing file.

    Rows are numbered as data: the first row after the CSV header, or the first JSONL object
    with a value, is row 1. Blank lines, rows whose cells are all empty and objects without a
    value are no rows. Each problem also names the line where its row starts, shown when it
    differs (``row 12 (line 13): ...``; a record spanning several lines starts on its first).
    Any other extension, an unreadable file, a file without rows, and the header and encoding
    problems above are refused as a whole (``InvalidInputError`` with field ``manifest``; an
    unknown ``encoding`` name with field ``encoding``).

Columns (:data:`MANIFEST_FIELDS`)
    ``output`` (required)
        Name of the result, relative to the output folder, without extension: the video is
        saved as ``<output>.mp4`` and its cover as ``<output>.jpg``. A trailing ``.mp4`` is
        dropped. Folders are separated by ``/``; the name must stay inside the output folder:
        no absolute path, no ``..`` or ``.`` part, no empty part, no ``\\`` or ``:`` (drive
        letters), none of ``* ? " < > |``, no control character, no leading ``-``, no part
        starting or ending with a space or ending with a dot, no part over 200 bytes, no
        Windows device name (``CON``, ``NUL``, ``COM1``, ``aux/x`` ...), no invisible or
        direction-changing character (Unicode Cf, e.g. U+202E), no symbolic link below the
        output folder. It identifies the job: two rows may not share it, compared
        case-insensitively.
    ``video`` or ``video_file_id`` (exactly one)
        A local video file (.mp4, .mov, .webm), or the id of a video already uploaded.
    Text-driven: ``text`` and ``voice`` (both required), ``speed``, ``pitch``
        The words to say and the voice id (``audio_man_id`` is accepted as another name for
        ``voice``); ``speed`` 0.5-2.0, ``pitch`` 0.1-3.0.
    Audio-driven: ``audio`` or ``audio_file_id`` (exactly one)
        A local audio file (.mp3, .m4a, .wav), or the id of an audio already uploaded.
    Optional: ``model``, ``screen_width``, ``screen_height``, ``backway``, ``drive_mode``,
    ``volume``, ``callback``
        As in the create request: ``model`` 0 (basic), 1 (high quality) or 2 (cartoon);
        ``screen_width``/``screen_height`` positive integers; ``backway`` 1 or 2;
        ``drive_mode`` ``random`` (or empty); ``volume`` 1-100; ``callback`` an http(s) URL.

    A row is either text-driven or audio-driven: ``text``, ``voice``, ``speed`` or ``pitch``
    together with ``audio`` or ``audio_file_id`` is an error. Local paths are relative to the
    folder of the manifest (``~`` is expanded); each file must exist and have an accepted
    extension. An unknown column or key is named with the known one it likely misspells
    (``'sped' (did you mean 'speed'?)``).

Example (CSV)::

    output,video,text,voice,speed,audio,model
    greetings/hello,media/talk.mp4,你好,C-f2429d07,1.2,,1
    greetings/bye,media/talk.mp4,,,,media/bye.wav,
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidInputError
from ._files import SUFFIX_RULE, SUFFIXES, records
from ._output_folder import OutputFolder, output_paths
from ._rows import MANIFEST_FIELDS, ManifestRow, RowChecker, RowError
from ._sets import OutputDigests, RowSet
from ._text import text_encoding

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Iterator

    from ._files import Record

__all__ = [
    "MANIFEST_FIELDS",
    "Manifest",
    "ManifestCheck",
    "ManifestRow",
    "OutputFolder",
    "RowError",
    "check_manifest",
    "manifest_rows",
    "output_paths",
    "read_manifest",
]

_CHANGED = "changed since the manifest was checked (run the batch again)"


@dataclass(frozen=True)
class Manifest:
    """A manifest read and checked by :func:`read_manifest`.

    Attributes:
        path: the manifest, as an absolute path.
        rows: the valid rows, in file order.
        errors: every problem found, in file order; submit nothing unless it is empty.
        encoding: the codec the file was read with (``utf-8``, ``gb18030``, ``utf-16-le``...).
    """

    path: Path
    rows: list[ManifestRow]
    errors: list[RowError]
    encoding: str = "utf-8"


@dataclass(frozen=True)
class ManifestCheck:
    """What the checking pass (:func:`check_manifest`) found, without the rows themselves.

    Attributes:
        path: the manifest, as an absolute path.
        rows: valid rows.
        invalid: rows with at least one problem.
        errors: problems found.
        encoding: the codec the file is read with, by both passes (``utf-8``, ``gb18030``...).
    """

    path: Path
    rows: int
    invalid: int
    errors: int
    encoding: str
    out: OutputFolder | None = field(repr=False)
    _bad: RowSet = field(repr=False)
    _duplicates: dict[int, RowError] = field(repr=False)
    _stamp: tuple[int, int] = field(repr=False)


def read_manifest(path: str | os.PathLike[str], *, encoding: str | None = None) -> Manifest:
    """Read and check a CSV or JSONL manifest (format in the module documentation).

    Row-level problems do not raise: they are collected in :attr:`Manifest.errors`, every one
    of them, and the rows without problems are in :attr:`Manifest.rows`. ``encoding``: the
    file's text encoding (any codec name Python knows); None detects it.

    Raises:
        InvalidInputError: (field ``manifest``) the file as a whole is unusable: an extension
            other than .csv, .tsv, .txt, .jsonl or .ndjson, missing or unreadable, text in no
            encoding tried, no rows, or a CSV header with a problem (an unknown column, a
            column named twice, no ``output`` column); (field ``encoding``) no such encoding.
    """
    given = Path(path)
    codec = _encoding(given, encoding)
    rows: list[ManifestRow] = []
    errors: list[RowError] = []
    outputs = OutputDigests()
    seen = 0
    for record, row, key in _walk(given, codec, None):
        seen += 1
        errors.extend(record.problems)
        if key is not None:
            outputs.add(key, record.row)
        if row is not None:
            rows.append(row)
    if not seen:
        raise InvalidInputError("manifest", str(path), "has no rows")
    duplicates = outputs.duplicates(lambda: _records(given, codec))
    rows = [row for row in rows if row.row not in duplicates]
    # Sorted stably with the duplicate first: a row's output is checked before its values.
    errors = sorted([*duplicates.values(), *errors], key=lambda error: error.row)
    return Manifest(given.absolute(), rows, errors, codec)


def check_manifest(
    path: str | os.PathLike[str],
    *,
    out_dir: str | os.PathLike[str] | None = None,
    on_error: Callable[[RowError], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    encoding: str | None = None,
) -> ManifestCheck:
    """The first pass over a manifest of any length: check every row, keep only counts.

    Args:
        path: the manifest.
        out_dir: where the results will go; each row's files must land inside it
            (:func:`output_paths`), or the row is invalid.
        on_error: told of each problem as it is found (duplicate outputs come last).
        on_progress: told (bytes read, file size) as the file is read.
        encoding: the file's text encoding (any codec name Python knows); None detects it.
            The file is read once before any row to decide or confirm it.

    Raises:
        InvalidInputError: as for :func:`read_manifest`.
    """
    given = Path(path)
    out = None if out_dir is None else OutputFolder(Path(out_dir))
    stamp = _stamp(given)
    size = stamp[0]
    codec = _encoding(given, encoding)
    bad = RowSet()
    outputs = OutputDigests()
    counts = {"rows": 0, "errors": 0, "seen": 0}

    def report(problems: list[RowError]) -> None:
        counts["errors"] += len(problems)
        if on_error is not None:
            for problem in problems:
                on_error(problem)

    progress = None if on_progress is None else (lambda read: on_progress(read, size))
    for record, row, key in _walk(given, codec, progress, fingerprints=False):
        counts["seen"] += 1
        if key is not None:
            outputs.add(key, record.row)
        if row is not None and out is not None:
            _check_paths(out, row, record)
        if record.problems:
            report(record.problems)
            bad.add(record.row)
        elif row is not None:
            counts["rows"] += 1
    if not counts["seen"]:
        raise InvalidInputError("manifest", str(path), "has no rows")
    duplicates = outputs.duplicates(lambda: _records(given, codec))
    report(list(duplicates.values()))
    for number in duplicates:
        if number not in bad:
            bad.add(number)
            counts["rows"] -= 1
    if on_progress is not None:
        on_progress(size, size)
    return ManifestCheck(
        given.absolute(),
        counts["rows"],
        len(bad),
        counts["errors"],
        codec,
        out,
        bad,
        duplicates,
        stamp,
    )


def manifest_rows(check: ManifestCheck) -> Iterator[ManifestRow | list[RowError]]:
    """The second pass: each row of a checked manifest, read again, one at a time.

    Yields a valid row as a :class:`ManifestRow`, an invalid one as its problems (for a
    report of skipped rows). A row whose verdict differs from the first pass (a file appeared
    or vanished in between) is yielded as problems, never as a row. The file is decoded as
    the first pass decided (:attr:`ManifestCheck.encoding`).

    Raises:
        InvalidInputError: (field ``manifest``) the file changed since it was checked.
    """
    if _stamp(check.path) != check._stamp:
        raise InvalidInputError("manifest", str(check.path), _CHANGED)
    for record, row, _ in _walk(check.path, check.encoding, None):
        changed = RowError(record.row, "row", None, _CHANGED, record.line)
        if record.row not in check._bad:
            # Its output folder is checked again when it is submitted (``run_batch``).
            if row is not None and not record.problems:
                yield row
            else:
                yield [*record.problems, changed]
            continue
        if row is not None and check.out is not None:
            _check_paths(check.out, row, record)
        problems = record.problems
        duplicate = check._duplicates.get(record.row)
        if duplicate is not None:
            problems = [duplicate, *problems]
        yield problems or [changed]


# --------------------------------------------------------------------------------------------
# Passes


def _encoding(path: Path, encoding: str | None) -> str:
    """The manifest's codec, once its name is known to be a manifest's (see ``_stamp``)."""
    _stamp(path)
    return text_encoding(path, encoding)


def _records(
    path: Path, codec: str, on_bytes: Callable[[int], None] | None = None
) -> Iterator[Record]:
    return records(path, SUFFIXES[path.suffix.lower()], codec, on_bytes)


def _walk(
    path: Path,
    codec: str,
    on_bytes: Callable[[int], None] | None,
    *,
    fingerprints: bool = True,
) -> Iterator[tuple[Record, ManifestRow | None, str | None]]:
    """The manifest's records, each checked: (record, its row or None, its output key).

    Every problem of a record names the line where its row starts.
    """
    checker = RowChecker(path.absolute().parent, fingerprints=fingerprints)
    for record in _records(path, codec, on_bytes):
        row, key = None, None
        if record.raw is not None:
            row, key = checker.check(record.row, record.raw, record.problems)
        _locate(record)
        yield record, row, key


def _locate(record: Record) -> None:
    """Give the record's line to its problems that have none yet."""
    record.problems[:] = [
        problem if problem.line is not None else replace(problem, line=record.line)
        for problem in record.problems
    ]


def _check_paths(out: OutputFolder, row: ManifestRow, record: Record) -> None:
    try:
        out.check(row.output)
    except InvalidInputError as exc:
        record.problems.append(RowError(row.row, "output", row.output, exc.allowed, record.line))


def _stamp(path: Path) -> tuple[int, int]:
    """Size and modification time of the manifest, to notice a change between the passes."""
    if SUFFIXES.get(path.suffix.lower()) is None:
        raise InvalidInputError("manifest", str(path), SUFFIX_RULE)
    try:
        status = path.stat()
    except OSError as exc:
        raise InvalidInputError(
            "manifest", str(path), f"cannot be read: {exc.strerror or exc}"
        ) from None
    return status.st_size, status.st_mtime_ns
