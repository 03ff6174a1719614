"""At most one callback per job and task reaches the manager per interval (see ``callbacks``).

Each verified callback the manager takes makes it read the task through ``detail``, and the
reads share the account's budget (10 a second). A callback URL that leaks could otherwise
spend that budget: 100 posts of one valid callback, 100 reads. So a callback (received, or
relayed by another replica) naming the same job and task as one handed on less than
``interval`` seconds ago is a **repeat**: answered at once, and held. When the interval ends,
the latest repeat held for them is handed on (earlier ones are dropped): a real callback
arriving just after a forged one through a leaked URL is late by at most the interval, never
lost. The status and the body do not count, since a sender can vary them at will; the task id
does, since a job's create may have made a second task whose callback must be heard (as a
duplicate), and a task id that is not the job's costs no read: the manager checks it locally.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.abc import TaskGroup

__all__ = ["MAX_KEY", "MAX_PAIRS", "MAX_TASK_ID", "REPEAT_INTERVAL", "RepeatGate"]

REPEAT_INTERVAL = 10.0
"""Seconds during which further callbacks of one job are repeats."""
MAX_KEY = 512
"""Characters of a job key a callback URL may carry: percent-encoded (up to 9 bytes for a
character UTF-8 writes in 3), it must fit in the request line servers accept (8 KiB)."""
MAX_TASK_ID = 128
"""Characters of a task id in a callback (Chanjing's are 32): a longer one is no callback."""
MAX_PAIRS = 4096
"""(job, task) pairs the gate remembers: the oldest without a held repeat are forgotten first,
so that a leaked URL naming ever new task ids cannot grow the memory."""


class RepeatGate:
    """Lets one callback per (job key, task id) through per ``interval``; holds the latest
    repeat.

    Args:
        interval: seconds after a callback during which others of its job are held.
        note: told of a held callback that raised when handed on (``repeat_error``).
    """

    def __init__(self, interval: float, note: Callable[[str, Exception | None], None]) -> None:
        self._interval = interval
        self._note = note
        # (job key, task id) -> when its last callback was handed on, oldest first.
        self._last: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._held: dict[tuple[str, str], Callable[[], Awaitable[object]]] = {}
        self._group: TaskGroup | None = None

    def open(self, group: TaskGroup) -> None:
        """Hand held repeats on from ``group`` (the manager's) until :meth:`close`."""
        self._group = group

    def close(self) -> None:
        """Forget every job; repeats still held are dropped (their manager has closed)."""
        self._group = None
        self._held.clear()
        self._last.clear()

    def admit(self, key: str, task_id: str, later: Callable[[], Awaitable[object]]) -> bool:
        """True if the callback of job ``key`` naming ``task_id`` may be handed on now.

        Otherwise it is a repeat: ``later`` hands it on once the interval of the last one
        ends, unless another repeat replaces it before. A gate that is not open (no manager's
        task group to hand repeats on from) lets everything through.
        """
        if self._group is None:
            return True
        pair = (key, task_id)
        now = anyio.current_time()
        self._forget_before(now - self._interval)
        last = self._last.get(pair)
        if pair in self._held:
            self._held[pair] = later
        elif last is None or now - last >= self._interval:
            if last is None and not self._make_room():
                return False  # every pair remembered has a repeat held: dropped, polling ends it
            self._last[pair] = now
            self._last.move_to_end(pair)
            return True
        else:
            self._held[pair] = later
            self._group.start_soon(self._release, pair, last + self._interval)
        return False

    def _make_room(self) -> bool:
        """Forget the oldest pair without a held repeat if the gate is full; False if none."""
        if len(self._last) < MAX_PAIRS:
            return True
        for pair in self._last:
            if pair not in self._held:
                del self._last[pair]
                return True
        return False

    async def _release(self, pair: tuple[str, str], at: float) -> None:
        await anyio.sleep_until(at)
        later = self._held.pop(pair, None)
        self._forget_before(anyio.current_time() - self._interval)  # memory back after a burst
        if later is None:  # closed meanwhile
            return
        self._last[pair] = anyio.current_time()
        self._last.move_to_end(pair)
        try:
            await later()
        except Exception as exc:  # a bug here must not end the manager
            self._note("repeat_error", exc)

    def _forget_before(self, moment: float) -> None:
        """Forget the callbacks handed on before ``moment`` that have no repeat held."""
        while self._last:
            pair, at = next(iter(self._last.items()))
            if at >= moment or pair in self._held:
                return
            del self._last[pair]
