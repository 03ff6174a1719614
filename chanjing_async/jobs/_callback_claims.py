"""How many ``detail`` reads callbacks naming tasks a job does not hold may cost.

A callback naming a task its job does not hold is either the proof that an unexplained create
made that task, or the report of a second task made by the same create (a duplicate). Both are
read through ``detail`` before anything is recorded: the body is not trusted. Anyone holding a
job's callback URL (a leaked log line, a proxy) could otherwise name a new made-up task id in
every request and spend one read of the account's shared budget each time. So each job gets
``per_job`` distinct task ids checked over its life, each id once; further claims are
answered and ignored. One create makes one task, rarely two: four is room enough.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["CallbackClaims"]

PER_JOB = 4
JOBS = 4096  # jobs whose claims are remembered (the oldest forgotten first)


class CallbackClaims:
    """The task ids checked for each job's callbacks, bounded per job and in all."""

    def __init__(self, per_job: int = PER_JOB, jobs: int = JOBS) -> None:
        self._per_job = per_job
        self._jobs = jobs
        self._claims: OrderedDict[str, set[str]] = OrderedDict()
        self.refused = 0
        """Claims ignored because their job had used its checks, or named a checked task."""

    def admit(self, key: str, task_id: str) -> bool:
        """Whether job ``key``'s callback naming ``task_id`` may cost a ``detail`` read."""
        seen = self._claims.setdefault(key, set())
        self._claims.move_to_end(key)
        if len(self._claims) > self._jobs:
            self._claims.popitem(last=False)
        if task_id in seen or len(seen) >= self._per_job:
            self.refused += 1
            return False
        seen.add(task_id)
        return True
