"""The one background sender that POSTs task callbacks when tasks end."""

from __future__ import annotations

import asyncio
import heapq
import time
from typing import TYPE_CHECKING

import aiohttp
import anyio

from ._clock import http_date
from ._protocol import envelope

if TYPE_CHECKING:
    from ._tasks import TaskRecord
    from .state import EmulatorState

# Real seconds, not scaled: this is a network timeout, not a documented API duration.
CALLBACK_TIMEOUT = 5.0


class CallbackSender:
    """Delivers each task's callback once, when the task becomes terminal.

    Tasks wait in a heap ordered by end time, so thousands of pending callbacks cost one timer.
    The docs give no retry policy, signature or expected answer for callbacks: each
    callback is one JSON POST of the detail envelope, success or failure alike, with no retry,
    its ``Date`` header (like the ``create_time`` in the body) on the server's clock.
    Any 2xx answer counts as sent; anything else, a timeout or a connection error as failed.
    """

    def __init__(self, state: EmulatorState) -> None:
        """Create an idle sender.

        Args:
            state: Supplies the settings, the task objects and the callback counters.
        """
        self._state = state
        self._due: list[tuple[float, str]] = []
        self._changed = asyncio.Event()

    def schedule(self, task: TaskRecord) -> None:
        """Send the callback of ``task`` when it ends (the task must have a callback URL)."""
        heapq.heappush(self._due, (task.ends_at, task.id))
        self._changed.set()

    async def run(self) -> None:
        """Deliver callbacks as tasks end, until cancelled; deliveries in flight are cancelled."""
        timeout = aiohttp.ClientTimeout(total=CALLBACK_TIMEOUT)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            anyio.create_task_group() as deliveries,
        ):
            while True:
                await self._wait_for_due()
                now = time.monotonic()
                while self._due and self._due[0][0] <= now:
                    _, task_id = heapq.heappop(self._due)
                    deliveries.start_soon(self._deliver, session, task_id)

    async def _wait_for_due(self) -> None:
        """Return once the earliest scheduled task has ended."""
        while True:
            self._changed.clear()
            if not self._due:
                await self._changed.wait()
                continue
            delay = self._due[0][0] - time.monotonic()
            if delay <= 0:
                return
            # Wake early when a task with an earlier end is scheduled meanwhile.
            with anyio.move_on_after(delay):
                await self._changed.wait()

    async def _deliver(self, session: aiohttp.ClientSession, task_id: str) -> None:
        state = self._state
        if not state.settings.callbacks:
            state.count_callback("dropped")
            return
        task = state.tasks.get(task_id)
        if task is None:
            return  # forgotten meanwhile (forget_tasks): nothing to tell
        assert task.callback is not None  # only tasks with a callback are scheduled
        body = envelope(state.task_view(task))
        headers = {"Date": http_date(state.settings)}
        try:
            async with session.post(task.callback, json=body, headers=headers) as response:
                await response.read()
                delivered = 200 <= response.status < 300
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
            # One receiver's failure (ValueError: a URL aiohttp cannot use) must not stop the
            # sender, which serves every task.
            delivered = False
        state.count_callback("sent" if delivered else "failed")
