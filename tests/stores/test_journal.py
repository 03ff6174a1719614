"""The SQLite journal: what it records, and a JobManager resuming from it after a crash.

Crashes are staged by writing the rows a killed run leaves behind (a create sent but not
answered, a task created but not finished); ``test_batch_cli.py`` kills real processes.
"""

from __future__ import annotations

import sqlite3
import stat
import sys
import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from chanjing_async import (
    ConfigurationError,
    CreateOutcomeUnknown,
    InvalidInputError,
    JobError,
    JobManager,
    JobStage,
    LipSyncJob,
    TaskStatus,
)
from chanjing_async.emulator import EmulatorServer
from chanjing_async.journal import Journal
from tests.support import (
    JOB_POLL,
    SECRET_KEY,
    VOICE,
    emulator_settings,
    job_manager,
    make_client,
    numbered,
)

if TYPE_CHECKING:
    from pathlib import Path

    from chanjing_async import AsyncChanjingClient


pytestmark = pytest.mark.anyio


def manager(client: AsyncChanjingClient, journal: Path | Journal, **options: Any) -> JobManager:
    return job_manager(client, journal=journal, **options)


def creates(emulator: EmulatorServer) -> int:
    return len(emulator.state.tasks)


async def staged(path: Path, video_id: str, n: int, **values: Any) -> None:
    """Write the row a crashed run would have left for job ``n`` (key ``job-n``)."""
    from chanjing_async.jobs._journal_rules import fingerprint, spec

    job = numbered(video_id, n)
    row_spec = spec(job)
    if "sent_at" in values:  # written together, before a create goes out
        values["request"] = job.model_dump(mode="json")
    async with Journal(path) as journal:
        journal.add(f"job-{n}", row_spec, fingerprint(row_spec), JobStage.QUEUED.value)
        if values:
            journal.update(f"job-{n}", **values)


def written(path: Path) -> bytes:
    """The bytes of a journal and its -wal / -shm companions."""
    return b"".join(part.read_bytes() for part in path.parent.glob(f"{path.name}*"))


# -- the file ------------------------------------------------------------------------------------


async def test_journal_file_is_private_and_rows_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "jobs.sqlite"
    async with Journal(path) as journal:
        journal.add("a", {"request": {"x": 1}}, "fp", "queued")
        journal.update("a", task_id="t1", task={"id": "t1", "status": 10})
        journal.remember_upload("d" * 64, "lip_sync_video", "file-1")
        rows = await journal.rows()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [(row.key, row.stage, row.task_id, row.task) for row in rows] == [
        ("a", "queued", "t1", {"id": "t1", "status": 10})
    ]
    async with Journal(path) as again:
        assert again.uploads[("d" * 64, "lip_sync_video")][0] == "file-1"
        again.add("b", {}, "fp2", "queued")
        assert [row.seq for row in await again.rows()] == [0, 1]


