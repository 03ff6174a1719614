"""Requests the origin goes on handling after a gateway answered for it (``gateway_late``).

A proxy that gives up on the origin (Cloudflare's 524, an nginx 504) does not stop it: the
create the client was told had failed may still happen, seconds later, with that later
``create_time`` and admitted by the rate limiter at that later moment. The emulator plays this
by answering the gateway page at once and handling the request in a background task. Those
tasks belong to the application, not to any request, so they are tracked here and cancelled
when the application is cleaned up (``EmulatorServer.__aexit__``), never left pending.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Coroutine

_LOG = logging.getLogger(__name__)


class LateHandling:
    """The background handlings still running, owned by one emulator application."""

    def __init__(self) -> None:
        """Create an empty set; nothing runs until :meth:`start`."""
        # Strong references: the event loop keeps only weak ones to its tasks.
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def pending(self) -> int:
        """How many handlings have not ended yet."""
        return len(self._tasks)

    def start(self, handling: Coroutine[Any, Any, None]) -> None:
        """Run ``handling`` in the background until it ends or the application is cleaned up.

        Args:
            handling: The coroutine that sleeps the delay, then handles the request.
        """
        if self._closed:
            # The application is shutting down: the origin is gone too.
            handling.close()
            return
        task = asyncio.get_running_loop().create_task(self._guarded(handling))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Cancel every handling still running and wait until each has ended."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        # return_exceptions: each task's CancelledError is retrieved here, none is re-raised.
        await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    async def _guarded(handling: Coroutine[Any, Any, None]) -> None:
        # A handler bug would otherwise end as "Task exception was never retrieved"; a request
        # handled in the foreground gets a 500 and a log line, this one gets the log line.
        try:
            await handling
        except Exception:
            _LOG.exception("a late handling (gateway_late fault) failed")


LATE_KEY = web.AppKey("chanjing_emulator_late", LateHandling)


async def run_late_handling(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx`` of the application: late handlings end with it."""
    yield
    await app[LATE_KEY].aclose()
