"""A job's record ends with the job, whenever it ends: even while its create waits to leave."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import anyio
import pytest

from chanjing_async import JobCancelledError, JobStage
from chanjing_async.emulator import EmulatorServer, Fault
from tests.support import job_manager, make_client, numbered, until

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


async def test_a_job_cancelled_while_its_create_fetches_a_token_is_withdrawn(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    # The create holds its slot and waits for a token: cancelling the job then leaves no
    # request to write down. Nothing is sent, the manager goes on, the row says cancelled.
    path = tmp_path / "jobs.sqlite"
    emulator.inject(Fault(endpoint="access_token", kind="latency", seconds=0.5, count=1))
    async with make_client(emulator.base_url) as client:
        async with job_manager(client, journal=path) as jobs:
            handle = await jobs.submit(numbered("video-1", 0), key="row")
            await until(lambda: jobs.stats.submit.sent == 1, timeout=5)
            handle.cancel()
            await until(lambda: jobs.stats.submit.sent == 0, timeout=5)  # withdrawn
            with pytest.raises(JobCancelledError):
                await handle.wait()
            assert jobs.unfinished == 0
            with anyio.fail_after(5):
                await jobs.submit(numbered("video-1", 1), key="next")
    assert emulator.state.stats()["endpoints"]["create"]["requests"] <= 1  # "next" only
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT stage, sent_at FROM jobs WHERE key = 'row'").fetchone()
    assert tuple(row) == (JobStage.CANCELLED.value, None)
