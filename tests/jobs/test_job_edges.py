"""Jobs at the edges of a manager's life: a record that no longer validates, a job cancelled
while its create waits or is answered, a manager closed while a submit is being committed."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import pytest

from chanjing_async import (
    InvalidInputError,
    JobCancelledError,
    JobHandle,
    JobStage,
    SlidingWindowLimiter,
)
from chanjing_async.emulator import EmulatorServer, Fault
from chanjing_async.jobs._journal_rules import fingerprint, spec
from chanjing_async.journal import Journal
from tests.support import job_manager, make_client, numbered, until

if TYPE_CHECKING:
    from pathlib import Path

    from chanjing_async import AsyncChanjingClient

pytestmark = pytest.mark.anyio


async def journaled(
    path: Path, key: str, stage: JobStage, video_id: str = "video-1", **values: Any
) -> None:
    """Write the row an earlier run left for job ``key`` (request "job 0" of ``video_id``)."""
    row_spec = spec(numbered(video_id, 0))
    async with Journal(path) as journal:
        journal.add(key, row_spec, fingerprint(row_spec), stage.value)
        journal.update(key, **values)


async def test_a_journaled_request_that_no_longer_validates_is_refused_as_such(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    # The row says a create was sent with a request the model now refuses: resume raises
    # the model's own error, naming the field, not an error of the manager's bookkeeping.
    path = tmp_path / "jobs.sqlite"
    sent = {**numbered("video-1", 0).model_dump(mode="json"), "video_file_id": ""}
    await journaled(path, "row", JobStage.QUEUED, sent_at=time.time(), request=sent)
    async with make_client(emulator.base_url) as client, job_manager(client, journal=path) as jobs:
        with pytest.raises(InvalidInputError) as caught:
            await jobs.resume()
        assert caught.value.field == "video_file_id"
    assert emulator.state.stats()["endpoints"]["create"]["requests"] == 0


@pytest.mark.parametrize("both_held", [False, True], ids=["B-created-first", "B-refused-too"])
async def test_a_create_refused_after_its_job_was_cancelled_and_its_key_reused(
    emulator: EmulatorServer, files: tuple[str, str], both_held: bool
) -> None:
    # A's create is refused (40001), and its answer held in the client's session until A has
    # been cancelled and its key submitted again as B, and B created (or, both_held, B's
    # create refused and held too). Then the answers go on: nothing to retry for A, and
    # forgetting A must not forget B, which is put back in line and sent again.
    refused = 2 if both_held else 1
    emulator.inject(Fault(endpoint="create", kind="code", code=40001, count=refused))
    release = anyio.Event()
    answers: list[str] = []

    async def hold(
        session: aiohttp.ClientSession, context: object, params: aiohttp.TraceRequestEndParams
    ) -> None:
        if params.url.path.endswith("/video_lip_sync/create") and len(answers) < refused:
            answers.append(params.url.path)
            await release.wait()

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(hold)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        client = make_client(emulator.base_url, session=session)
        async with client, job_manager(client) as jobs:
            first = await jobs.submit(numbered(files[0], 0), key="same")
            await until(lambda: len(answers) == 1, timeout=5)
            first.cancel()
            again = await jobs.submit(numbered(files[0], 0), key="same")
            if both_held:
                await until(lambda: len(answers) == 2, timeout=5)
            else:
                await until(lambda: again.task_id is not None, timeout=5)
            release.set()
            with anyio.fail_after(30):
                await again.wait()
            await until(lambda: jobs.stats.submit.requeued == refused, timeout=5)
            with pytest.raises(JobCancelledError):
                await first.wait()
            assert first.task_id is None
    assert emulator.state.stats()["endpoints"]["create"]["requests"] == refused + 1


async def test_a_submit_committed_while_the_manager_closes_returns_its_cancelled_handle(
    emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # resume() takes up a row that has its task; its commit is held until the manager has
    # begun closing. It returns the handle, cancelled by the close, and is not tracked.
    path = tmp_path / "jobs.sqlite"
    await journaled(path, "row", JobStage.SUBMITTED, task_id="task-of-an-earlier-run")
    committing, release = anyio.Event(), anyio.Event()
    taken: list[JobHandle] = []
    async with make_client(emulator.base_url) as client:
        jobs = job_manager(client, journal=path)
        async with anyio.create_task_group() as group:
            async with jobs:
                journal = jobs.journal
                assert journal is not None
                commit = journal._commit_queued

                async def held() -> None:
                    if journal.queued and not committing.is_set():
                        committing.set()
                        await release.wait()
                    await commit()

                monkeypatch.setattr(journal, "_commit_queued", held)

                async def resume() -> None:
                    taken.extend(await jobs.resume())

                async def release_once_closing() -> None:
                    await until(lambda: jobs._state == "closed")  # it waits for the commit
                    release.set()

                group.start_soon(resume)
                with anyio.fail_after(5):
                    await committing.wait()
                group.start_soon(release_once_closing)
    (handle,) = taken
    assert handle.stage is JobStage.CANCELLED
    with pytest.raises(JobCancelledError):
        await handle.wait()
    assert emulator.state.stats()["endpoints"].get("detail", {}).get("requests", 0) == 0


async def test_a_job_cancelled_while_its_create_waits_to_be_sent_is_withdrawn(
    emulator: EmulatorServer, client: AsyncChanjingClient, files: tuple[str, str], tmp_path: Path
) -> None:
    # An earlier run's create is unexplained, so this run's creates wait for it to be
    # explained; the job cancelled meanwhile is withdrawn, nothing sent, the manager goes on.
    path = tmp_path / "jobs.sqlite"
    request = numbered(files[0], 0).model_dump(mode="json")
    # Sent long enough ago that its watch (its doubt, a margin, then a horizon) ends about
    # 1.5 s from now: the task list then shows nothing, and it is sent again.
    sent_at = time.time() - 2 * client.timeouts.create_horizon - 0.5
    await journaled(path, "earlier", JobStage.QUEUED, files[0], sent_at=sent_at, request=request)
    async with job_manager(client, journal=path) as jobs:
        (earlier,) = await jobs.resume()
        waiting = await jobs.submit(numbered(files[0], 1), key="waiting")
        limiter = client.limiters.create
        assert isinstance(limiter, SlidingWindowLimiter)
        await until(lambda: limiter.in_flight == 1, timeout=5)  # left the queue
        assert jobs.stats.submit.sent == 0
        waiting.cancel()
        with pytest.raises(JobCancelledError):
            await waiting.wait()
        with anyio.fail_after(30):
            await earlier.wait()  # its create never arrived: sent again
            await (await jobs.submit(numbered(files[0], 2), key="next")).wait()
        assert jobs.stats.submit.sent == 2  # "earlier" again, and "next"
    assert emulator.state.stats()["endpoints"]["create"]["requests"] == 2
