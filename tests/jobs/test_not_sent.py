"""A journaled job that was never sent did not fail for good: a later submit or run sends it.

The create is refused in ways that prove nothing was made (40001 until the manager gives up,
a refused token); a create the service refused on its merits stays failed.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import anyio
import pytest

from chanjing_async import JobStage, RateLimitError
from chanjing_async.emulator import EmulatorServer, Fault
from tests.support import job_manager, numbered

if TYPE_CHECKING:
    from pathlib import Path

    from chanjing_async import AsyncChanjingClient

pytestmark = pytest.mark.anyio


def journaled(path: Path) -> dict[str, tuple[str, float | None, str | None]]:
    """key -> (stage, sent_at, error), as another reader sees the file."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT key, stage, sent_at, error FROM jobs").fetchall()
    return {key: (stage, sent_at, error) for key, stage, sent_at, error in rows}


async def test_a_create_refused_until_the_manager_gave_up_runs_again(
    emulator: EmulatorServer, client: AsyncChanjingClient, files: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "jobs.sqlite"
    emulator.inject(Fault(endpoint="create", kind="code", code=40001, count=None))
    async with job_manager(client, journal=path, max_create_attempts=1) as jobs:
        handle = await jobs.submit(numbered(files[0], 0), key="row")
        with anyio.fail_after(10), pytest.raises(RateLimitError):
            await handle.wait()
    # Not written as failed: queued again, no create pending, the reason kept.
    stage, sent_at, error = journaled(path)["row"]
    assert (stage, sent_at) == (JobStage.QUEUED.value, None)
    assert error is not None
    assert error.startswith("RateLimitError")
    assert len(emulator.state.tasks) == 0

    emulator.clear_faults()
    async with job_manager(client, journal=path) as jobs:
        again = await jobs.submit(numbered(files[0], 0), key="row")  # no retry_failed
        with anyio.fail_after(30):
            await again.wait()
    stage, _, error = journaled(path)["row"]
    assert (stage, error) == (JobStage.SUCCEEDED.value, None)
    assert len(emulator.state.tasks) == 1


async def test_the_same_key_in_the_same_run_sends_it_again(
    emulator: EmulatorServer, client: AsyncChanjingClient, files: tuple[str, str], tmp_path: Path
) -> None:
    emulator.inject(Fault(endpoint="create", kind="code", code=40001, count=1))
    async with job_manager(client, journal=tmp_path / "jobs.sqlite", max_create_attempts=1) as jobs:
        first = await jobs.submit(numbered(files[0], 0), key="row")
        with anyio.fail_after(10), pytest.raises(RateLimitError):
            await first.wait()
        again = await jobs.submit(numbered(files[0], 0), key="row")
        assert again is not first
        with anyio.fail_after(30):
            await again.wait()
    assert len(emulator.state.tasks) == 1


async def test_a_create_the_service_refused_stays_failed(
    emulator: EmulatorServer, client: AsyncChanjingClient, files: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "jobs.sqlite"
    emulator.inject(Fault(endpoint="create", kind="code", code=40000, msg="参数错误", count=1))
    async with job_manager(client, journal=path) as jobs:
        handle = await jobs.submit(numbered(files[0], 0), key="row")
        with anyio.fail_after(10), pytest.raises(Exception, match="40000"):
            await handle.wait()
    assert journaled(path)["row"][0] == JobStage.FAILED.value
    async with job_manager(client, journal=path) as jobs:
        again = await jobs.submit(numbered(files[0], 0), key="row")
        assert again.done  # failed in an earlier run: only retry_failed runs it again
    assert len(emulator.state.tasks) == 0
