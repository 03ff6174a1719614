"""The Redis-backed shared limiter against a real redis-server: strictness, leases, 40001, outages.

Several :class:`RedisRateLimiter` instances on one Redis stand for several processes (each has
its own connection, tokens and heartbeat); the crash test uses a real process killed with
SIGKILL. Windows are shortened to fractions of a second.
"""

from __future__ import annotations

import logging
import random
import signal
import sys
import time
from typing import TYPE_CHECKING

import anyio
import pytest
import redis.asyncio

from chanjing_async import (
    ConfigurationError,
    Rate,
    RateLimits,
    RedisRateLimiter,
    RedisSlidingWindowLimiter,
)
from tests.support import make_client, numbered

if TYPE_CHECKING:
    from chanjing_async import RateLimiter
    from chanjing_async.emulator import EmulatorServer
    from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
logger = logging.getLogger(__name__)

LIMIT, WINDOW, MARGIN = 10, 0.5, 0.02
LIMITS = RateLimits(create=Rate(LIMIT, WINDOW, MARGIN))


def shared(server: RedisServer, *, lease: float = 2.0, prefix: str = "t") -> RedisRateLimiter:
    return RedisRateLimiter(server.url, prefix=prefix, lease=lease)


async def create_limiter(setting: RedisRateLimiter) -> RateLimiter:
    return (await setting.open(LIMITS, "app")).create


def violations(events: list[tuple[float, float]], limit: int, span: float) -> int:
    """Admissions that broke the invariant: ``limit`` others in flight or released after
    ``admitted - span`` at the moment of admission."""
    return sum(
        sum(other[0] < admitted and other[1] > admitted - span for other in events) >= limit
        for admitted, _ in events
    )


async def test_four_processes_share_one_window_strictly_and_fill_it(
    redis_server: RedisServer,
) -> None:
    settings = [shared(redis_server) for _ in range(4)]
    limiters = [await create_limiter(setting) for setting in settings]
    events: list[tuple[float, float]] = []
    rng = random.Random(7)

    async def worker(limiter: RateLimiter, count: int) -> None:
        for _ in range(count):
            async with limiter.slot():
                admitted = time.monotonic()
                await anyio.sleep(rng.random() * 0.05)  # latency
                events.append((admitted, time.monotonic()))

    start = time.monotonic()
    async with anyio.create_task_group() as group:
        for limiter in limiters:
            for _ in range(3):
                group.start_soon(worker, limiter, 5)  # 4 x 3 x 5 = 60 requests
    for setting in settings:
        await setting.aclose()

    assert len(events) == 60
    assert violations(events, LIMIT, WINDOW) == 0
    # A log nobody used before admits its first burst at once.
    assert sorted(admitted for admitted, _ in events)[LIMIT - 1] - start < 0.1
    # Ideal: 5 more windows after the first burst, plus up to one round trip per window.
    last = max(admitted for admitted, _ in events) - start
    assert 5 * (WINDOW + MARGIN) <= last <= 1.15 * 5 * (WINDOW + MARGIN) + 0.25


async def test_separate_logs_would_break_the_limit(redis_server: RedisServer) -> None:
    # The same workload with a prefix per "process": four logs, four budgets, violations. This
    # is what the shared log prevents, and shows the check above can fail.
    settings = [shared(redis_server, prefix=f"p{n}") for n in range(4)]
    events: list[tuple[float, float]] = []
    for limiter in [await create_limiter(setting) for setting in settings]:
        for _ in range(10):
            async with limiter.slot():
                events.append((time.monotonic(), time.monotonic()))
    for setting in settings:
        await setting.aclose()
    assert violations(events, LIMIT, WINDOW) > 0


async def test_a_40001_in_one_process_blocks_every_process(redis_server: RedisServer) -> None:
    first, second = shared(redis_server), shared(redis_server)
    one, two = await create_limiter(first), await create_limiter(second)
    one.penalize()  # as the transport does on a 40001: one window plus margin
    await anyio.sleep(0.05)  # the heartbeat writes the block to Redis
    start = time.monotonic()
    async with two.slot():
        waited = time.monotonic() - start
    await first.aclose()
    await second.aclose()
    assert WINDOW + MARGIN - 0.1 <= waited <= WINDOW + MARGIN + 0.2


async def test_a_slow_request_keeps_its_slot_by_renewing_its_lease(
    redis_server: RedisServer,
) -> None:
    one_per_window = RateLimits(create=Rate(1, WINDOW, MARGIN))
    holder_setting, other_setting = shared(redis_server, lease=0.2), shared(redis_server)
    holder = (await holder_setting.open(one_per_window, "app")).create
    other = (await other_setting.open(one_per_window, "app")).create
    admitted_at = 0.0

    async def wait_for_slot() -> None:
        nonlocal admitted_at
        async with other.slot():
            admitted_at = time.monotonic()

    async with anyio.create_task_group() as group:
        async with holder.slot():
            group.start_soon(wait_for_slot)
            await anyio.sleep(1.0)  # five leases long: only the heartbeat keeps it counted
            released_at = time.monotonic()
    await holder_setting.aclose()
    await other_setting.aclose()
    assert admitted_at >= released_at + WINDOW + MARGIN - 0.02


