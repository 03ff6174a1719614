"""The heartbeat of a Redis limiter: renew the leases in flight and write what is due.

A reservation counts as in flight for ``lease`` seconds without news from its holder, so a
process renews its own every ``lease / 4``; releases Redis could not take and a 40001's
penalty are written by the same beat, at once when it is woken.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["Heartbeat"]

logger = logging.getLogger("chanjing_async")


class Heartbeat:
    """Runs ``write`` every ``period`` while ``due()`` says there is something to write.

    Stopped by :meth:`stop` through a flag, not by cancellation: redis-py may turn a cancelled
    read into a connection error, which the loop would take for an outage.

    Args:
        write: one write to Redis.
        due: whether anything is to be written (a lease to renew, a release, a penalty).
        period: seconds between beats; each write is bounded by it too, so a Redis that stops
            answering holds up neither the renewals nor :meth:`stop` beyond the next beat.
        name: the limiter's name, for the log.
    """

    def __init__(
        self,
        write: Callable[[], Awaitable[object]],
        due: Callable[[], bool],
        period: float,
        name: str,
    ) -> None:
        self._write = write
        self._due = due
        self._period = period
        self._name = name
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._wake = anyio.Event()

    def start(self) -> None:
        """Start beating, unless it beats already or was stopped."""
        if not self._closing and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._beat())

    def wake(self) -> None:
        """Beat now (a 40001 to share, a close to prepare)."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop after the current write (bounded by the socket timeout)."""
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            await task

    async def _beat(self) -> None:
        while not self._closing:
            wake = self._wake = anyio.Event()  # made before looking: no wake-up is missed
            if self._due():
                try:
                    with anyio.move_on_after(self._period):
                        await self._write()
                except Exception:  # a refusal (ConfigurationError) or a bug: keep beating
                    logger.exception("%s limiter: heartbeat write failed", self._name)
            with anyio.move_on_after(self._period):
                await wake.wait()
