"""SIGTERM stops a command the way Ctrl-C does: cancelled, unwound, then reported.

Ctrl-C is handled by the event loop's runner (``asyncio.Runner``, under ``anyio.run``): the
first SIGINT cancels the command's task, so every ``async with`` exits (a job manager closes
its journal, a progress display restores the cursor) and ``KeyboardInterrupt`` comes out of
the run; a second one raises at once. The default SIGTERM, by contrast, ends the process on
the spot. While a command runs, SIGTERM is therefore handed to whatever handles SIGINT at
that moment (the runner's handler, or Python's, which raises ``KeyboardInterrupt``), and
remembered, so that the command can say which signal stopped it.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import FrameType


def signal_name(signum: int) -> str:
    """``Ctrl-C`` for SIGINT, else the signal's name (``SIGTERM``)."""
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


@contextmanager
def sigterm_as_interrupt() -> Iterator[list[int]]:
    """Within the block, SIGTERM interrupts like Ctrl-C; yields the signals received so far
    (SIGTERM only: a Ctrl-C is the default). The earlier handler is restored on exit."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # signal handlers belong to the main thread
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        handler = signal.getsignal(signal.SIGINT)
        if not callable(handler):  # SIGINT ignored or default: stop as Ctrl-C would
            raise KeyboardInterrupt
        handler(signal.SIGINT, frame)

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, before)