HOLDER = """
import sys, anyio
from chanjing_async import Rate, RateLimits, RedisRateLimiter

async def main() -> None:
    setting = RedisRateLimiter(sys.argv[1], prefix="t", lease=float(sys.argv[2]))
    limits = await setting.open(RateLimits(create=Rate(1, float(sys.argv[3]))), "app")
    limiter = limits.create
    async with limiter.slot():
        print("held", flush=True)
        await anyio.sleep(3600)

anyio.run(main)
"""


async def test_a_killed_holder_stalls_the_others_no_longer_than_its_lease(
    redis_server: RedisServer,
) -> None:
    lease, window = 1.0, 0.5
    holder = await anyio.open_process(
        [sys.executable, "-c", HOLDER, redis_server.url, str(lease), str(window)]
    )
    assert holder.stdout is not None
    assert (await holder.stdout.receive()).strip() == b"held"
    await anyio.sleep(lease)  # the heartbeat has renewed the lease at least once
    holder.send_signal(signal.SIGKILL)
    await holder.wait()
    await holder.aclose()
    killed = time.monotonic()

    setting = shared(redis_server)
    limiter = (await setting.open(RateLimits(create=Rate(1, window)), "app")).create
    async with limiter.slot():
        stalled = time.monotonic() - killed
    await setting.aclose()
    logger.info("killed holder: next admission %.2f s after the kill", stalled)
    # Counted while it may still be in flight (its last renewal + lease), then one window,
    # and not longer: renewed at most lease / 4 before the kill.
    assert 0.75 * lease + window - 0.05 <= stalled <= lease + window + 0.3


