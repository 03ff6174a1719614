"""Tasks the server forgets: confirmed unknown a few times, their jobs end; until then, not.

The emulator forgets every task on demand (``EmulatorServer.forget_tasks``, as a restart
without its task store would): ``detail`` answers ``40000 任务不存在`` and the list no longer
shows them. Durations are real-scale seconds divided by ``TIME_SCALE``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio
import pytest

from chanjing_async import (
    JobStage,
    LipSyncRequest,
    PollPolicy,
    Rate,
    RateLimits,
    TaskNotFoundError,
)
from chanjing_async.emulator import EmulatorServer, Fault
from tests.support import TIME_SCALE, VOICE, emulator_settings, job_manager, make_client, until

if TYPE_CHECKING:
    from pathlib import Path

    from chanjing_async import AsyncChanjingClient, JobHandle

pytestmark = pytest.mark.anyio

POLICY = PollPolicy().scaled(TIME_SCALE)


def unknown(count: int | None) -> Fault:
    """``detail`` answers 40000 任务不存在 ``count`` times (None: until cleared)."""
    return Fault(endpoint="detail", kind="code", code=40000, msg="任务不存在", count=count)


def detail_reads(emulator: EmulatorServer) -> int:
    return int(emulator.state.stats()["endpoints"]["detail"]["requests"])


def list_reads(emulator: EmulatorServer) -> int:
    return int(emulator.state.stats()["endpoints"]["list"]["requests"])


async def video_request(client: AsyncChanjingClient, video: Path) -> LipSyncRequest:
    uploaded = await client.files.upload(video, service="lip_sync_video", poll_interval=0.01)
    return LipSyncRequest.tts(uploaded.id, text="你好", audio_man_id=VOICE)


def in_flight(handles: list[JobHandle]) -> bool:
    return all(h.last is not None and not h.done for h in handles)


@pytest.mark.parametrize("jobs_in_flight", [1, 30])
async def test_jobs_whose_tasks_the_server_forgot_end_with_task_not_found(
    media: tuple[Path, Path], jobs_in_flight: int
) -> None:
    # 1 job is polled through detail alone; 30 through list pages, then detail.
    settings = emulator_settings(task_seconds=3600.0, create_limit=100)
    limits = RateLimits(create=Rate(100, 60.0, 1.0)).scaled(TIME_SCALE)
    async with EmulatorServer(settings) as emulator:
        async with make_client(emulator.base_url, limits=limits) as client:
            request = await video_request(client, media[0])
            async with job_manager(client) as jobs:
                handles = await jobs.submit_many([request] * jobs_in_flight)
                await until(lambda: in_flight(handles), timeout=10)
                assert emulator.forget_tasks() == jobs_in_flight
                forgotten_at = time.monotonic()
                details_before = detail_reads(emulator)
                lists_before = list_reads(emulator)
                with anyio.fail_after(10):  # 10 real minutes; the job deadline is 2 hours
                    async for _ in jobs.as_completed(handles):
                        pass
                took = time.monotonic() - forgotten_at
                assert jobs.unfinished == 0
                details = detail_reads(emulator) - details_before
                lists = list_reads(emulator) - lists_before
                await anyio.sleep(POLICY.max_interval * 2)
                assert detail_reads(emulator) - details_before == details  # no read after

    for handle in handles:
        error = handle.error
        assert isinstance(error, TaskNotFoundError), error
        assert error.task_id == handle.task_id
        assert error.job_key == handle.key
        assert "40000" in str(error)
        assert handle.stage is JobStage.FAILED
    # Confirmed over the window, never on one answer; and not much later than that.
    assert POLICY.missing_window <= took < POLICY.missing_window + 3 * POLICY.max_interval
    # Each vanished task costs its missing_reads detail reads, and the census a page or two.
    assert details <= POLICY.missing_reads * jobs_in_flight
    assert lists <= 3 * POLICY.missing_reads + 3


async def test_a_task_unknown_for_a_moment_goes_on(
    emulator: EmulatorServer, client: AsyncChanjingClient, files: tuple[str, str]
) -> None:
    # A replica that lags behind the create answers 40000 a couple of times: no verdict.
    async with job_manager(client) as jobs:
        emulator.inject(unknown(POLICY.missing_reads - 1))
        handle = await jobs.submit(LipSyncRequest.audio(files[0], audio_file_id=files[1]))
        with anyio.fail_after(10):
            task = await handle.wait()
    assert task.succeeded
    assert handle.stage is JobStage.SUCCEEDED
    faults = emulator.state.stats()["faults_applied"]["detail"]
    assert faults == {"code 40000": POLICY.missing_reads - 1}


async def test_a_task_the_list_still_shows_is_not_given_up(
    emulator: EmulatorServer, client: AsyncChanjingClient, files: tuple[str, str]
) -> None:
    # Detail says 40000 every time, but the census of the task list finds the task: it is
    # refreshed from there (to its end), never ended as unknown.
    emulator.inject(unknown(None))
    async with job_manager(client) as jobs:
        handle = await jobs.submit(LipSyncRequest.audio(files[0], audio_file_id=files[1]))
        with anyio.fail_after(10):
            task = await handle.wait()
        poll = jobs.stats.poll
    assert task.succeeded
    assert handle.error is None
    assert poll.detail_calls >= POLICY.missing_reads
    assert poll.list_calls >= 1  # the census read the list, and found the task there


@pytest.mark.slow
async def test_the_census_waits_for_a_list_that_fails(
    media: tuple[Path, Path],
) -> None:
    # The list cannot be read: nothing proves the task gone, so its job is not ended as unknown
    # (it ends at its deadline, as any job whose task cannot be read).
    settings = emulator_settings(task_seconds=3600.0)
    async with EmulatorServer(settings) as emulator:
        async with make_client(emulator.base_url) as client:
            request = await video_request(client, media[0])
            async with job_manager(client) as jobs:
                handle = await jobs.submit(request, timeout=240 / TIME_SCALE)
                await until(lambda: handle.last is not None, timeout=5)
                emulator.forget_tasks()
                emulator.inject(Fault(endpoint="list", kind="code", count=None))
                with anyio.fail_after(10):
                    async for _ in jobs.as_completed([handle]):
                        pass
    assert isinstance(handle.error, TimeoutError)
    assert not isinstance(handle.error, TaskNotFoundError)
