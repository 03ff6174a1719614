"""Scenario 1b, late creates: what 5 % of creates handled after the client gave up cost.

M numbered jobs (``job <n>``) go through one ``JobManager`` against a fresh emulator (time
scale K, seed fixed, the random one-way latency of every scenario, tasks of ``TASK_SECONDS``)
whose ``fault_rates`` hold ``FaultRate("create", "latency", 0.05, seconds=timeout,
seconds_max=horizon - SLACK)``: one create in twenty is handled by the server only after the
client's request timeout (``Timeouts.total``, 30 s) has passed, at a moment drawn uniformly up
to the processing horizon (``Timeouts.create_horizon``, 300 s) less ``SLACK`` (room for the
inbound trip: the emulator counts the delay from the arrival, the client its horizon from the
send). Fault delays are wall seconds, so they are given divided by K, like the client's
timeouts and horizon. The client sees a timeout (``CreateOutcomeUnknown``); the server's limiter
counts the create, and its task is made, at that later moment. Three runs per M, each on a
fresh emulator with the same seed (the same creates meet the faults):

* **control**: the same M jobs, no faults;
* **callbacks**: faults, ``JobManager(callbacks=CallbackReceiver())``: a late task's callback
  (when it ends, ``TASK_SECONDS`` after it was made) names its job, which adopts it on proof;
* **time only**: faults, no receiver: a job adopts a task only when exactly one create in doubt
  could have made it (by ``create_time``), and fails with ``CreateOutcomeUnknown`` (its
  candidates named, nothing guessed) once every create that could share its candidates has
  passed its horizon.

Figures, per M and variant:

* **last create / ideal**: the time from the first task created to the last (every job's task
  exists), read on the server (the emulator's task records, as the create-limiter scenario
  reads it), divided by the ideal greedy schedule ⌊(M−1)/10⌋ windows; with faults, against the
  control. Reported, not gated. The goal of the run is safety: 0 x 40001, no job holding
  another job's task (its text says ``job <n>``), no job's text in two tasks (a duplicate).
* **cost of one ambiguity**: (last create with faults − last create without) / the number of
  ambiguous creates, in windows (real-scale seconds in ``extra``), against the model below.

**The model.** The create limiter is a completion-anchored sliding-window log: a slot counts
from its send until one window (plus its 1 s margin) after its release. An answered create is
released at its answer, so a slot serves about one create a window and ten slots make the
schedule. A create in doubt is released at its horizon, 300 s after its send: its slot counts
for ``horizon + window`` instead of ``window``, ``horizon`` longer. Counted in create spacings
(window / 10 = 6 s), that is horizon / (window / 10) = 50 spacings of one slot; the other nine
slots keep cycling, so the schedule loses a tenth of it: horizon / window = 5 creates, 5
spacings, **horizon / 10 = 30 s = 0.5 window per ambiguity**. Three effects move the
measurement off it:

* less: a create in doubt sent less than a horizon before the last send holds its slot past
  the point where it delays anything; ``extra.model_cost_with_end_seconds`` is the model with
  that end, sum(min(horizon, last send − send)) / 10 per ambiguity, to compare with
  ``extra.send_cost_per_ambiguity_seconds`` (the same difference taken on the last send);
* more: the last task exists only once the last late create is handled, up to horizon − slack
  after its send, so a create in doubt among the last ones moves the end by up to 4.5 windows
  by itself (``extra.tail_seconds``: last task after last send);
* more: while a JobManager reads the task list it starts no create, and it first waits for the
  creates in flight, one that will time out included (up to 30 s).

**Time alone rarely tells.** A late task lands 30-270 s after its send, while at 5 % another
create in doubt follows every two windows on average (and two creates of one burst
are sometimes both in doubt): most late tasks fall where two or more creates in doubt could have
made them, and the jobs fail with their candidates. Callbacks name the job and settle every
one. Time scaling coarsens ``create_time`` (whole wall seconds: at K = 60 a whole window, and
``reconcile_margin`` is 1 wall second, the least allowed), which widens the time-only matches,
but it is not why they fail: a run at K = 10 left the same 8 of 8 jobs unresolved at M = 100.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from chanjing_async import (
    CallbackReceiver,
    CreateOutcomeUnknown,
    JobManager,
    JobStage,
    LipSyncRequest,
    PollPolicy,
    Timeouts,
)
from chanjing_async.emulator import EmulatorServer, FaultRate

from ._common import Figure, Options, emulator_settings, make_client

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from chanjing_async import AsyncChanjingClient, JobHandle, JobManagerStats
    from chanjing_async.emulator._tasks import TaskRecord

NAME = "late creates"

LIMIT = 10  # creates per window: the documented create limit
WINDOW = 60.0  # real-scale seconds
RATE = 0.05  # share of creates handled late
TIMEOUT = Timeouts().total  # 30 s: the client gives up on a create after this
HORIZON = Timeouts().create_horizon  # 300 s: the server may handle a create until then
SLACK = 30.0  # real-scale seconds: the latest late handling is HORIZON - SLACK after arrival
TASK_SECONDS = 120.0  # real seconds from create to end (a callback comes then)
SETTLE = 5.0  # JobManager's reconcile_settle, real-scale seconds
MARGIN = 1.0  # JobManager's reconcile_margin, wall seconds (create_time is whole seconds)
MODEL_COST = HORIZON / LIMIT  # real-scale seconds per ambiguity (see the module doc)
VARIANTS = ("callbacks", "time only")
VOICE = "C-f2429d07554749839849497589199916"
VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(512)


@dataclass(frozen=True)
class _Size:
    jobs: int
    time_scale: float  # a real-scale window lasts WINDOW / time_scale wall seconds
    rate: float = RATE  # share of creates handled late

    @property
    def ideal(self) -> float:
        """Real-scale seconds of the ideal greedy schedule: ⌊(M−1)/10⌋ windows."""
        return (self.jobs - 1) // LIMIT * WINDOW


# Full run: 9 and 29 windows of creates, each faulted run 1.5-2 x that plus the tasks; at 60 a
# window lasts a wall second (under 3 minutes for the six runs).
FULL = (_Size(100, 60.0), _Size(300, 60.0))
# The smoke run raises the rate, so that its 20 creates surely meet a few faults.
SMOKE = (_Size(20, 600.0, rate=0.2),)


@dataclass
class _Run:
    """One run of M jobs; times in real-scale seconds (wall x time scale)."""

    last_create: float  # first task created to the last (server clock); inf if unfinished
    last_send: float  # first task created to the last create sent (client, same clock)
    done: float  # submit to the last job done; inf if some job never ended
    ambiguous: int  # creates answered by no answer (timeouts)
    late_handled: int  # creates the emulator delayed (its own count)
    rejected: int  # creates answered 40001
    wrong: int  # jobs holding a task made for another job
    duplicates: int  # tasks beyond the first with the same job text
    unowned: int  # tasks no job holds (candidates of contested jobs)
    succeeded: int
    unresolved: int  # jobs failed with CreateOutcomeUnknown (contested, never guessed)
    unfinished: int  # jobs not ended within the cap
    ambiguous_sends: list[float] = field(default_factory=list)  # as last_send, each
    submit: dict[str, int] = field(default_factory=dict)
    callbacks: dict[str, int] = field(default_factory=dict)

    @property
    def safe(self) -> bool:
        """The goal: 0 x 40001, no wrong adoption, no duplicate, every job ended."""
        return not (self.rejected or self.wrong or self.duplicates or self.unfinished)


class _Sends:
    """When each create left, and whether its outcome stayed unknown (a probe on the client).

    A JobManager calls ``client.lip_sync.create(request, slot=..., key=...)`` once per attempt,
    in a slot already granted: the call is the send. The probe wraps that bound method on this
    client only; it changes nothing of what is sent.
    """

    def __init__(self, client: AsyncChanjingClient) -> None:
        self.answered: list[float] = []
        self.unknown: list[float] = []
        create: Callable[..., Awaitable[str]] = client.lip_sync.create

        async def probed(*args: Any, **kwargs: Any) -> str:
            sent = time.monotonic()
            try:
                task_id = await create(*args, **kwargs)
            except CreateOutcomeUnknown:
                self.unknown.append(sent)
                raise
            self.answered.append(sent)
            return task_id

        setattr(client.lip_sync, "create", probed)  # noqa: B010 (a method is not assignable)


def _request(video_id: str, n: int) -> LipSyncRequest:
    return LipSyncRequest.tts(video_id, text=f"job {n}", audio_man_id=VOICE)


def _job_number(request: Mapping[str, Any]) -> int | None:
    """The n of a task made for ``job <n>`` (its raw create body)."""
    try:
        return int(request["tts_config"]["text"][0].split()[1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _fault_rates(size: _Size) -> tuple[FaultRate, ...]:
    # Wall seconds: the emulator does not scale fault delays.
    return (
        FaultRate(
            "create",
            "latency",
            size.rate,
            seconds=TIMEOUT / size.time_scale,
            seconds_max=(HORIZON - SLACK) / size.time_scale,
        ),
    )


def _cap(size: _Size) -> float:
    """Wall seconds a run may take before its unfinished jobs count as such."""
    windows = size.jobs / LIMIT * 2 + (2 * HORIZON + 3 * TASK_SECONDS) / WINDOW + 10
    return windows * WINDOW / size.time_scale + 30.0


async def _measure(size: _Size, video: Path, seed: int, *, faults: bool, callbacks: bool) -> _Run:
    scale = size.time_scale
    settings = emulator_settings(
        scale,
        seed,
        latency=True,
        create_limit=LIMIT,
        create_window=WINDOW,
        task_seconds=TASK_SECONDS,
        file_ready_seconds=0.0,
        fault_rates=_fault_rates(size) if faults else (),
    )
    timeouts = Timeouts(
        total=TIMEOUT / scale, connect=TIMEOUT / scale, create_horizon=HORIZON / scale
    )
    async with EmulatorServer(settings) as server:
        async with make_client(server.base_url, scale, timeouts=timeouts) as client:
            uploaded = await client.files.upload(
                video, service="lip_sync_video", poll_interval=0.01
            )
            sends = _Sends(client)
            finished: dict[str, float] = {}
            async with JobManager(
                client,
                poll=PollPolicy().scaled(scale),
                callbacks=CallbackReceiver() if callbacks else None,
                reconcile_settle=SETTLE / scale,
                reconcile_margin=MARGIN,
            ) as manager:
                started = time.monotonic()
                handles = await manager.submit_many(
                    _request(uploaded.id, n) for n in range(size.jobs)
                )
                with anyio.move_on_after(_cap(size)):
                    async for handle in manager.as_completed(handles):
                        finished[handle.key] = time.monotonic()
                stats = manager.stats
        tasks = dict(server.state.tasks)
        rejected = server.state.endpoint_stats("create").rejected_40001
        applied = server.state.stats()["faults_applied"].get("create", {})
    return _tally(
        size, handles, tasks, sends, started, finished, rejected, applied.get("latency", 0), stats
    )


def _tally(
    size: _Size,
    handles: list[JobHandle],
    tasks: Mapping[str, TaskRecord],
    sends: _Sends,
    started: float,
    finished: Mapping[str, float],
    rejected: int,
    late_handled: int,
    stats: JobManagerStats,
) -> _Run:
    scale = size.time_scale
    created = sorted(task.created_at for task in tasks.values())
    first = created[0] if created else started
    wrong = sum(
        handle.task_id is not None and _job_number(tasks[handle.task_id].request) != n
        for n, handle in enumerate(handles)
    )
    per_job = Counter(_job_number(task.request) for task in tasks.values())
    held = {handle.task_id for handle in handles if handle.task_id is not None}
    unfinished = sum(not handle.done for handle in handles)
    every_send = sends.answered + sends.unknown
    return _Run(
        last_create=(created[-1] - first) * scale if created and not unfinished else math.inf,
        last_send=(max(every_send) - first) * scale if every_send else math.nan,
        done=(max(finished.values()) - started) * scale if not unfinished else math.inf,
        ambiguous=stats.submit.ambiguous,
        late_handled=late_handled,
        rejected=rejected,
        wrong=wrong,
        duplicates=sum(count - 1 for count in per_job.values()),
        unowned=len(set(tasks) - held),
        succeeded=sum(handle.stage is JobStage.SUCCEEDED for handle in handles),
        unresolved=sum(isinstance(handle.error, CreateOutcomeUnknown) for handle in handles),
        unfinished=unfinished,
        ambiguous_sends=sorted((at - first) * scale for at in sends.unknown),
        submit=dict(vars(stats.submit)),
        callbacks=dict(stats.callbacks),
    )


def _windows(seconds: float) -> float:
    return seconds / WINDOW


def _round(value: float, digits: int = 1) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def _figures(size: _Size, variant: str, ours: _Run, control: _Run) -> list[Figure]:
    ideal = size.ideal
    ratio = ours.last_create / ideal
    control_ratio = control.last_create / ideal
    extra_cost = ours.last_create - control.last_create
    cost = extra_cost / ours.ambiguous if ours.ambiguous else math.nan
    send_cost = (
        (ours.last_send - control.last_send) / ours.ambiguous if ours.ambiguous else math.nan
    )
    # The model with its end effect: an ambiguity's slot delays only the creates sent within
    # a horizon after it, up to the last send.
    bounded = [min(HORIZON, max(0.0, ours.last_send - at)) for at in ours.ambiguous_sends]
    model_bounded = sum(bounded) / LIMIT / len(bounded) if bounded else math.nan
    counts = (
        f"40001: {ours.rejected}, wrong: {ours.wrong}, duplicates: {ours.duplicates}"
        f", unresolved: {ours.unresolved}"
        + (f", unfinished: {ours.unfinished}" if ours.unfinished else "")
    )
    case = (
        f"{size.jobs} jobs at scale {size.time_scale:g}, {size.rate * 100:g} % of creates "
        f"handled {TIMEOUT:g}-{HORIZON - SLACK:g} s after arrival, {variant}: "
        f"{ours.ambiguous} ambiguous ({counts})"
    )
    extra: dict[str, Any] = {
        "jobs": size.jobs,
        "time_scale": size.time_scale,
        "variant": variant,
        "ideal_seconds": ideal,
        # Real-scale seconds from the first task created (server clock).
        "last_create_seconds": _round(ours.last_create),
        "control_last_create_seconds": _round(control.last_create),
        "last_send_seconds": _round(ours.last_send),
        "control_last_send_seconds": _round(control.last_send),
        # When the last task appeared after the last create was sent (a late create).
        "tail_seconds": _round(ours.last_create - ours.last_send),
        "all_done_seconds": _round(ours.done),
        "control_all_done_seconds": _round(control.done),
        "ambiguous": ours.ambiguous,
        "late_handled": ours.late_handled,
        "ambiguous_sends_seconds": [round(at, 1) for at in ours.ambiguous_sends],
        "cost_per_ambiguity_seconds": _round(cost),
        "send_cost_per_ambiguity_seconds": _round(send_cost),
        "model_cost_seconds": MODEL_COST,
        "model_cost_with_end_seconds": _round(model_bounded),
        "40001": ours.rejected,
        "control_40001": control.rejected,
        "wrong_adoptions": ours.wrong,
        "duplicates": ours.duplicates,
        "control_wrong_adoptions": control.wrong,
        "control_duplicates": control.duplicates,
        "unowned_tasks": ours.unowned,
        "succeeded": ours.succeeded,
        "unresolved": ours.unresolved,
        "unfinished": ours.unfinished,
        "submit": ours.submit,
        "callbacks": ours.callbacks,
    }
    safe = ours.safe and control.safe
    goal = "0 x 40001, 0 wrong, 0 duplicate (ratio reported)"
    return [
        Figure(
            scenario=NAME,
            case=case,
            metric="last create / ideal",
            ours=ratio,
            baseline_name="no faults (control)",
            baseline=control_ratio,
            ratio=ratio / control_ratio,
            ratio_label="faults / control",
            goal=goal,
            met=safe,
            extra=extra,
        ),
        Figure(
            scenario=NAME,
            case=(
                f"{size.jobs} jobs, {variant}: (last create with faults - without) / "
                f"{ours.ambiguous} ambiguous; all jobs done at {_number(ours.done)} s vs "
                f"{_number(control.done)} s without faults"
            ),
            metric="cost of one ambiguity, windows",
            ours=_windows(cost),
            baseline_name=f"model: horizon / {LIMIT} = {MODEL_COST:g} s",
            baseline=_windows(MODEL_COST),
            ratio=cost / MODEL_COST,
            ratio_label="measured / model",
            goal="report",
            met=safe,
            extra=extra,
        ),
    ]


def _number(seconds: float) -> str:
    return f"{seconds:,.0f}" if math.isfinite(seconds) else "-"


async def run(options: Options) -> list[Figure]:
    """Per size: the control, then each variant with faults, on fresh emulators."""
    figures: list[Figure] = []
    # Each ambiguous create is logged as a WARNING (then adopted, or failed): wanted in an
    # application, noise on the console of a benchmark that causes them on purpose. Errors
    # still show.
    quiet = logging.StreamHandler()
    quiet.setLevel(logging.ERROR)
    sdk = logging.getLogger("chanjing_async")
    sdk.addHandler(quiet)
    try:
        await _sizes(options, figures)
    finally:
        sdk.removeHandler(quiet)
    return figures


async def _sizes(options: Options, figures: list[Figure]) -> None:
    with tempfile.TemporaryDirectory(prefix="chanjing-bench-") as tmp:
        video = Path(tmp) / "talk.mp4"
        video.write_bytes(VIDEO)
        for size in SMOKE if options.smoke else FULL:
            control = await _measure(size, video, options.seed, faults=False, callbacks=False)
            for variant in VARIANTS:
                ours = await _measure(
                    size, video, options.seed, faults=True, callbacks=variant == "callbacks"
                )
                figures.extend(_figures(size, variant, ours, control))
