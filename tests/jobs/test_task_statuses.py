"""Task statuses the lip-sync docs leave open: 40, 41, 50, 1101 end a job, 1100 and others wait.

The emulator shows a chosen status for a task (``EmulatorServer.set_task_status``); tasks last
an hour so that nothing but the status ends them while a test looks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import pytest

from chanjing_async import (
    JobFailedError,
    JobStage,
    JobTimeoutError,
    LipSyncRequest,
    TaskStatus,
)
from chanjing_async.emulator import EmulatorServer
from chanjing_async.emulator._task_controls import STATUS_MESSAGES
from tests.support import TIME_SCALE, VOICE, emulator_settings, job_manager, make_client, until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from chanjing_async import AsyncChanjingClient, JobEvent, JobHandle

pytestmark = pytest.mark.anyio


@dataclass
class Slow:
    """An emulator whose tasks last an hour, a client of it and a request it accepts."""

    emulator: EmulatorServer
    client: AsyncChanjingClient
    request: LipSyncRequest


@pytest.fixture
async def slow(media: tuple[Path, Path]) -> AsyncIterator[Slow]:
    async with EmulatorServer(emulator_settings(task_seconds=3600.0)) as emulator:
        async with make_client(emulator.base_url) as client:
            video = await client.files.upload(
                media[0], service="lip_sync_video", poll_interval=0.01
            )
            request = LipSyncRequest.tts(video.id, text="你好", audio_man_id=VOICE)
            yield Slow(emulator, client, request)


async def tracked(handle: JobHandle) -> str:
    await until(lambda: handle.last is not None, timeout=5)
    assert handle.task_id is not None
    return handle.task_id


async def collect(handle: JobHandle, into: list[JobEvent]) -> None:
    async for event in handle.events():
        into.append(event)


@pytest.mark.parametrize("status", [40, 41, 50, 1101])
async def test_a_failure_status_ends_the_job_with_its_status_and_message(
    slow: Slow, status: int
) -> None:
    async with job_manager(slow.client) as jobs:
        handle = await jobs.submit(slow.request)
        task_id = await tracked(handle)
        slow.emulator.set_task_status(task_id, status)
        with pytest.raises(JobFailedError) as caught, anyio.fail_after(5):
            await handle.wait()
    error = caught.value
    assert error.task.status == status
    assert error.msg == STATUS_MESSAGES[status]
    assert f"status {status}" in str(error)
    assert STATUS_MESSAGES[status] in str(error)
    assert handle.stage is JobStage.FAILED
    assert handle.status == status
    assert not error.task.succeeded
    assert error.task.failed
    assert error.task.is_terminal


@pytest.mark.parametrize("status", [40, 41, 50, 1101])
async def test_a_direct_wait_returns_a_failed_task_for_a_failure_status(
    slow: Slow, status: int
) -> None:
    task_id = await slow.client.lip_sync.create(slow.request)
    slow.emulator.set_task_status(task_id, status)
    with anyio.fail_after(5):
        task = await slow.client.lip_sync.wait(task_id, timeout=5)
    assert task.status == status
    assert task.failed
    assert not task.succeeded


@pytest.mark.slow
async def test_manual_review_keeps_the_job_waiting_and_shows_on_its_events(
    slow: Slow,
) -> None:
    events: list[JobEvent] = []
    async with job_manager(slow.client) as jobs, anyio.create_task_group() as group:
        handle = await jobs.submit(slow.request)
        group.start_soon(collect, handle, events)
        task_id = await tracked(handle)
        stage = handle.stage
        slow.emulator.set_task_status(task_id, TaskStatus.IN_REVIEW)
        await until(lambda: handle.status == TaskStatus.IN_REVIEW, timeout=5)
        await anyio.sleep(120 / TIME_SCALE)  # four of the longest intervals: still waiting
        assert not handle.done
        assert handle.stage is stage
        assert handle.status == 1100
        assert any(e.task is not None and e.task.status == 1100 for e in events)
        # The review passes: the task goes on generating, and so does the job.
        slow.emulator.set_task_status(task_id, None)
        await until(lambda: handle.status == TaskStatus.GENERATING, timeout=5)
        assert not handle.done
        assert handle.stage is JobStage.GENERATING
        group.cancel_scope.cancel()


@pytest.mark.parametrize("status", [1100, 77])
async def test_a_waiting_status_is_bounded_by_the_job_deadline(slow: Slow, status: int) -> None:
    # Manual review, or a status nobody documents: never a success, never a crash; the job
    # waits until its deadline.
    deadline = 120 / TIME_SCALE
    async with job_manager(slow.client) as jobs:
        handle = await jobs.submit(slow.request, timeout=deadline)
        task_id = await tracked(handle)
        slow.emulator.set_task_status(task_id, status, msg="held")
        with pytest.raises(JobTimeoutError) as caught, anyio.fail_after(5):
            await handle.wait()
    assert caught.value.tracked is False
    assert handle.status == status
    assert handle.last is not None
    assert handle.last.msg == "held"
    assert not handle.last.is_terminal
    assert handle.stage in (JobStage.SUBMITTED, JobStage.GENERATING)
