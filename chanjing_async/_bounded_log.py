"""Logging at a bounded rate, for events that anyone on the internet can cause at will.

A callback receiver faces unauthenticated clients: a forged URL, a garbled request or a
junk relay message costs its sender nothing, and a log record per event would let anyone
fill the disks or the log budget of the service. Each *kind* of event is logged at most once
per interval: the first at once, the next one only once the interval has passed, saying how
many like it came in between. Counting every event is the caller's job (the receiver's
``outcomes``); this module only decides what reaches the log.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

__all__ = ["LOG_INTERVAL", "BoundedLog"]

LOG_INTERVAL = 60.0
"""Seconds between two records of one kind of event."""


class BoundedLog:
    """A logger that writes each kind of event at most once per ``interval`` seconds.

    Args:
        logger: where the records go.
        interval: the least time between two records of one kind.
    """

    def __init__(self, logger: logging.Logger, interval: float = LOG_INTERVAL) -> None:
        self._logger = logger
        self._interval = interval
        self._last: dict[str, float] = {}  # kind -> when its last record was written
        self._held: dict[str, int] = {}  # kind -> events since then that wrote none

    def note(
        self,
        kind: str,
        level: int,
        message: str,
        *args: object,
        exc_info: BaseException | None = None,
    ) -> None:
        """Log one event of ``kind`` (``message % args``), unless one was logged lately.

        A record written after some were held back ends with how many, and over how long.
        """
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self._interval:
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        self._last[kind] = now
        held = self._held.pop(kind, 0)
        if held and last is not None:
            message += " (and %d more like it in the last %.0f s)"
            args = (*args, held, now - last)
        self._logger.log(level, message, *args, exc_info=exc_info)
