"""The server's wall clock: the real one shifted by ``EmulatorSettings.clock_offset_seconds``.

A client that reconciles ambiguous creates matches ``create_time`` against its own clock, and a
client that refreshes tokens compares ``expire_in`` with it; the live server's clock is not the
client's. Every Unix time the emulator emits (task and file ``create_time``, ``expire_in``,
signed URL ``Expires``, callback bodies, the HTTP ``Date`` header) is read here, so one setting
skews them all alike and no timestamp can slip out on the real clock.

Durations and deadlines (token lifetime, task progress, rate windows, arrival logs) stay on
``time.monotonic()``: a skewed wall clock changes what the server *says*, not how fast it runs.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .settings import EmulatorSettings


def server_time(settings: EmulatorSettings) -> float:
    """The server's wall clock now, in Unix seconds.

    Args:
        settings: Supplies ``clock_offset_seconds``, in wall seconds (never scaled: Unix times
            in this emulator are real wall times, only durations are divided by the time scale).

    Returns:
        ``time.time() + settings.clock_offset_seconds``.
    """
    return time.time() + settings.clock_offset_seconds


def http_date(settings: EmulatorSettings) -> str:
    """The server's clock now as an HTTP ``Date`` value (RFC 7231 IMF-fixdate, GMT)."""
    return formatdate(server_time(settings), usegmt=True)
