"""The poller under load: memory per task stays flat, a failed list page costs one more call.

Every list pass refreshes (and reschedules) every tracked task it sees. The schedule is a heap
with lazy deletion, so each reschedule leaves a stale entry behind; with long intervals those
entries used to pile up, one per pass per task. Measured with tracemalloc on the allocations
made in ``_poller.py`` alone (the emulator runs in this process too).
"""

from __future__ import annotations

import dataclasses
import tracemalloc

import anyio
import pytest

from benchmarks import memory
from chanjing_async import JobHandle, JobManager, PollPolicy
from chanjing_async.emulator import EmulatorServer, Fault
from tests.support import emulator_settings, make_client, until

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

# Read once soon after attach, then parked for an hour: no task is due again during the test.
POLICY = dataclasses.replace(memory.POLICY, first=0.01)
BATCHES, BATCH = 30, 10


def poller_bytes() -> int:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(True, "*chanjing_async/jobs/_poller.py")]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))


async def test_refreshing_every_task_on_each_pass_does_not_pile_up_heap_entries() -> None:
    async with EmulatorServer(emulator_settings(task_seconds=1e6)) as emulator:
        ids = emulator.seed_tasks(BATCHES * BATCH)
        async with (
            make_client(emulator.base_url) as client,
            JobManager(client, poll=POLICY) as jobs,
        ):
            tracemalloc.start()
            try:
                handles: list[JobHandle] = []

                def all_read() -> bool:
                    return all(h.last is not None for h in handles)

                # Each batch is due at once and makes a list pass, which refreshes (and
                # reschedules) every task tracked so far: 30 passes over up to 300 tasks.
                for n in range(BATCHES):
                    batch = [await jobs.attach(i) for i in ids[n * BATCH : (n + 1) * BATCH]]
                    handles.extend(batch)
                    await until(all_read, timeout=5)
                    await anyio.sleep(0.01)
                per_task = poller_bytes() / len(handles)
            finally:
                tracemalloc.stop()
            passes = jobs.stats.poll.list_calls
    assert passes >= BATCHES  # the passes did happen
    # A record and at most about two heap entries per task: about 450 B. Without the sweep,
    # the stale entries of every pass stay (about 1.4 KB).
    assert per_task < 800, per_task


async def test_a_failed_list_page_is_read_again_not_replaced_by_details() -> None:
    # 250 tasks on 3 pages, all due together every second. One page fails (the client's
    # three attempts all answered 50000): it is read again, and no task falls back to detail.
    policy = PollPolicy(first=0.01, min_interval=1.0, max_interval=1.0, growth=1.0, jitter=0.0)
    async with EmulatorServer(emulator_settings(task_seconds=1e6)) as emulator:
        ids = emulator.seed_tasks(250)
        async with (
            make_client(emulator.base_url) as client,
            JobManager(client, poll=policy) as jobs,
        ):
            handles = [await jobs.attach(task_id) for task_id in ids]
            await until(lambda: all(h.last is not None for h in handles), timeout=5)
            first = {h.key: h.last for h in handles}
            details = jobs.stats.poll.detail_calls
            emulator.inject(Fault(endpoint="list", kind="code", code=50000, count=3))
            await until(lambda: all(h.last is not first[h.key] for h in handles), timeout=5)
            poll = jobs.stats.poll
    assert emulator.state.stats()["faults_applied"]["list"] == {"code 50000": 3}
    assert poll.errors == 1  # one failed page, after the client's own retries
    assert poll.detail_calls == details == 0
