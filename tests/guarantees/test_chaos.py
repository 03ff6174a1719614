"""Chaos run: 500 jobs through a JobManager while the emulator fails a good share of calls.

Random faults (``EmulatorSettings.fault_rates``, seeded): 50000 on 10 % of the task reads,
502 gateway pages on 5 % of every ``/open/v1`` call, connection resets before handling on 2 %,
resets after handling on 2 % of creates (the task exists, the answer is lost), and requests
handled late on 1 %: at any moment from the client's timeout up to the processing horizon,
whatever reconciliation's timings. Meanwhile the token is revoked a few times and bursts of
40001 hit the creates. Every job must end, no job may be created twice or get another job's
task, and the run must show that each kind of fault did happen and what the SDK did about it.
Callbacks are on: they name the job of each task, settling what create times cannot (the
task list's whole-second ``create_time`` cannot tell apart the hundred creates of a second at
this time scale).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from chanjing_async import (
    CallbackReceiver,
    CreateOutcomeUnknown,
    JobStage,
    PollPolicy,
    RateLimits,
    RetryPolicy,
    Timeouts,
)
from chanjing_async.emulator import EmulatorServer, Fault, FaultRate
from tests.support import emulator_settings, job_manager, make_client, numbered

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

JOBS = 500
# A documented minute lasts 0.1 s: 500 creates need 50 windows, 5 s, plus the pauses of
# reconciliation; a task takes 0.2 s.
SCALE = 600.0
TIMEOUT = 0.25  # the client's whole-request timeout, wall seconds
HORIZON = 300.0 / SCALE  # the processing horizon, 0.5 s
# The emulator counts a delay from the request's arrival, the client its horizon from the
# send: late handling is drawn up to this much short of the horizon (the trip, and the event
# loop's lag on a busy machine), so that it stays inside the horizon, the guarantee's premise.
ARRIVAL_SLACK = 0.15
SETTLE = 0.2
RATES = (
    FaultRate("reads", "code", 0.10),
    FaultRate("api", "gateway", 0.05, status=502),
    FaultRate("api", "drop_before", 0.02),
    FaultRate("create", "drop_after", 0.02),
    FaultRate("api", "latency", 0.01, seconds=TIMEOUT, seconds_max=HORIZON - ARRIVAL_SLACK),
)
REVOKE_AT = (120, 240, 360)  # tasks created when the token is revoked
BURST_AT = (60, 180, 300, 420)  # tasks created when five creates in a row get 40001
BURST = 5


def job_number(request: Any) -> int:
    """The n of a "job <n>" text (a task's raw request body, or a LipSyncRequest dumped)."""
    return int(request["tts_config"]["text"][0].split()[1])


async def disrupt(emulator: EmulatorServer, done: anyio.Event) -> None:
    """Revoke the token and inject 40001 bursts as the run passes the marks above."""
    marks = sorted([(at, "revoke") for at in REVOKE_AT] + [(at, "burst") for at in BURST_AT])
    for at, what in marks:
        while len(emulator.state.tasks) < at:
            with anyio.move_on_after(0.005):
                await done.wait()
            if done.is_set():
                return
        if what == "revoke":
            emulator.revoke_tokens()
        else:
            emulator.inject(Fault(endpoint="create", kind="code", code=40001, count=BURST))


async def test_500_jobs_under_chaos_all_end_once_each(
    media: tuple[Path, Path], request: pytest.FixtureRequest
) -> None:
    settings = emulator_settings(time_scale=SCALE, task_seconds=120.0, fault_rates=RATES)
    async with (
        EmulatorServer(settings) as emulator,
        make_client(
            emulator.base_url,
            limits=RateLimits().scaled(SCALE),
            retry=RetryPolicy(max_retries=4, initial=0.005, maximum=0.05),
            timeouts=Timeouts(total=TIMEOUT, connect=TIMEOUT, create_horizon=HORIZON),
        ) as client,
    ):
        video = await client.files.upload(media[0], service="lip_sync_video", poll_interval=0.01)
        async with job_manager(
            client,
            poll=PollPolicy().scaled(SCALE),
            reconcile_settle=SETTLE,
            callbacks=CallbackReceiver(),
        ) as jobs:
            handles = await jobs.submit_many(numbered(video.id, n) for n in range(JOBS))
            done = anyio.Event()
            async with anyio.create_task_group() as group:
                group.start_soon(disrupt, emulator, done)
                with anyio.fail_after(50):
                    async for _ in jobs.as_completed(handles):
                        pass
                done.set()
            stats = jobs.stats
        server = emulator.state.stats()
        tasks = dict(emulator.state.tasks)

    faults: dict[str, dict[str, int]] = server["faults_applied"]
    report = {
        "submit": vars(stats.submit),
        "poll": vars(stats.poll),
        "stages": dict(Counter(handle.stage.value for handle in handles)),
        "faults_applied": faults,
        "endpoints": server["endpoints"],
        "tokens": (server["tokens_issued"], server["tokens_revoked"]),
    }
    # What was retried, for reports (``--junitxml -o junit_family=xunit1``) and plugins;
    # record_property itself warns under the default xunit2 family.
    request.node.user_properties.append(("chaos", report))

    # Every job ended.
    assert all(handle.done for handle in handles), report
    # No task serves two jobs, and every job's task is its own (no wrong adoption).
    owned = [handle.task_id for handle in handles if handle.task_id is not None]
    assert len(owned) == len(set(owned)), report
    for n, handle in enumerate(handles):
        if handle.task_id is not None:
            assert job_number(tasks[handle.task_id].request) == n, (n, handle, report)
    # No job was created twice.
    per_job = Counter(job_number(task.request) for task in tasks.values())
    assert max(per_job.values()) == 1, (per_job.most_common(3), report)
    # Jobs that did not succeed failed for a documented reason; a job without a task ended
    # with an error saying its create's outcome could not be told (listing the candidates).
    unexplained: set[str] = set()
    for handle in handles:
        if handle.stage is JobStage.SUCCEEDED:
            continue
        assert handle.stage is JobStage.FAILED, (handle, handle.error, report)
        if handle.task_id is None:
            assert isinstance(handle.error, CreateOutcomeUnknown), (handle.error, report)
            unexplained.update(handle.error.candidates)
        else:  # the task's own end: the emulator fails none here
            raise AssertionError((handle, handle.error, report))
    # The emulator holds one task per job that got one, plus only tasks that reconciliation
    # could not attribute, each the task of a job that failed with CreateOutcomeUnknown.
    strays = set(tasks) - set(owned)
    assert strays <= unexplained, (strays - unexplained, report)
    failed_numbers = {n for n, handle in enumerate(handles) if handle.task_id is None}
    assert {job_number(tasks[task_id].request) for task_id in strays} <= failed_numbers, report
    assert len(tasks) == len(owned) + len(strays), report
    # Jobs failed only where reconciliation could not tell which of several ambiguous creates
    # made a task: a few per cent, when two creates of one burst of ten both went astray.
    failed = [handle for handle in handles if handle.stage is JobStage.FAILED]
    assert len(failed) == stats.submit.unresolved <= 0.1 * JOBS, report

    # Every kind of fault happened, and the SDK's counters show what it did about them.
    reads = Counter[str]()
    for endpoint in ("detail", "list"):
        reads.update(faults.get(endpoint, {}))
    everywhere = Counter[str]()
    for kinds in faults.values():
        everywhere.update(kinds)
    assert reads["code 50000"] > 0, report
    assert everywhere["gateway 502"] > 0, report
    assert everywhere["drop_before"] > 0, report
    assert everywhere["latency"] > 0, report
    assert faults.get("create", {}).get("drop_after", 0) > 0, report
    assert faults["create"]["code 40001"] == BURST * len(BURST_AT), report
    assert server["tokens_revoked"] == len(REVOKE_AT), report
    assert server["tokens_issued"] > len(REVOKE_AT), report
    submit = stats.submit
    assert submit.rate_limited >= BURST * len(BURST_AT), report
    assert submit.requeued >= submit.rate_limited, report
    assert submit.ambiguous > 0, report
    assert submit.adopted > 0, report
    assert submit.resent > 0, report
    assert submit.ambiguous == submit.adopted + submit.resent + submit.unresolved, report
