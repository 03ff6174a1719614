"""Fencing the shared limiter's reservations: a process paused past its lease must not send.

A holder of a Redis reservation that is paused (SIGSTOP, a VM freeze, a debugger) for longer
than its lease stops renewing it; the other processes count it as released and reuse its place
one window later. :meth:`Slot.fence`, right before the send, must then take a new reservation
instead of sending into a full window. Real redis-server; the end-to-end tests use a real
worker process (``tests/support/fencing_worker.py``), SIGSTOP and the emulator's strict
sliding-window
create limit at time scale 60 (a documented minute lasts one second).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio
import pytest
import redis.asyncio
from anyio.streams.buffered import BufferedByteReceiveStream

from chanjing_async import ConfigurationError, Rate, RateLimits, RedisRateLimiter
from tests.support import TIME_SCALE, make_client, numbered

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from chanjing_async import RateLimiter
    from chanjing_async.emulator import EmulatorServer
    from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
LOG, META = "{t:app:create}:log", "{t:app:create}:meta"


@asynccontextmanager
async def opened(
    server: RedisServer, limit: int, window: float, *, lease: float
) -> AsyncIterator[RateLimiter]:
    """The create limiter of one "process" (its own connection, tokens and heartbeat)."""
    setting = RedisRateLimiter(server.url, prefix="t", lease=lease)
    try:
        yield (await setting.open(RateLimits(create=Rate(limit, window)), "app")).create
    finally:
        await setting.aclose()


async def members(server: RedisServer) -> dict[bytes, float]:
    """The create log, member -> score."""
    async with redis.asyncio.Redis.from_url(server.url) as inspect:
        return dict(
            cast("list[tuple[bytes, float]]", await inspect.zrange(LOG, 0, -1, withscores=True))
        )


async def redis_now(server: RedisServer) -> float:
    async with redis.asyncio.Redis.from_url(server.url) as inspect:
        seconds, micros = await inspect.time()
    return seconds + micros / 1e6


async def rescore(server: RedisServer, member: bytes, ahead: float) -> None:
    """Move a member's score to ``ahead`` seconds from Redis's now (negative: lapsed)."""
    async with redis.asyncio.Redis.from_url(server.url) as inspect:
        await inspect.zadd(LOG, {member: await redis_now(server) + ahead})


def freeze(seconds: float) -> None:
    """Stop this whole process's event loop (heartbeat included), as SIGSTOP would."""
    time.sleep(seconds)


# -- the fence in one process -------------------------------------------------------------------


async def test_a_live_reservation_is_renewed_and_the_fence_does_not_wait(
    redis_server: RedisServer,
) -> None:
    lease = 2.0  # the heartbeat renews every 0.5 s
    async with opened(redis_server, 1, 0.5, lease=lease) as limiter, limiter.slot() as slot:
        await anyio.sleep(0.02)  # the heartbeat's first renewal, at admission
        [(member, before)] = (await members(redis_server)).items()
        admitted = slot.admitted_at
        await anyio.sleep(0.1)
        earliest = await redis_now(redis_server)
        start = time.monotonic()
        await slot.fence()
        took = time.monotonic() - start
        [(still, after)] = (await members(redis_server)).items()
        latest = await redis_now(redis_server)
    assert still == member  # the same reservation, not a new one
    assert slot.admitted_at == admitted
    assert before < earliest + lease <= after <= latest + lease  # renewed by the fence
    assert took < 0.2  # one round trip


@pytest.mark.parametrize("heartbeat_first", [False, True], ids=["fence-first", "heartbeat-first"])
async def test_after_a_pause_past_the_lease_the_fence_takes_a_new_member(
    redis_server: RedisServer, heartbeat_first: bool
) -> None:
    lease = 0.2
    async with opened(redis_server, 2, 0.5, lease=lease) as limiter:
        async with limiter.slot() as slot:
            [old] = await members(redis_server)
            admitted = slot.admitted_at
            freeze(2 * lease)
            if heartbeat_first:
                # On resume the overdue heartbeat may run first and write the lapsed member
                # back as if it had never lapsed: Redis alone would now call it live.
                await anyio.sleep(lease / 4 + 0.05)
                assert (await members(redis_server))[old] > await redis_now(redis_server)
            await slot.fence()
            log = await members(redis_server)
            assert old not in log
            [new] = log
            assert log[new] > await redis_now(redis_server)  # the new one is in flight
            assert slot.admitted_at > admitted
        released = await members(redis_server)
        assert list(released) == [new]  # the release was written for the new member
        assert released[new] <= await redis_now(redis_server)