async def test_admissions_wait_while_redis_is_down_and_resume_after(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    setting = shared(redis_server)
    limiter = await create_limiter(setting)
    async with limiter.slot():
        pass
    redis_server.stop()
    admitted = anyio.Event()

    async def take() -> None:
        async with limiter.slot():
            admitted.set()

    with caplog.at_level(logging.WARNING, logger="chanjing_async"):
        async with anyio.create_task_group() as group:
            group.start_soon(take)
            await anyio.sleep(0.6)
            assert not admitted.is_set()  # never a local guess while Redis is unreachable
            await anyio.to_thread.run_sync(redis_server.start)
            with anyio.fail_after(5):
                await admitted.wait()
    await setting.aclose()
    unreachable = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(unreachable) == 1  # once per outage, not once per attempt
    assert any("reachable again" in r.getMessage() for r in caplog.records)


async def test_after_an_empty_restart_the_window_counts_as_full_and_members_come_back(
    redis_server: RedisServer,
) -> None:
    limits = RateLimits(create=Rate(LIMIT, 5.0))  # long enough to look at the log
    first, second = shared(redis_server), shared(redis_server)
    one = (await first.open(limits, "app")).create
    two = (await second.open(limits, "app")).create
    async with two.slot():
        pass
    for _ in range(LIMIT - 1):
        async with one.slot():
            pass
    await anyio.to_thread.run_sync(redis_server.restart)  # back empty: the log is gone
    client = redis.asyncio.Redis.from_url(redis_server.url)
    admitted = 0

    async def take(limiter: RateLimiter) -> None:
        nonlocal admitted
        async with limiter.slot():
            admitted += 1

    async with anyio.create_task_group() as group:
        group.start_soon(take, two)
        group.start_soon(take, one)
        for _ in range(300):
            if await client.zcard("{t:app:create}:log") == LIMIT:
                break
            await anyio.sleep(0.01)
        # Both knew the lost log: each wrote its own members back before asking for a slot,
        # and the first one back blocked the window, though the restored log is not full.
        blocked = float(await client.hget("{t:app:create}:meta", "blocked") or 0)
        now = sum(
            int(part) / 10**exp for part, exp in zip(await client.time(), (0, 6), strict=True)
        )
        assert blocked - now > 4.0
        await anyio.sleep(0.3)
        assert admitted == 0
        group.cancel_scope.cancel()
    # The cancelled waiters left nothing behind.
    assert await client.zcard("{t:app:create}:log") == LIMIT
    await client.aclose()
    await first.aclose()
    await second.aclose()


async def test_the_client_uses_the_shared_log_for_every_group(
    emulator: EmulatorServer, redis_server: RedisServer, files: tuple[str, str]
) -> None:
    async with make_client(emulator.base_url, rate_limiter=redis_server.url) as client:
        assert isinstance(client.limiters.create, RedisSlidingWindowLimiter)
        task_id = await client.lip_sync.create(numbered(files[0], 1))
        await client.lip_sync.get(task_id)
    async with redis.asyncio.Redis.from_url(redis_server.url) as inspect:
        logs = await inspect.exists(
            "{chanjing:test-app:create}:log", "{chanjing:test-app:read}:log"
        )
    assert logs == 2
    assert emulator.state.stats()["endpoints"]["create"]["rejected_40001"] == 0


def test_bad_settings_are_refused_by_name_and_never_show_a_password() -> None:
    with pytest.raises(ConfigurationError, match="rate_limiter='http://x'"):
        RedisRateLimiter("http://x")
    with pytest.raises(ConfigurationError, match="exactly one of url and redis"):
        RedisRateLimiter()
    with pytest.raises(ConfigurationError, match="lease=0"):
        RedisRateLimiter("redis://localhost", lease=0)
    with pytest.raises(ConfigurationError, match=r"prefix='a\{b\}'"):
        RedisRateLimiter("redis://localhost", prefix="a{b}")
    with pytest.raises(ConfigurationError, match="kind='token_bucket'"):
        make_client(
            "http://127.0.0.1:1",
            rate_limiter="redis://localhost",
            limits=RateLimits(kind="token_bucket"),
        )
    for url in ("redis://user:hunter2@localhost:6379/0", "redis://localhost/0?password=hunter2"):
        assert "hunter2" not in repr(RedisRateLimiter(url))
    with pytest.raises(ConfigurationError, match="not bytes") as refused_bytes:
        RedisRateLimiter(b"redis://u:hunter2@localhost")  # type: ignore[arg-type]
    assert "hunter2" not in str(refused_bytes.value)
    with pytest.raises(ConfigurationError) as refused:
        RedisRateLimiter("ftp://user:hunter2@localhost")
    assert "hunter2" not in str(refused.value)


async def test_clients_sharing_redis_share_one_access_token(
    emulator: EmulatorServer, redis_server: RedisServer, files: tuple[str, str]
) -> None:
    # Without sharing, each client's new token would invalidate the other's (10400 loops).
    before = emulator.state.stats()["tokens_issued"]  # the `files` fixture's client's
    async with (
        make_client(emulator.base_url, rate_limiter=redis_server.url) as first,
        make_client(emulator.base_url, rate_limiter=redis_server.url) as second,
    ):
        task_id = await first.lip_sync.create(numbered(files[0], 1))
        await second.lip_sync.get(task_id)
        await first.lip_sync.get(task_id)
        assert emulator.state.stats()["tokens_issued"] == before + 1
        assert first.token_refreshes + second.token_refreshes == 1
        emulator.state.revoke_tokens()
        async with anyio.create_task_group() as group:  # both meet 10400 at once
            group.start_soon(first.lip_sync.get, task_id)
            group.start_soon(second.lip_sync.get, task_id)
        assert emulator.state.stats()["tokens_issued"] == before + 2  # one replacement for both


async def test_an_unreachable_redis_fails_when_the_client_opens(
    emulator: EmulatorServer, redis_server: RedisServer
) -> None:
    redis_server.stop()
    client = make_client(emulator.base_url, rate_limiter=redis_server.url)
    with pytest.raises(ConfigurationError, match="did not answer PING"):
        await client.__aenter__()
    assert emulator.state.stats()["tokens_issued"] == 0  # nothing was sent


async def test_a_held_release_keeps_counting_after_its_lease(redis_server: RedisServer) -> None:
    # A timed-out request holds its slot (Slot.hold) longer than the lease: the log must not
    # expire under it.
    limits = RateLimits(create=Rate(1, 0.5))
    first, second = shared(redis_server, lease=0.2), shared(redis_server)
    one, two = (await first.open(limits, "app")).create, (await second.open(limits, "app")).create
    async with one.slot() as slot:
        slot.hold(1.5)
    released = time.monotonic()
    async with two.slot():
        waited = time.monotonic() - released
    await first.aclose()
    await second.aclose()
    assert waited >= 1.5 + 0.5 - 0.05


async def test_a_refusal_that_never_heals_is_an_error_not_a_stall(
    redis_server: RedisServer,
) -> None:
    async with redis.asyncio.Redis.from_url(redis_server.url) as inspect:
        await inspect.set("{t:app:create}:meta", "not a hash")  # a key collision
    setting = shared(redis_server)
    limiter = await create_limiter(setting)
    with anyio.fail_after(5), pytest.raises(ConfigurationError, match="WRONGTYPE"):
        async with limiter.slot():
            pass
    await setting.aclose()
