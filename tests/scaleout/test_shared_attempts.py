"""Processes on one app id share their create attempts through Redis: none adopts another's task.

Two clients stand for two processes (each has its own ledger, as a process does). Process A's
create meets a 502 page while its origin creates nothing; process B creates a task in A's
window at the same moment. Alone, A would see exactly one unowned task its create explains and
adopt B's task. Through Redis, B's task is owned by B: A waits out its horizon, finds nothing and
sends its job again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from chanjing_async import JobStage, PollPolicy, RateLimits, RedisRateLimiter, Timeouts
from chanjing_async.emulator import EmulatorServer, Fault
from tests.support import (
    TIME_SCALE,
    emulator_settings,
    job_manager,
    make_client,
    numbered,
    until,
)

if TYPE_CHECKING:
    from pathlib import Path

    from chanjing_async import AsyncChanjingClient, JobHandle
    from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

HORIZON = 300.0 / TIME_SCALE


def job_number(request: Any) -> int:
    return int(request["tts_config"]["text"][0].split()[1])


async def one_ambiguous_job_beside_another_process(
    media: Path, redis_url: str | None
) -> tuple[JobHandle, dict[str, Any], int]:
    """A's job meets a 502 (nothing created) while B creates; returns A's handle and tasks."""
    settings = emulator_settings()
    async with EmulatorServer(settings) as emulator:

        def client() -> AsyncChanjingClient:
            shared = None if redis_url is None else RedisRateLimiter(redis_url, lease=0.5)
            return make_client(
                emulator.base_url,
                limits=RateLimits().scaled(TIME_SCALE),
                rate_limiter=shared,
                timeouts=Timeouts(total=2.0, connect=2.0, create_horizon=HORIZON),
            )

        async with client() as a, client() as b:
            video = await a.files.upload(media, service="lip_sync_video", poll_interval=0.01)
            await b.voices.list()  # B's token: with Redis it is A's, without it replaces A's
            await a.voices.list()
            emulator.inject(Fault(endpoint="create", kind="gateway", status=502, count=1))
            async with job_manager(a, poll=PollPolicy().scaled(TIME_SCALE)) as jobs:
                handle = await jobs.submit(numbered(video.id, 0))
                await until(lambda: jobs.stats.submit.ambiguous == 1)
                # B's task lands in A's window, while A's create is unexplained.
                await b.lip_sync.create(numbered(video.id, 1))
                await handle.wait(timeout=HORIZON * 4)
                resent = jobs.stats.submit.resent
        return handle, dict(emulator.state.tasks), resent


async def test_another_process_task_is_never_adopted_through_redis(
    media: tuple[Path, Path], redis_server: RedisServer
) -> None:
    handle, tasks, resent = await one_ambiguous_job_beside_another_process(
        media[0], redis_server.url
    )
    assert handle.stage is JobStage.SUCCEEDED
    assert handle.task_id is not None
    assert job_number(tasks[handle.task_id].request) == 0  # its own task, made by the resend
    assert resent == 1
    assert sorted(job_number(task.request) for task in tasks.values()) == [0, 1]


async def test_without_shared_attempts_the_other_process_task_is_taken(
    media: tuple[Path, Path],
) -> None:
    # The control: two processes that share nothing. A adopts B's task (the limit the README
    # states for several processes on one app id without Redis).
    handle, tasks, resent = await one_ambiguous_job_beside_another_process(media[0], None)
    assert handle.task_id is not None
    assert job_number(tasks[handle.task_id].request) == 1
    assert resent == 0