async def test_a_lapse_seen_only_by_redis_is_not_trusted_after_a_renewal(
    redis_server: RedisServer,
) -> None:
    # As after a VM freeze that stopped this host's clock too: no gap here, but Redis let the
    # lease run out (modelled by moving the score into the past). The heartbeat writes the
    # member back and must report the lapse, or the fence would take the member for live.
    lease = 0.4
    async with opened(redis_server, 2, 0.5, lease=lease) as limiter, limiter.slot() as slot:
        [old] = await members(redis_server)
        await rescore(redis_server, old, -0.01)
        await anyio.sleep(lease / 4 + 0.05)  # a heartbeat renewal
        assert (await members(redis_server))[old] > await redis_now(redis_server)
        await slot.fence()
        assert old not in await members(redis_server)


async def test_a_pause_the_local_clock_saw_is_a_lapse_even_if_redis_did_not_see_one(
    redis_server: RedisServer,
) -> None:
    # The local guard on its own: Redis still shows the member in flight (its score is far
    # ahead, as if Redis had been paused too), but no renewal was confirmed for longer than
    # the lease, so the reservation is not trusted.
    lease = 0.2
    async with opened(redis_server, 2, 0.5, lease=lease) as limiter, limiter.slot() as slot:
        [old] = await members(redis_server)
        await rescore(redis_server, old, 100)
        freeze(2 * lease)
        await slot.fence()
        assert old not in await members(redis_server)