async def test_other_files_are_refused_clearly(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.sqlite"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigurationError, match="not a journal database"):
        await Journal(garbage).open()
    newer = tmp_path / "newer.sqlite"
    async with Journal(newer):
        pass
    with sqlite3.connect(newer) as db:
        db.execute("UPDATE meta SET value = '99' WHERE name = 'schema'")
    with pytest.raises(ConfigurationError, match="schema version 99"):
        await Journal(newer).open()


async def test_unknown_columns_are_refused(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.sqlite") as journal:
        with pytest.raises(ValueError, match="secret"):
            journal.update("a", secret="x")


# -- a manager with a journal --------------------------------------------------------------------


async def test_rerun_skips_finished_jobs_and_creates_nothing(
    emulator: EmulatorServer, client: AsyncChanjingClient, files: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "jobs.sqlite"
    keys = [f"job-{n}" for n in range(3)]
    async with manager(client, path) as jobs:
        handles = await jobs.submit_many([numbered(files[0], n) for n in range(3)], keys=keys)
        with anyio.fail_after(30):
            first = [await handle.wait() for handle in handles]
    assert creates(emulator) == 3
    async with manager(client, path) as jobs:
        again = await jobs.submit_many([numbered(files[0], n) for n in range(3)], keys=keys)
        assert all(handle.done and handle.stage is JobStage.SUCCEEDED for handle in again)
        assert [handle.result().id for handle in again] == [task.id for task in first]
        assert await jobs.resume() == []
    assert creates(emulator) == 3
    text = written(path)
    assert SECRET_KEY.encode() not in text
    assert b"video_url" not in text  # result URLs expire: they are read again when needed


async def test_a_key_reused_for_another_job_is_refused(
    client: AsyncChanjingClient, files: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "jobs.sqlite"
    async with manager(client, path) as jobs:
        await (await jobs.submit(numbered(files[0], 1), key="row-1")).wait()
    async with manager(client, path) as jobs:
        with pytest.raises(InvalidInputError, match="journaled for a different job") as caught:
            await jobs.submit(numbered(files[0], 2), key="row-1")
        assert caught.value.field == "key"
        with pytest.raises(InvalidInputError, match=r"keys\[1\]"):
            await jobs.submit_many([numbered(files[0], 3)] * 2, keys=["x", "x"])
        assert jobs.unfinished == 0


async def test_unfinished_jobs_resume_without_a_second_create(
    emulator: EmulatorServer, client: AsyncChanjingClient, files: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "jobs.sqlite"
    async with manager(client, path) as jobs:
        handles = await jobs.submit_many(
            [numbered(files[0], n) for n in range(4)], keys=[f"job-{n}" for n in range(4)]
        )
        with anyio.fail_after(10):
            for handle in handles:
                async for _ in handle.events():
                    if handle.task_id:
                        break
    # The manager closed with 4 created, unfinished tasks: they stay in the journal.
    async with Journal(path) as journal:
        assert {row.stage for row in await journal.rows()} <= {"submitted", "generating"}
    async with manager(client, path) as jobs:
        resumed = await jobs.resume()
        assert [handle.key for handle in resumed] == [f"job-{n}" for n in range(4)]
        with anyio.fail_after(30):
            tasks = [await handle.wait() for handle in resumed]
    assert [task.id for task in tasks] == [handle.task_id for handle in handles]
    assert creates(emulator) == 4


async def test_a_create_lost_in_a_crash_is_adopted_not_sent_again(
    emulator: EmulatorServer, client: AsyncChanjingClient, files: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "jobs.sqlite"
    sent_at = time.time()
    await staged(path, files[0], 7, sent_at=sent_at)
    # The killed run's create reached the server; its answer was never recorded.
    async with make_client(emulator.base_url) as dead_process:
        lost = await dead_process.lip_sync.create(numbered(files[0], 7))
    async with JobManager(client, journal=path, poll=JOB_POLL) as jobs:
        (handle,) = await jobs.resume()
        with anyio.fail_after(30):
            task = await handle.wait()
        assert jobs.stats.submit.adopted == 1
        assert jobs.stats.submit.sent == 0
    assert task.id == lost
    assert creates(emulator) == 1


@pytest.mark.slow
async def test_a_create_that_never_arrived_is_sent_once(
    emulator: EmulatorServer, client: AsyncChanjingClient, files: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "jobs.sqlite"
    await staged(path, files[0], 3, sent_at=time.time() - 1)
    async with manager(client, path) as jobs:
        (handle,) = await jobs.resume()
        with anyio.fail_after(30):
            await handle.wait()
        assert (jobs.stats.submit.resent, jobs.stats.submit.sent) == (1, 1)
    assert creates(emulator) == 1


@pytest.mark.slow
async def test_a_crash_next_to_a_foreign_task_fails_rather_than_guess(
    emulator: EmulatorServer, client: AsyncChanjingClient, files: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "jobs.sqlite"
    await staged(path, files[0], 1, sent_at=time.time())
    async with make_client(emulator.base_url) as others:
        for n in (1, 2):  # the killed run's, and one from another program on the same app id
            await others.lip_sync.create(numbered(files[0], n))
    async with manager(client, path) as jobs:
        (handle,) = await jobs.resume()
        with anyio.fail_after(30), pytest.raises(CreateOutcomeUnknown) as caught:
            await handle.wait()
    assert len(caught.value.candidates) == 2
    assert creates(emulator) == 2
    async with manager(client, path) as jobs:  # recorded as failed: not tried again
        (again,) = await jobs.submit_many([numbered(files[0], 1)], keys=["job-1"])
        assert isinstance(again.error, JobError)
        assert "CreateOutcomeUnknown" in str(again.error)


async def test_the_limiter_remembers_the_creates_of_the_last_window(
    client: AsyncChanjingClient, files: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "jobs.sqlite"
    for n in range(10):
        await staged(path, files[0], n, task_id=f"t{n}", answered_at=time.time())
    limiter = client.limiters.create
    async with manager(client, path):
        wait = limiter.next_free() - time.monotonic()
    assert 0.5 * limiter.window < wait <= limiter.window + 0.1


async def test_uploads_are_reused_across_runs(
    emulator: EmulatorServer, client: AsyncChanjingClient, media: tuple[Path, Path], tmp_path: Path
) -> None:
    path = tmp_path / "jobs.sqlite"
    video, audio = media
    job = LipSyncJob.audio(video, audio=audio)
    async with manager(client, path) as jobs:
        await (await jobs.submit(job, key="first")).wait()
        assert jobs.stats.uploads == 2
    async with manager(client, path) as jobs:
        await (await jobs.submit(LipSyncJob.audio(video, audio=audio, volume=50), key="2")).wait()
        assert jobs.stats.uploads == 0
    assert emulator.state.endpoint_stats("upload").requests == 2


# -- findings of the review: repeats, locks, foreign files, crashed creates without files --------


async def test_a_finished_key_submitted_again_never_makes_a_second_task(
    emulator: EmulatorServer, client: AsyncChanjingClient, files: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "jobs.sqlite"
    async with manager(client, path) as jobs:
        first = await jobs.submit(numbered(files[0], 1), key="k")
        await first.wait()
        assert await jobs.submit(numbered(files[0], 1), key="k") is first  # same run
    async with manager(client, path) as jobs:
        earlier = await jobs.submit(numbered(files[0], 1), key="k")  # next run
        assert await jobs.submit(numbered(files[0], 1), key="k") is earlier
        assert earlier.result().id == first.result().id
    assert creates(emulator) == 1


# Holds a journal open in another process until its stdin closes.
_HOLDER = """
import sys, anyio
from chanjing_async.journal import Journal
async def main():
    async with Journal(sys.argv[1]):
        print("open", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)
anyio.run(main)
"""


async def test_one_journal_has_one_writer_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    async with Journal(path) as journal:
        journal.add("a", {}, "fp", "queued")
        # The same process (issue 14, defect 6: this was reported as "another process").
        with pytest.raises(ConfigurationError, match="open already in this process") as caught:
            await Journal(path).open()
        assert "another process" not in str(caught.value)
        async with Journal(path, readonly=True) as reader:  # batch status still reads it
            assert await reader.rows() == []  # the add is not committed yet
    async with Journal(path, readonly=True) as reader:
        assert [row.key for row in await reader.rows()] == ["a"]
    async with await anyio.open_process([sys.executable, "-c", _HOLDER, str(path)]) as holder:
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert (await holder.stdout.receive()).startswith(b"open")
        with pytest.raises(ConfigurationError, match="another process has it open"):
            await Journal(path).open()
        await holder.stdin.aclose()
    async with Journal(path):  # free again
        pass


async def test_a_journal_is_tied_to_its_app_and_server(
    client: AsyncChanjingClient, files: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "jobs.sqlite"
    async with manager(client, path) as jobs:
        await (await jobs.submit(numbered(files[0], 1), key="row-1")).wait()
    async with EmulatorServer(emulator_settings()) as other, make_client(other.base_url) as moved:
        with pytest.raises(ConfigurationError, match=r"belongs to .* holds creates sent there"):
            await manager(moved, path).__aenter__()
    async with manager(client, path):  # the lock was released by the refused open
        pass


async def test_a_journal_that_never_sent_a_create_passes_to_the_next_account(
    client: AsyncChanjingClient, media: tuple[Path, Path], tmp_path: Path
) -> None:
    """A first run with a wrong base URL sends nothing: its re-run with the right one must
    not be refused, and the uploads of the wrong server are not reused."""
    path = tmp_path / "jobs.sqlite"
    video = media[0]
    job = LipSyncJob.tts(video, text="hi", audio_man_id=VOICE)
    async with manager(client, path) as jobs:
        await (await jobs.submit(job, key="row-1")).wait()
    async with Journal(path) as journal:  # as if that create had never been sent
        journal.update("row-1", stage="queued", task_id=None, sent_at=None, task=None)
        await journal.flush()
    async with EmulatorServer(emulator_settings()) as other, make_client(other.base_url) as moved:
        async with manager(moved, path) as jobs:
            task = await (await jobs.submit(job, key="row-1")).wait()
        assert task.status == TaskStatus.SUCCEEDED
        assert other.state.stats()["tasks_created"] == 1
        uploads = other.state.stats()["endpoints"]["create_upload_url"]["requests"]
        assert uploads == 1  # the first server's file id was not reused here


async def test_other_sqlite_files_are_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(ConfigurationError, match="holds other tables"):
        await Journal(path).open()
    with pytest.raises(ConfigurationError, match="not a journal"):
        await Journal(path, readonly=True).open()
    with sqlite3.connect(path) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert tables == {"users"}


@pytest.mark.slow
async def test_a_crashed_create_is_adopted_even_if_its_files_are_gone(
    emulator: EmulatorServer, client: AsyncChanjingClient, media: tuple[Path, Path], tmp_path: Path
) -> None:
    from chanjing_async.jobs._journal_rules import fingerprint, spec

    path = tmp_path / "jobs.sqlite"
    video, audio = media
    job = LipSyncJob.audio(video, audio=audio)
    async with make_client(emulator.base_url) as dead_process:
        ids = {
            video: (await dead_process.files.upload(video, service="lip_sync_video")).id,
            audio: (await dead_process.files.upload(audio, service="lip_sync_audio")).id,
        }
        sent = job.to_request(ids)
        async with Journal(path) as journal:
            row_spec = spec(job)
            journal.add("row", row_spec, fingerprint(row_spec), JobStage.QUEUED.value)
            journal.update("row", sent_at=time.time(), request=sent.model_dump(mode="json"))
        lost = await dead_process.lip_sync.create(sent)
    await anyio.Path(video).unlink()
    await anyio.Path(audio).unlink()
    async with manager(client, path) as jobs:
        (handle,) = await jobs.resume()
        with anyio.fail_after(30):
            assert (await handle.wait()).id == lost
    assert creates(emulator) == 1


async def test_retry_failed_runs_failed_rows_again_but_not_unexplained_ones(
    emulator: EmulatorServer, client: AsyncChanjingClient, files: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "jobs.sqlite"
    await staged(path, files[0], 1)
    await staged(path, files[0], 2)
    async with Journal(path) as journal:
        journal.update("job-1", stage="failed", error="JobFailedError: 生成失败")
        journal.update("job-2", stage="failed", error="CreateOutcomeUnknown: two candidates")
    async with manager(client, path) as jobs:
        plain = await jobs.submit_many(
            [numbered(files[0], n) for n in (1, 2)], keys=["job-1", "job-2"]
        )
        assert all(handle.done for handle in plain)
    async with manager(client, path, retry_failed=True) as jobs:
        one, two = await jobs.submit_many(
            [numbered(files[0], n) for n in (1, 2)], keys=["job-1", "job-2"]
        )
        with anyio.fail_after(30):
            await one.wait()
        assert two.done
        assert "CreateOutcomeUnknown" in str(two.error)
    assert creates(emulator) == 1
