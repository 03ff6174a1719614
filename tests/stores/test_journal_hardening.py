"""A journaled manager given a key again, and a journal that cannot write (issue 14, defect 1).

A key whose job ended unfinished in the journal (its deadline passed, or its create's outcome
stayed unknown without candidates) resumes its row when submitted again, never a second row;
a write that fails (a full disk: SQLite's ``max_page_count`` makes it really fail) reaches
its caller as ``JournalError``, withdraws what it was for and never stops the manager.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from chanjing_async import (
    ConfigurationError,
    CreateOutcomeUnknown,
    InvalidInputError,
    JobStage,
    JobTimeoutError,
    LipSyncRequest,
    Timeouts,
)
from chanjing_async.emulator import EmulatorServer, Fault
from chanjing_async.errors import JournalError
from chanjing_async.journal import Journal
from tests.support import (
    SECRET_KEY,
    VOICE,
    job_manager,
    make_client,
    numbered,
)

if TYPE_CHECKING:
    from pathlib import Path

    from chanjing_async import AsyncChanjingClient, JobManager

pytestmark = pytest.mark.anyio


def creates(emulator: EmulatorServer) -> int:
    return len(emulator.state.tasks)


def manager(client: AsyncChanjingClient, path: Path, **options: Any) -> JobManager:
    return job_manager(client, journal=path, **options)


def wordy(video_id: str, n: int) -> LipSyncRequest:
    """A job whose journal row fills most of a page: each new row needs a new page."""
    return LipSyncRequest.tts(video_id, text=f"job {n} " + "字" * 1200, audio_man_id=VOICE)


def set_disk(journal: Journal, *, full: bool) -> None:
    """Make the journal's disk full (no page beyond those in use) or roomy again.

    A real SQLite failure ("database or disk is full"), on the journal's own connection; the
    worker thread is idle between the manager's commits, so setting it here is safe.
    """
    db = journal._db
    assert db is not None
    if full:
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        db.execute(f"PRAGMA max_page_count = {pages}")
    else:
        db.execute("PRAGMA max_page_count = 1073741823")


def stored(path: Path) -> dict[str, tuple[str, str | None]]:
    """Key -> (stage, task id) of every committed row."""
    with sqlite3.connect(path) as db:
        return {
            key: (stage, task)
            for key, stage, task in db.execute("SELECT key, stage, task_id FROM jobs")
        }


# -- a key left unfinished, submitted again ------------------------------------------------------


async def test_a_key_past_its_deadline_submitted_again_resumes_its_task(
    emulator: EmulatorServer, client: AsyncChanjingClient, files: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "jobs.sqlite"
    async with manager(client, path, job_timeout=0.1) as jobs:
        first = await jobs.submit(numbered(files[0], 1), key="k")
        with anyio.fail_after(10), pytest.raises(JobTimeoutError):
            await first.wait()
        assert first.task_id is not None
        # The job ended here but not in the journal (its task runs on): the key resumes it.
        again = await jobs.submit(numbered(files[0], 1), key="k", timeout=30)
        assert again is not first
        assert again.task_id == first.task_id
        with anyio.fail_after(30):
            task = await again.wait()
        assert jobs.get("k") is again
        assert await jobs.submit(numbered(files[0], 1), key="k") is again  # now finished
    assert task.id == first.task_id
    assert creates(emulator) == 1
    assert stored(path) == {"k": ("succeeded", first.task_id)}


async def test_a_key_whose_create_stayed_unexplained_is_reconciled_again(
    emulator: EmulatorServer, files: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "jobs.sqlite"
    horizon = Timeouts(total=5.0, connect=2.0, create_horizon=0.5)
    async with make_client(emulator.base_url, timeouts=horizon) as client:
        await client.lip_sync.get(await client.lip_sync.create(numbered(files[0], 0)))  # clock
        # The create is handled but its answer lost, and the list cannot be read: the job
        # fails with CreateOutcomeUnknown without candidates, and stays unfinished.
        emulator.inject(Fault(endpoint="create", kind="drop_after", count=1))
        emulator.inject(Fault(endpoint="list", kind="code", code=50000, count=None))
        async with manager(client, path, reconcile_settle=0.05) as jobs:
            first = await jobs.submit(numbered(files[0], 1), key="k")
            with anyio.fail_after(30), pytest.raises(CreateOutcomeUnknown) as caught:
                await first.wait()
            assert caught.value.candidates == ()
            emulator.state.clear_faults()
            again = await jobs.submit(numbered(files[0], 1), key="k")
            with anyio.fail_after(30):
                task = await again.wait()
            assert jobs.stats.submit.adopted == 1
    assert creates(emulator) == 2  # the clock's task and job k's: never created twice
    assert stored(path) == {"k": ("succeeded", task.id)}


# -- a journal that cannot write ------------------------------------------------------------------


async def test_a_submit_on_a_full_disk_is_refused_and_a_retry_creates_once(
    emulator: EmulatorServer, client: AsyncChanjingClient, files: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "jobs.sqlite"
    async with manager(client, path) as jobs:
        assert jobs.journal is not None
        done = await jobs.submit(wordy(files[0], 0), key="before")
        with anyio.fail_after(30):
            await done.wait()
        set_disk(jobs.journal, full=True)
        with pytest.raises(JournalError, match="full") as caught:
            await jobs.submit(wordy(files[0], 1), key="k")
        error = caught.value
        assert error.path == str(path)
        assert error.__cause__ is None
        assert error.__context__ is None
        assert not isinstance(error, sqlite3.Error)
        assert jobs.get("k") is None  # nothing was submitted
        await anyio.sleep(0.3)  # the background flush meets the full disk too: no crash
        set_disk(jobs.journal, full=False)
        handle = await jobs.submit(wordy(files[0], 1), key="k")
        with anyio.fail_after(30):
            task = await handle.wait()
        assert jobs.get("before") is done  # the manager and the other job carried on
    assert creates(emulator) == 2
    assert stored(path) == {"before": ("succeeded", done.task_id), "k": ("succeeded", task.id)}
    assert SECRET_KEY not in str(error)


async def test_a_create_whose_intent_cannot_be_written_is_not_sent(
    emulator: EmulatorServer, client: AsyncChanjingClient, files: tuple[str, str], tmp_path: Path
) -> None:
    # The row is written, then the disk fills before the create's "sending" write: the job
    # fails with JournalError, nothing is sent, and the key resumes its row once space is back.
    path = tmp_path / "jobs.sqlite"
    async with manager(client, path) as jobs:
        assert jobs.journal is not None
        emulator.inject(Fault(endpoint="create", kind="latency", seconds=0.5, count=1))
        blocker = await jobs.submit(numbered(files[0], 0), key="blocker")  # one create at a time
        handle = await jobs.submit(wordy(files[0], 1), key="k")
        set_disk(jobs.journal, full=True)
        with anyio.fail_after(10), pytest.raises(JournalError):
            await handle.wait()
        assert handle.stage is JobStage.FAILED
        set_disk(jobs.journal, full=False)
        again = await jobs.submit(wordy(files[0], 1), key="k")
        with anyio.fail_after(30):
            await again.wait()
            await blocker.wait()
    assert creates(emulator) == 2
    assert stored(path)["k"][0] == "succeeded"


async def test_a_journal_that_cannot_write_closes_with_journal_error(
    client: AsyncChanjingClient, files: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "jobs.sqlite"
    jobs = manager(client, path)
    await jobs.__aenter__()
    assert jobs.journal is not None
    handle = await jobs.submit(numbered(files[0], 1), key="k")
    with anyio.fail_after(10):
        await handle.wait()
    set_disk(jobs.journal, full=True)
    jobs.journal.update("k", error="x" * 20_000)  # a write that needs pages the disk lacks
    with pytest.raises(JournalError, match="not committed"):
        await jobs.__aexit__(None, None, None)
    async with Journal(path) as reopened:  # the lock was released all the same
        assert [row.key for row in await reopened.rows()] == ["k"]


async def test_a_second_manager_on_the_same_file_in_this_process_is_refused(
    client: AsyncChanjingClient, tmp_path: Path
) -> None:
    path = tmp_path / "jobs.sqlite"
    async with manager(client, path):
        with pytest.raises(ConfigurationError, match="in this process") as caught:
            await manager(client, path).__aenter__()
    assert "another process" not in str(caught.value)
    async with manager(client, path):  # free again once the first closed
        pass


async def test_resume_takes_up_the_jobs_this_run_left_unfinished(
    emulator: EmulatorServer, client: AsyncChanjingClient, files: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "jobs.sqlite"
    async with manager(client, path, job_timeout=0.1) as jobs:
        first = await jobs.submit_many([numbered(files[0], n) for n in range(2)], keys=["a", "b"])
        with anyio.fail_after(10):
            for handle in first:
                with pytest.raises(JobTimeoutError):
                    await handle.wait()
        again = await jobs.resume(timeout=30)
        assert [handle.key for handle in again] == ["a", "b"]
        assert [handle.task_id for handle in again] == [handle.task_id for handle in first]
        with anyio.fail_after(30):
            for handle in again:
                await handle.wait()
        assert await jobs.resume() == []
    assert creates(emulator) == 2


async def test_text_utf8_cannot_encode_never_blocks_the_journal(
    client: AsyncChanjingClient, files: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "jobs.sqlite"
    async with manager(client, path) as jobs:
        assert jobs.journal is not None
        with pytest.raises(InvalidInputError, match="lone surrogate") as caught:
            await jobs.submit(numbered(files[0], 1), key="k\udc00")
        assert caught.value.field == "key"
    # A server's message may hold one (JSON "\udc00"): it is stored escaped, read back whole,
    # and the writes queued behind it are committed.
    async with Journal(tmp_path / "other.sqlite") as journal:
        journal.add("k", {}, "fp", "queued")
        journal.update("k", task={"msg": "bad \udc00 byte"}, error="bad \udc00 byte")
        journal.update("k", stage="submitted")
        (row,) = await journal.rows()
    assert row.task == {"msg": "bad \udc00 byte"}
    assert row.stage == "submitted"


async def test_done_handles_are_kept_for_the_latest_jobs_and_read_back_for_older_keys(
    emulator: EmulatorServer,
    client: AsyncChanjingClient,
    files: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A batch of any length keeps a bounded number of done handles (4,096; 2 here): an older
    # key submitted again is read back from the journal, done, and creates nothing.
    monkeypatch.setattr("chanjing_async.jobs._journal_store.FINISHED_KEPT", 2)
    monkeypatch.setattr("chanjing_async.jobs._records.RECENT_KEYS", 2)
    path = tmp_path / "jobs.sqlite"
    async with manager(client, path) as jobs:
        handles = [await jobs.submit(numbered(files[0], n), key=f"k{n}") for n in range(6)]
        with anyio.fail_after(30):
            for handle in handles:
                await handle.wait()
        again = [await jobs.submit(numbered(files[0], n), key=f"k{n}") for n in range(6)]
        with pytest.raises(InvalidInputError, match="different job"):
            await jobs.submit(numbered(files[0], 9), key="k1")
    assert all(handle.stage is JobStage.SUCCEEDED for handle in again)
    assert [handle.task_id for handle in again] == [handle.task_id for handle in handles]
    # At most two done handles are kept at any time: at least four came back from the journal.
    assert sum(new is not old for new, old in zip(again, handles, strict=True)) >= 4
    assert creates(emulator) == 6
