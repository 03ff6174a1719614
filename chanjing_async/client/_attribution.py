"""Which open create attempt made a task that no create of ours was answered with.

**Attribution** (:meth:`CreateLedger.judge`) works on a complete reading of the task list, in
the server's time (``_clock``): an attempt sent at monotonic ``s`` can explain a task whose
``create_time`` lies in ``[s + low, horizon + high]`` (the offset bounds, widened by a margin for
the whole-second ``create_time``). A task that no attempt of ours owns is adopted only when
exactly one open attempt can explain it and it is the only task that attempt alone explains;
each adoption removes that attempt from the other tasks' explanations, and the rule is applied
again. An attempt is ``empty`` only on a reading started after it closed (its horizon plus the
width of the clock bounds, the margin and a second: :meth:`CreateLedger.closes_at`), with no
task it could explain. When every attempt that shares candidate tasks with it has closed and
some task is still explained by several, they are ``contested``: the jobs fail with their
candidates and those tasks are never adopted by anyone. We never guess.

A task that no open attempt explains but that appeared after an ``empty`` or ``contested``
attempt was sent came later than the horizon allows (or from another program on the account): it
is reported as a possible duplicate of the most recent such attempt, never adopted.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from ._attempts import Attempt
    from ._clock import ServerClock

__all__ = ["Attribution", "Judgement"]

logger = logging.getLogger("chanjing_async")


@dataclass
class Judgement:
    """What one reading of the task list settled (attempts already updated in the ledger).

    Attributes:
        adopted: attempts that adopted a task (``attempt.task_id``).
        empty: attempts whose horizon passed with no task they could explain.
        contested: attempts whose candidates several attempts could explain.
        late: unowned tasks that appeared past the horizon of an empty or contested attempt,
            with the most recent such attempt sent before it (each such attempt lists it in
            ``Attempt.late``).
    """

    adopted: list[Attempt] = field(default_factory=list)
    empty: list[Attempt] = field(default_factory=list)
    contested: list[Attempt] = field(default_factory=list)
    late: list[tuple[str, Attempt]] = field(default_factory=list)


class Attribution:
    """The attribution half of a :class:`~._attempts.CreateLedger`: the tasks it owns, and
    the rules that give an unowned task to an open attempt (see the module doc).

    Args:
        clock: what is known of the server's clock.
        horizon: seconds after its send during which the server may still handle a create.
    """

    def __init__(self, clock: ServerClock, *, horizon: float) -> None:
        self.clock = clock
        self.horizon = horizon
        self._attempts: dict[int, Attempt] = {}
        self._owned: OrderedDict[str, float] = OrderedDict()  # task id -> monotonic time
        self._excluded: set[str] = set()  # contested candidates and reported late tasks
        self._ended: set[str] = set()  # unowned tasks seen ended at the last reading

    def owns(self, task_id: str) -> bool:
        """True if a create of this client made ``task_id`` (answered or adopted) lately."""
        return task_id in self._owned

    def own(self, task_id: str) -> None:
        """Count ``task_id`` as this client's: it is never attributed to another attempt."""
        self._owned[task_id] = time.monotonic()
        self._owned.move_to_end(task_id)

    @property
    def open_attempts(self) -> list[Attempt]:
        """Attempts in flight or of unknown outcome."""
        return [attempt for attempt in self._attempts.values() if attempt.open]

    def explains(self, attempt: Attempt, create_time: int, margin: float) -> bool:
        """Whether ``attempt`` could have made a task with this ``create_time``.

        The server read ``create_time`` in ``[c, c + 1)`` at some moment between the send and
        the horizon; ``margin`` seconds of slack widen the clock bounds.
        """
        low, high = self.clock.offset()
        return (
            create_time + 1 > attempt.sent + low - margin
            and create_time <= attempt.horizon + high + margin
        )

    def closes_at(self, attempt: Attempt, margin: float) -> float:
        """The monotonic moment after which a reading of the list holds every task ``attempt``
        can explain (:meth:`explains`): only a reading started later may find it ``empty``.

        A task made at monotonic ``m`` reads ``c = floor(m + offset)``, so ``m < c + 1 - low``;
        the last ``c`` it can explain is ``horizon + high + margin``: ``m`` lies before its
        horizon plus the width of the clock bounds, the margin and one second.
        """
        low, high = self.clock.offset()
        width = high - low if math.isfinite(high - low) else 0.0
        return attempt.horizon + width + margin + 1.0

    def prove(self, attempt: Attempt, task_id: str, create_time: int, margin: float) -> bool:
        """Adopt ``task_id`` for ``attempt`` on proof (its callback named the job).

        Only an unknown attempt adopts, only a task nobody owns or contests, and only one
        created inside the attempt's window.
        """
        if (
            attempt.state != "unknown"
            or self.owns(task_id)
            or task_id in self._excluded
            or not self.explains(attempt, create_time, margin)
        ):
            return False
        attempt.rival = any(
            other.key == attempt.key and self._explains_late(other, create_time, margin)
            for other in self._attempts.values()
            if other is not attempt and other.state in ("empty", "contested")
        )
        attempt.state, attempt.task_id = "adopted", task_id
        self.own(task_id)
        return True

    def judge(
        self,
        tasks: Mapping[str, int],
        *,
        listed_at: float,
        owned: Callable[[str], bool],
        margin: float,
        ended: frozenset[str] | None = None,
        rivals: Sequence[tuple[float, float]] = (),
    ) -> Judgement:
        """Settle what a complete reading of the task list allows (see the module doc).

        Args:
            tasks: every task of the account, id -> ``create_time``.
            listed_at: monotonic time at which the reading started.
            owned: tasks owned elsewhere (a journal of earlier runs, other processes).
            margin: seconds of slack on the clock bounds.
            ended: with callbacks, the tasks that have ended (status 20 or 30) in this
                reading. A callback names the job whose create made its task, so attempts are
                only contested once each candidate had ended by the previous reading: its
                callback had its chance to settle it.
            rivals: other processes' attempts, as windows of server time: a task one of them
                may have made is never adopted on time alone.
        """
        verdict = Judgement()
        if not self.clock.bounded:
            # No task of ours read back yet: the server's clock is unknown, so time can tell
            # nothing (an old task of another program would fit any window). Wait for one;
            # a callback's proof needs no clock.
            return verdict
        feasible: dict[str, set[Attempt]] = {}
        late: dict[str, list[Attempt]] = {}  # task -> the settled attempts that may have made it
        shared: set[str] = set()  # tasks another process's attempt may have made
        open_attempts = self.open_attempts
        settled = [a for a in self._attempts.values() if self._watched(a, listed_at, margin)]
        for task_id, create_time in tasks.items():
            if task_id in self._excluded or self.owns(task_id) or owned(task_id):
                continue
            explaining = {a for a in open_attempts if self.explains(a, create_time, margin)}
            if explaining:
                feasible[task_id] = explaining
            # A settled attempt may still have made it, past its horizon.
            too_late = [a for a in settled if self._explains_late(a, create_time, margin)]
            if too_late:
                late[task_id] = too_late
            if any(
                low - margin < create_time + 1 and create_time <= high + margin
                for low, high in rivals
            ):
                shared.add(task_id)
        self._propagate(feasible, set(late) | shared, verdict)
        waiting = None if ended is None else set(feasible) - self._ended
        self._close(feasible, listed_at, margin, waiting, verdict)
        self._ended = set() if ended is None else set(ended & feasible.keys())
        contested = {task for a in verdict.contested for task in a.candidates}
        for task_id, attempts in late.items():
            # Explained by nothing open, or contested now: report it (it is adopted by nobody).
            if task_id not in feasible or task_id in contested:
                self._report_late(task_id, attempts, verdict)
        return verdict

    def _watched(self, attempt: Attempt, now: float, margin: float) -> bool:
        """Empty, contested or a rival, and within one more horizon after it closed."""
        settled = attempt.state in ("empty", "contested") or attempt.rival
        return settled and now <= self.closes_at(attempt, margin) + self.horizon

    def _explains_late(self, attempt: Attempt, create_time: int, margin: float) -> bool:
        low, high = self.clock.offset()
        return (
            create_time + 1 > attempt.sent + low - margin
            and create_time <= attempt.horizon + self.horizon + high + margin
        )

    def _propagate(
        self, feasible: dict[str, set[Attempt]], blocked: set[str], verdict: Judgement
    ) -> None:
        """Adopt every task that exactly one unknown attempt explains, alone, until none is left.

        A task a settled attempt may have made past its horizon (``blocked``) is never adopted
        on time alone: it may be that attempt's duplicate.
        """
        while True:
            claims: dict[Attempt, list[str]] = defaultdict(list)
            for task_id, explaining in feasible.items():
                if len(explaining) == 1:
                    claims[next(iter(explaining))].append(task_id)
            adoptions = [
                (attempt, ids[0])
                for attempt, ids in claims.items()
                if len(ids) == 1 and attempt.state == "unknown" and ids[0] not in blocked
            ]
            if not adoptions:
                return
            for attempt, task_id in adoptions:
                attempt.state, attempt.task_id = "adopted", task_id
                self.own(task_id)
                del feasible[task_id]
                for explaining in feasible.values():
                    explaining.discard(attempt)
                verdict.adopted.append(attempt)

    def _close(
        self,
        feasible: dict[str, set[Attempt]],
        listed_at: float,
        margin: float,
        waiting: set[str] | None,
        verdict: Judgement,
    ) -> None:
        """Decide the unknown attempts that closed (:meth:`closes_at`) before the reading."""
        candidates: dict[Attempt, list[str]] = defaultdict(list)
        for task_id, explaining in feasible.items():
            for attempt in explaining:
                candidates[attempt].append(task_id)
        for attempt in self.open_attempts:
            if attempt.state != "unknown" or listed_at < self.closes_at(attempt, margin):
                continue
            if not candidates[attempt]:
                attempt.state = "empty"
                verdict.empty.append(attempt)
                continue
            component, tasks = _component(attempt, candidates, feasible)
            if waiting and tasks & waiting:
                continue  # a callback may still name the job of a candidate
            if all(
                a.state == "unknown" and listed_at >= self.closes_at(a, margin) for a in component
            ):
                # Nothing more can come: every attempt that could share a task is past its
                # horizon, and the tasks left are each explained by several of them.
                self._excluded.update(tasks)
                for member in component:
                    member.state = "contested"
                    member.candidates = tuple(sorted(set(candidates[member])))
                    verdict.contested.append(member)

    def _report_late(self, task_id: str, attempts: list[Attempt], verdict: Judgement) -> None:
        """A task that appeared past the horizon of ``attempts``: each of them may have made
        it (``Attempt.late``); it is adopted by nobody."""
        self._excluded.add(task_id)
        for attempt in attempts:
            attempt.late.append(task_id)
        likely = max(attempts, key=lambda a: a.sent)
        verdict.late.append((task_id, likely))
        logger.warning(
            "task %s appeared after the processing horizon of the create of %s: "
            "it may have been created twice; it is adopted by no job",
            task_id,
            f"job {likely.key}" if likely.key is not None else "a direct create",
        )

    def disown(self, task_id: str) -> None:
        """A callback proved ``task_id`` is a duplicate of a settled job: adopt it nowhere."""
        self._excluded.add(task_id)


def _component(
    start: Attempt, candidates: Mapping[Attempt, list[str]], feasible: Mapping[str, set[Attempt]]
) -> tuple[set[Attempt], set[str]]:
    """The attempts and tasks linked to ``start`` through shared candidate tasks."""
    attempts, tasks = {start}, set[str]()
    todo = [start]
    while todo:
        for task_id in candidates[todo.pop()]:
            if task_id in tasks:
                continue
            tasks.add(task_id)
            for other in feasible[task_id]:
                if other not in attempts:
                    attempts.add(other)
                    todo.append(other)
    return attempts, tasks
