"""A process that takes a create slot from the Redis-shared limiter and is paused before sending.

Run by ``tests/scaleout/test_redis_fencing.py`` from the repository root::

    python -m tests.support.fencing_worker <redis url> <emulator url> <video id> <lease> fence|bare

It prints one JSON line once admitted, then waits for a line on stdin (the test SIGSTOPs and
SIGCONTs it meanwhile), sends one create in its slot and prints a JSON line with the outcome:
``task_id`` or the error ``code``, ``seconds`` from the resume to the answer, and whether the
slot was ``readmitted`` (its reservation replaced). ``fence`` sends in the slot itself, which
the transport fences; ``bare``, the control, sends in a slot without a fence, as every process
did before fencing existed.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import anyio

from chanjing_async import APIError, RedisRateLimiter
from chanjing_async.limits import Slot
from tests.support import make_client, numbered


def say(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


async def main(redis_url: str, base_url: str, video_id: str, lease: float, mode: str) -> None:
    setting = RedisRateLimiter(redis_url, lease=lease)
    async with make_client(base_url, rate_limiter=setting) as client:
        async with client.limiters.create.slot() as slot:
            admitted = slot.admitted_at
            say({"admitted": admitted})
            await anyio.to_thread.run_sync(sys.stdin.readline)  # paused around here
            resumed = time.monotonic()
            # The transport fences the slot right before sending; the control sends in a bare
            # slot that cannot.
            sent_in = slot if mode == "fence" else Slot(slot.admitted_at)
            outcome: dict[str, Any] = {}
            try:
                outcome["task_id"] = await client.lip_sync.create(
                    numbered(video_id, 99), slot=sent_in
                )
            except APIError as exc:
                outcome["code"] = exc.code
            outcome["seconds"] = time.monotonic() - resumed  # from the resume to the answer
            outcome["readmitted"] = slot.admitted_at != admitted
            slot.hold(sent_in.held)  # what the transport recorded on the bare slot
            if sent_in.discarded:
                slot.discard()
    say(outcome)


if __name__ == "__main__":
    redis_url, base_url, video_id, lease, mode = sys.argv[1:]
    anyio.run(main, redis_url, base_url, video_id, float(lease), mode)
