"""Files we write are ours alone, and output names mean what they show (issue 15, findings 9
and 10).

The journal refuses a symbolic link planted at its path, its lock's or a companion's (nothing
is created or written at the target), a file of another user and anything but a regular file;
it makes the journal, its lock and its ``-wal`` / ``-shm`` 0600 on open. ``chanjing batch run``
refuses Windows device names and invisible characters in output names before sending anything.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from typing import TYPE_CHECKING, Any

import pytest

from chanjing_async import ConfigurationError
from chanjing_async.cli import main
from chanjing_async.journal import Journal
from tests.support import VOICE, EmulatorProcess

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

BAIT = b"precious bytes of another file\n"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


async def refused(path: Path, fragment: str) -> ConfigurationError:
    """Opening a journal at ``path`` for writing is refused, naming it and ``fragment``."""
    with pytest.raises(ConfigurationError) as caught:
        await Journal(path).open()
    assert repr(str(path)) in str(caught.value)
    assert fragment in str(caught.value)
    return caught.value


async def still_opens(path: Path) -> None:
    """The journal opens once the problem is gone: a refusal kept no claim on it."""
    async with Journal(path):
        pass


# --------------------------------------------------------------------------------------------
# Symbolic links


@pytest.mark.parametrize("suffix", ["", ".lock", "-wal", "-shm", "-journal"])
async def test_a_link_to_nothing_is_refused_and_its_target_never_created(
    tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / "jobs.sqlite"
    link = tmp_path / f"jobs.sqlite{suffix}"
    target = tmp_path / "elsewhere" / "created-by-us"
    target.parent.mkdir()
    link.symlink_to(target)
    error = await refused(path, "is a symbolic link, which is never followed")
    if suffix:
        assert repr(str(link)) in str(error)  # the lock or companion is named too
    assert not target.exists()
    link.unlink()
    await still_opens(path)
    assert not target.exists()


@pytest.mark.parametrize("suffix", ["", ".lock", "-wal", "-shm"])
async def test_a_link_to_a_file_is_refused_and_the_file_left_as_it_was(
    tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / "jobs.sqlite"
    target = tmp_path / "important.txt"
    target.write_bytes(BAIT)
    target.chmod(0o644)
    (tmp_path / f"jobs.sqlite{suffix}").symlink_to(target)
    await refused(path, "symbolic link")
    assert target.read_bytes() == BAIT
    assert mode_of(target) == 0o644


async def test_a_link_to_a_real_journal_is_refused_too(tmp_path: Path) -> None:
    real = tmp_path / "real.sqlite"
    await still_opens(real)
    link = tmp_path / "jobs.sqlite"
    link.symlink_to(real)
    await refused(link, "give the journal's real path")


async def test_a_journal_swapped_for_a_link_just_before_sqlite_opens_it_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the lstat cannot see: the file checked is replaced before SQLite opens it."""
    path = tmp_path / "jobs.sqlite"
    victim = tmp_path / "victim.sqlite"
    with sqlite3.connect(victim) as db:
        db.execute("CREATE TABLE precious (value TEXT)")
    before = victim.read_bytes()
    connect = sqlite3.connect

    def swapping(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        path.unlink()
        path.symlink_to(victim)
        opened: sqlite3.Connection = connect(*args, **kwargs)
        return opened

    with monkeypatch.context() as patch:
        patch.setattr(sqlite3, "connect", swapping)
        await refused(path, "it was replaced while being opened")
    assert victim.read_bytes() == before
    path.unlink()
    await still_opens(path)


# --------------------------------------------------------------------------------------------
# Modes, owners, kinds of file


async def test_an_existing_0644_journal_and_its_wal_and_shm_become_0600(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    async with Journal(path) as journal:
        journal.add("a", {}, "fp", "queued")
    # A reader keeps the write-ahead log and its index in place (as a crash would).
    reader = sqlite3.connect(path)
    try:
        assert reader.execute("SELECT count(*) FROM jobs").fetchone() == (1,)
        files = [tmp_path / f"jobs.sqlite{suffix}" for suffix in ("", ".lock", "-wal", "-shm")]
        for file in files:
            file.chmod(0o644)
        assert {mode_of(file) for file in files} == {0o644}
        async with Journal(path) as journal:
            assert {file.name: mode_of(file) for file in files} == {
                file.name: 0o600 for file in files
            }
            journal.add("b", {}, "fp", "queued")
        assert {mode_of(file) for file in files if file.exists()} == {0o600}
    finally:
        reader.close()


async def test_a_new_journal_and_its_files_are_0600(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    async with Journal(path) as journal:
        journal.add("a", {}, "fp", "queued")
        await journal.flush()
        names = ("", ".lock", "-wal", "-shm")
        modes = {suffix: mode_of(tmp_path / f"jobs.sqlite{suffix}") for suffix in names}
    assert modes == dict.fromkeys(names, 0o600)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="giving a file away needs root"
)
@pytest.mark.parametrize("suffix", ["", ".lock", "-wal"])
async def test_a_journal_file_of_another_user_is_refused(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / "jobs.sqlite"
    await still_opens(path)
    theirs = tmp_path / f"jobs.sqlite{suffix}"
    theirs.touch()
    os.chown(theirs, 65534, 65534)
    theirs.chmod(0o666)
    await refused(path, "belongs to user id 65534, not to the current user")
    assert mode_of(theirs) == 0o666  # left alone
    theirs.unlink()
    await still_opens(path)


async def test_a_fifo_as_the_lock_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    os.mkfifo(tmp_path / "jobs.sqlite.lock")
    await refused(path, "is not a regular file")


# --------------------------------------------------------------------------------------------
# Output names through `chanjing batch run` (finding 10)


@pytest.mark.parametrize(
    ("output", "fragment"),
    [
        ("nul", "Windows device name ('nul')"),
        ("aux/x", "Windows device name ('aux')"),
        ("Com1.txt", "Windows device name ('Com1.txt')"),
        ("clip\u202egpj", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("a\u2066b", "U+2066 LEFT-TO-RIGHT ISOLATE"),
    ],
)
def test_batch_run_refuses_device_names_and_invisible_characters_before_sending(
    emulator_process: EmulatorProcess,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    output: str,
    fragment: str,
) -> None:
    for name, value in emulator_process.env().items():
        if name.startswith("CHANJING_"):
            monkeypatch.setenv(name, value)
    manifest = tmp_path / "batch.csv"
    manifest.write_text(
        f"output,video_file_id,text,voice\nfine,v1,hi,{VOICE}\n{output},v1,hi,{VOICE}\n",
        encoding="utf-8",
    )
    code = main(["batch", "run", str(manifest), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "row 2 (line 3): output=" in err
    assert fragment in "".join(err.split("\n"))
    assert "Traceback" not in err
    stats = emulator_process.stats()
    assert sum(e["requests"] for e in stats["endpoints"].values()) == 0
    assert not (tmp_path / "out").exists()
