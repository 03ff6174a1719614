"""A process that holds many connections to a server, as a slow-client or flood attacker would.

Run by ``tests/callbacks/test_receiver_security.py`` from the repository root (in its own
process, so
that its descriptors are not counted as the server's)::

    python -m tests.support.slow_clients <port> <connections> <seconds> slow|idle

It opens the connections to ``127.0.0.1:<port>`` all at once and prints ``{"open": n}``;
``slow`` then sends one byte of a request head that never ends on each, every second, and
``idle`` sends nothing. It watches them for ``seconds`` and prints a JSON line: how many the
server closed (``closed``), after how long each (``close_times``, seconds from its opening,
sorted) and how many were still open at the end (``still_open``).
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from anyio.abc import SocketStream

HEAD = b"POST /chanjing/callbacks/job?sig=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4096


async def hold(stream: SocketStream, slow: bool, opened: float, closes: list[float]) -> None:
    """Drip the head (slow) or stay silent, until the server closes the connection."""
    sent = 0
    try:
        while True:
            if slow:
                await stream.send(HEAD[sent : sent + 1])
                sent += 1
            with anyio.move_on_after(1.0):
                if not await stream.receive():
                    break
    except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
        pass
    closes.append(time.monotonic() - opened)


async def main(port: int, count: int, seconds: float, mode: str) -> None:
    streams = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(count)]
    opened = time.monotonic()
    sys.stdout.write(json.dumps({"open": len(streams)}) + "\n")
    sys.stdout.flush()
    closes: list[float] = []
    with anyio.move_on_after(seconds):
        async with anyio.create_task_group() as group:
            for stream in streams:
                group.start_soon(hold, stream, mode == "slow", opened, closes)
    report = {
        "closed": len(closes),
        "close_times": sorted(round(moment, 3) for moment in closes),
        "still_open": count - len(closes),
    }
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