async def test_while_redis_is_down_the_fence_waits_and_after_an_empty_restart_reserves_anew(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    lease = window = 0.3
    fenced = anyio.Event()
    with caplog.at_level(logging.WARNING, logger="chanjing_async"):
        async with opened(redis_server, 10, window, lease=lease) as limiter:
            async with limiter.slot() as slot:
                [old] = await members(redis_server)
                redis_server.stop()

                async def fence() -> None:
                    await slot.fence()
                    fenced.set()

                async with anyio.create_task_group() as group:
                    group.start_soon(fence)
                    await anyio.sleep(0.4)
                    assert not fenced.is_set()  # nothing goes on an unconfirmed reservation
                    await anyio.to_thread.run_sync(redis_server.start)  # back, and empty
                    back = time.monotonic()
                    with anyio.fail_after(5):
                        await fenced.wait()
                waited = time.monotonic() - back
                [new] = await members(redis_server)
    assert new != old
    # A lost log counts as full for max(window, lease): its other members may come back.
    assert waited >= max(window, lease) - 0.05
    assert sum("Redis unreachable" in r.getMessage() for r in caplog.records) == 1


async def test_a_fence_cancelled_while_waiting_for_a_new_reservation_leaves_nothing(
    redis_server: RedisServer,
) -> None:
    lease = 0.2
    async with opened(redis_server, 1, 0.5, lease=lease) as limiter:
        with anyio.move_on_after(1.0) as scope:
            async with limiter.slot() as slot:
                freeze(2 * lease)
                async with redis.asyncio.Redis.from_url(redis_server.url) as inspect:
                    # The only slot, taken elsewhere (raw, so the log's expiry is ours to drop).
                    await inspect.zadd(LOG, {"elsewhere": await redis_now(redis_server) + 10})
                    await inspect.persist(LOG)
                await slot.fence()  # waits until cancelled
        assert scope.cancelled_caught
        assert list(await members(redis_server)) == [b"elsewhere"]  # no release of ours
        assert "in_flight_here=0" in repr(limiter)


async def test_a_refusal_during_the_fence_is_a_configuration_error(
    redis_server: RedisServer,
) -> None:
    async with (
        redis.asyncio.Redis.from_url(redis_server.url) as inspect,
        opened(redis_server, 1, 0.5, lease=2.0) as limiter,
    ):
        with anyio.fail_after(5):
            async with limiter.slot() as slot:
                await inspect.delete(META)
                await inspect.set(META, "not a hash")  # a key collision
                with pytest.raises(ConfigurationError, match="WRONGTYPE"):
                    await slot.fence()
                await inspect.delete(META)  # so that the release can be written


# -- a real process, SIGSTOPped between admission and send --------------------------------------

LIMIT, WINDOW = 10, 60.0 / TIME_SCALE  # the emulator's create limit, one second here
LEASE = 0.6
PAUSE = 4 * LEASE
# The others fill the window this long before the holder resumes: its send must land within the
# window of their creates (a loaded machine may take a while to resume it).
SEND_MARGIN = 0.5


async def run_paused_holder(
    emulator: EmulatorServer, server: RedisServer, video: Path, stderr: Path, mode: str
) -> dict[str, Any]:
    """A worker admitted, SIGSTOPped for PAUSE; meanwhile the others fill the window exactly
    (``LIMIT`` creates, all accepted); then SIGCONT and the worker sends. Its outcome."""
    setting = RedisRateLimiter(server.url, lease=LEASE)
    async with make_client(emulator.base_url, rate_limiter=setting) as others:
        upload = await others.files.upload(video, service="lip_sync_video", poll_interval=0.02)
        argv = [sys.executable, "-m", "tests.support.fencing_worker", server.url, emulator.base_url]
        with stderr.open("wb") as errors:
            worker = await anyio.open_process(
                [*argv, upload.id, str(LEASE), mode], cwd=ROOT, stderr=errors
            )
        assert worker.stdin is not None
        assert worker.stdout is not None
        lines = BufferedByteReceiveStream(worker.stdout)
        try:
            with anyio.fail_after(20):
                json.loads(await lines.receive_until(b"\n", 65536))  # admitted
            worker.send_signal(signal.SIGSTOP)
            stopped = time.monotonic()
            # Its member lapses a lease after the stop and leaves the window one window later
            # (stopped + 1.62 s); the fill starts after that and ends before the resume.
            await anyio.sleep(stopped + PAUSE - WINDOW + SEND_MARGIN - time.monotonic())
            async with anyio.create_task_group() as group:
                for n in range(LIMIT):
                    group.start_soon(others.lip_sync.create, numbered(upload.id, n))
            filled = time.monotonic() - stopped
            assert filled < PAUSE, f"the window was not filled before the resume ({filled:.2f} s)"
            # Exactly full: LIMIT accepted creates, all still in the server's window at resume.
            resume = stopped + PAUSE
            arrivals = emulator.state.arrivals("create")
            assert [a.accepted for a in arrivals] == [True] * LIMIT
            assert min(a.at for a in arrivals) > resume - WINDOW + 0.3
            await anyio.sleep(resume - time.monotonic())
            await worker.stdin.send(b"go\n")
            worker.send_signal(signal.SIGCONT)
            with anyio.fail_after(20):
                outcome: dict[str, Any] = json.loads(await lines.receive_until(b"\n", 65536))
                await worker.wait()
        except BaseException:
            logger.error("worker stderr:\n%s", await anyio.Path(stderr).read_text())
            raise
        finally:
            if worker.returncode is None:
                worker.kill()  # also when stopped
                with anyio.CancelScope(shield=True):
                    await worker.wait()
            await worker.aclose()
    assert worker.returncode == 0, await anyio.Path(stderr).read_text()
    logger.info("%s: filled %.2f s after the stop, worker %s", mode, filled, outcome)
    return outcome


async def test_a_holder_sigstopped_for_4_leases_between_admission_and_send_meets_no_40001(
    emulator: EmulatorServer, redis_server: RedisServer, media: tuple[Path, Path], tmp_path: Path
) -> None:
    outcome = await run_paused_holder(
        emulator, redis_server, media[0], tmp_path / "worker.err", "fence"
    )
    stats = emulator.state.stats()
    assert stats["endpoints"]["create"]["rejected_40001"] == 0
    assert "task_id" in outcome  # its create succeeded...
    assert outcome["readmitted"]  # ...in a new reservation...
    assert outcome["seconds"] > 0.3  # ...for which it waited until the window had room
    assert stats["tasks_created"] == LIMIT + 1


async def test_control_the_same_pause_without_a_fence_meets_a_40001(
    emulator: EmulatorServer, redis_server: RedisServer, media: tuple[Path, Path], tmp_path: Path
) -> None:
    # Shows the test above can fail: the worker sends in its lapsed reservation, into a window
    # the others filled exactly, and the server counts limit + 1.
    outcome = await run_paused_holder(
        emulator, redis_server, media[0], tmp_path / "worker.err", "bare"
    )
    assert outcome["code"] == 40001
    assert not outcome["readmitted"]
    stats = emulator.state.stats()
    assert stats["endpoints"]["create"]["rejected_40001"] == 1
    assert stats["tasks_created"] == LIMIT
