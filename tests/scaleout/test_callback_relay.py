"""The callback relay: replicas behind one callback URL resolve each other's jobs through Redis.

Replica A submits; its receiver is mounted nowhere and its URLs point at replica B's standalone
server, as a load balancer would send them. A polls so slowly (first read after 10 s of real
time, tasks last 0.5 s) that a job of A ends in time only if B's copy of its callback reaches A
through Redis. Redis is a real ``redis-server`` (tests/support/redis_server.py), stopped and
restarted
under the open managers.
"""

from __future__ import annotations

import json
import logging
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import pytest
import redis.asyncio
from pydantic import SecretStr

from chanjing_async import (
    CallbackReceiver,
    ConfigurationError,
    JobManager,
    LipSyncTask,
    PollPolicy,
    TaskStatus,
)
from chanjing_async.scaleout._relay import Relay
from tests.support import TIME_SCALE, job_manager, make_client, numbered, until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from chanjing_async.emulator import EmulatorServer
    from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.anyio

SECRET = b"shared-by-every-replica-0123456789"
PASSWORD = "hunter2-relay-password"
# Ten real seconds before the first read and between reads: only a callback ends a job sooner.
SLOW = PollPolicy(
    first=600.0, min_interval=600.0, max_interval=600.0, callback_interval=600.0
).scaled(TIME_SCALE)
# The first read one real second after the create, no jitter: what polling alone achieves.
ONE_SECOND = PollPolicy(
    first=60.0, min_interval=30.0, max_interval=30.0, callback_interval=30.0, jitter=0.0
).scaled(TIME_SCALE)


@dataclass
class Replicas:
    """Replica B serves the shared callback URL; replica A submits and B receives A's callbacks."""

    a: JobManager
    b: JobManager
    receiver_a: CallbackReceiver
    receiver_b: CallbackReceiver
    stack: AsyncExitStack

    async def mounted(self, emulator: EmulatorServer, relay: str | None) -> CallbackReceiver:
        """One more replica whose URLs point at B, open until the others close."""
        receiver = CallbackReceiver(
            self.receiver_b.public_url, serve=False, secret=SECRET, relay=relay
        )
        client = await self.stack.enter_async_context(make_client(emulator.base_url))
        await self.stack.enter_async_context(job_manager(client, callbacks=receiver, poll=SLOW))
        return receiver


@asynccontextmanager
async def replicas(
    emulator: EmulatorServer,
    relay: str | None,
    *,
    poll_a: PollPolicy = SLOW,
    repeat_interval: float = 10.0,
) -> AsyncIterator[Replicas]:
    """Replicas A and B, each with its own client of the emulator, sharing secret and relay."""
    async with AsyncExitStack() as stack:
        receiver_b = CallbackReceiver(secret=SECRET, relay=relay, repeat_interval=repeat_interval)
        client_b = await stack.enter_async_context(make_client(emulator.base_url))
        b = await stack.enter_async_context(job_manager(client_b, callbacks=receiver_b))
        receiver_a = CallbackReceiver(
            receiver_b.public_url,
            serve=False,
            secret=SECRET,
            relay=relay,
            repeat_interval=repeat_interval,
        )
        client_a = await stack.enter_async_context(make_client(emulator.base_url))
        a = await stack.enter_async_context(
            job_manager(client_a, callbacks=receiver_a, poll=poll_a)
        )
        yield Replicas(a, b, receiver_a, receiver_b, stack)


async def subscribed(url: str, channel: str = "chanjing:callbacks") -> int:
    """How many subscriptions Redis counts on ``channel`` (0 while it is down)."""
    client = redis.asyncio.Redis.from_url(url)
    try:
        counts = await client.pubsub_numsub(channel)
    except (redis.ConnectionError, OSError):
        return 0
    finally:
        await client.aclose()
    return counts[0][1]


async def until_subscribed(
    url: str, count: int, timeout: float = 3.0, channel: str = "chanjing:callbacks"
) -> None:
    async def holds() -> bool:
        return await subscribed(url, channel) == count

    await until(holds, timeout, interval=0.02, what=f"{count} subscribers on {channel}")


def relay_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == level and record.getMessage().startswith("callback relay:")
    ]


# -- the relay at work -----------------------------------------------------------------------


async def test_a_callback_received_by_another_replica_ends_the_job(
    emulator: EmulatorServer, files: tuple[str, str], redis_server: RedisServer
) -> None:
    async with replicas(emulator, redis_server.url) as running:
        bystander = await running.mounted(emulator, redis_server.url)
        started = anyio.current_time()
        handles = await running.a.submit_many([numbered(files[0], n) for n in range(5)])
        with anyio.fail_after(3):  # A's first poll would come after 10 s
            tasks = [await handle.wait() for handle in handles]
        elapsed = anyio.current_time() - started
        stats_a = running.a.stats
        # Every replica hears every message: the third one knows none of these jobs.
        await until(lambda: bystander.outcomes["relay_ignored"] == 5)
    assert elapsed < 1.5  # tasks last 0.5 s; A polls after 10 s
    assert [task.status for task in tasks] == [TaskStatus.SUCCEEDED] * 5
    # A minted the URLs of B's server (same base, same secret); B received them and published.
    urls = [running.receiver_a.url_for(handle.key) for handle in handles]
    assert [emulator.state.tasks[task.id].callback for task in tasks] == urls
    assert urls == [running.receiver_b.url_for(handle.key) for handle in handles]
    assert emulator.state.stats()["callbacks_sent"] == 5
    assert running.receiver_b.outcomes == {"relayed": 5}
    assert running.receiver_a.outcomes == {"relay_accepted": 5}
    assert bystander.outcomes == {"relay_ignored": 5}
    # Each relayed callback woke one detail read at A, and nothing else read the tasks.
    assert (stats_a.poll.detail_calls, stats_a.poll.list_calls) == (5, 0)
    assert stats_a.callbacks == {"relay_accepted": 5}


async def test_without_a_relay_the_other_replica_answers_unknown(
    emulator: EmulatorServer, files: tuple[str, str]
) -> None:
    async with replicas(emulator, None) as running:
        handles = await running.a.submit_many([numbered(files[0], n) for n in range(3)])
        await until(lambda: emulator.state.stats()["callbacks_failed"] == 3)
        await anyio.sleep(0.1)  # a job ended by anything would show by now
        done = [handle.done for handle in handles]
        stats_a = running.a.stats
    # Same secret, same URLs: B verified A's callbacks but knows none of A's jobs.
    assert running.receiver_b.outcomes == {"unknown": 3}
    assert running.receiver_a.outcomes == {}
    assert done == [False] * 3
    assert stats_a.poll.detail_calls == 0


async def test_a_repeated_callback_reaches_the_manager_as_a_duplicate(
    emulator: EmulatorServer, files: tuple[str, str], redis_server: RedisServer
) -> None:
    # A repeat within 0.2 s of the first callback is held by B, then relayed when that ends.
    async with replicas(emulator, redis_server.url, repeat_interval=0.2) as running:
        handle = await running.a.submit(numbered(files[0], 1))
        with anyio.fail_after(3):
            task = await handle.wait()
        url = running.receiver_a.url_for(handle.key)
        body = {"code": 0, "msg": "success", "data": task.model_dump()}
        async with aiohttp.ClientSession() as session, session.post(url, json=body) as reply:
            status = reply.status
        await until(lambda: running.receiver_a.outcomes["relay_duplicate"] == 1)
    assert status == 200
    assert running.receiver_b.outcomes == {"relayed": 2, "repeat": 1}
    # A gates relayed callbacks too: the second may reach it within 0.2 s of the first, and
    # then be held by A for the rest of that interval before its manager calls it a duplicate.
    outcomes_a = running.receiver_a.outcomes
    assert (outcomes_a["relay_accepted"], outcomes_a["relay_duplicate"]) == (1, 1)
    assert set(outcomes_a) <= {"relay_accepted", "relay_duplicate", "relay_repeat"}


async def test_messages_that_are_no_relayed_callback_are_counted_and_dropped(
    emulator: EmulatorServer, redis_server: RedisServer
) -> None:
    async with replicas(emulator, redis_server.url) as running:
        client = redis.asyncio.Redis.from_url(redis_server.url)
        try:
            task = {"id": "t" * 32, "status": 10}
            for junk in (
                b"not json",
                b"[1, 2]",
                b'{"origin": "x", "key": 1, "task": {}}',
                # Over the size cap, dropped unread however valid (padding an otherwise
                # good message); a key no callback URL carries; a task id no task has.
                json.dumps({"origin": "x", "key": "k", "task": task, "pad": "x" * 300_000}),
                json.dumps({"origin": "x", "key": "k" * 513, "task": task}),
                json.dumps({"origin": "x", "key": "k", "task": {**task, "id": "t" * 129}}),
            ):
                await client.publish("chanjing:callbacks", junk)
        finally:
            await client.aclose()
        await until(lambda: running.receiver_a.outcomes["relay_bad"] == 6)
        await until(lambda: running.receiver_b.outcomes["relay_bad"] == 6)
    assert running.receiver_a.outcomes == {"relay_bad": 6}


async def test_no_message_ends_a_manager_and_later_callbacks_still_arrive(
    emulator: EmulatorServer,
    files: tuple[str, str],
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chanjing_async")
    nested = b"[" * 100_000  # deeper than the JSON parser's stack: RecursionError
    garbage = [
        nested,
        b'{"origin": "x", "key": "k", "task": ' + nested + b"}",
        b'{"origin": "x", "key": "k", "task": {"id": "t", "status": 1' + b"0" * 5000 + b"}}",
        b"\xff\xfe\x00",
    ]
    async with replicas(emulator, redis_server.url) as running:
        client = redis.asyncio.Redis.from_url(redis_server.url)
        try:
            for junk in garbage:
                await client.publish("chanjing:callbacks", junk)
        finally:
            await client.aclose()
        await until(lambda: running.receiver_a.outcomes["relay_bad"] == len(garbage))
        await until(lambda: running.receiver_b.outcomes["relay_bad"] == len(garbage))
        # Both managers and their subscriptions go on: a job of A still ends through B.
        handle = await running.a.submit(numbered(files[0], 1))
        with anyio.fail_after(3):  # A's first poll would come after 10 s
            task = await handle.wait()
    assert task.status == TaskStatus.SUCCEEDED
    assert running.receiver_a.outcomes == {"relay_bad": len(garbage), "relay_accepted": 1}
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    # Counted every time, logged once per receiver (at most one record a minute per kind).
    bad = [record for record in caplog.records if "relay_bad" in record.getMessage()]
    assert len(bad) == 2


async def test_a_message_that_fails_when_handed_on_costs_only_itself(
    redis_server: RedisServer,
) -> None:
    noted: list[tuple[str, str]] = []

    def note(outcome: str, exc: Exception | None) -> None:
        noted.append((outcome, repr(exc)))

    listener = Relay(SecretStr(redis_server.url), "test:relay", note)
    sender = Relay(SecretStr(redis_server.url), "test:relay", note)
    taken: list[str] = []

    async def take(key: str, task: LipSyncTask) -> None:
        taken.append(key)
        if key == "boom":
            raise RuntimeError("a bug in the manager")

    task = LipSyncTask(id="t1", status=TaskStatus.SUCCEEDED)
    try:
        async with anyio.create_task_group() as group:
            await group.start(listener.listen, take)
            await until_subscribed(redis_server.url, 1, channel="test:relay")
            for key in ("boom", "fine", "boom", "fine"):
                assert await sender.publish(key, task)
            await until(lambda: len(taken) == 4)
            group.cancel_scope.cancel()
    finally:
        await listener.close()
        await sender.close()
    assert taken == ["boom", "fine", "boom", "fine"]
    assert noted == [("relay_error", "RuntimeError('a bug in the manager')")] * 2


# -- Redis outages ---------------------------------------------------------------------------


async def test_the_relay_survives_a_redis_restart(
    emulator: EmulatorServer,
    files: tuple[str, str],
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chanjing_async")
    async with replicas(emulator, redis_server.url) as running:
        before = await running.a.submit(numbered(files[0], 1))
        with anyio.fail_after(3):
            await before.wait()
        # Down for half a second while the managers run: both subscribers lose Redis.
        await anyio.to_thread.run_sync(redis_server.restart, 0.5)
        await until_subscribed(redis_server.url, 2)
        started = anyio.current_time()
        after = await running.a.submit(numbered(files[0], 2))
        with anyio.fail_after(3):
            task = await after.wait()
        elapsed = anyio.current_time() - started
    assert task.status == TaskStatus.SUCCEEDED
    assert elapsed < 1.5
    assert running.receiver_b.outcomes == {"relayed": 2}
    assert running.receiver_a.outcomes == {"relay_accepted": 2}
    # One warning per receiver for the whole outage, however many attempts it took.
    warnings = relay_records(caplog, logging.WARNING)
    assert len(warnings) == 2
    assert all("unreachable" in message for message in warnings)
    assert len(relay_records(caplog, logging.INFO)) == 2  # "is back", once each


async def test_a_callback_while_redis_is_down_is_503_and_polling_ends_the_job(
    emulator: EmulatorServer, files: tuple[str, str], redis_server: RedisServer
) -> None:
    async with replicas(emulator, redis_server.url, poll_a=ONE_SECOND) as running:
        redis_server.stop()
        started = anyio.current_time()
        handle = await running.a.submit(numbered(files[0], 1))
        await until(lambda: running.receiver_b.outcomes["relay_down"] == 1)
        pending = handle.done
        with anyio.fail_after(3):
            task = await handle.wait()
        elapsed = anyio.current_time() - started
        stats_a = running.a.stats
    assert not pending
    assert task.status == TaskStatus.SUCCEEDED
    # B could not publish; A ended the job on its own first poll, one second after the create.
    assert running.receiver_b.outcomes == {"relay_down": 1}
    assert running.receiver_a.outcomes == {}
    assert emulator.state.stats()["callbacks_failed"] == 1
    assert ONE_SECOND.first <= elapsed < ONE_SECOND.first + 1.0
    assert stats_a.poll.detail_calls >= 1


async def test_a_manager_opens_while_redis_is_down_and_relays_once_it_is_up(
    emulator: EmulatorServer, files: tuple[str, str], redis_server: RedisServer
) -> None:
    redis_server.stop()
    async with replicas(emulator, redis_server.url) as running:
        await anyio.to_thread.run_sync(redis_server.start)
        await until_subscribed(redis_server.url, 2, timeout=8.0)  # backoff is capped at 5 s
        handle = await running.a.submit(numbered(files[0], 1))
        with anyio.fail_after(3):
            task = await handle.wait()
    assert task.status == TaskStatus.SUCCEEDED
    assert running.receiver_a.outcomes == {"relay_accepted": 1}


# -- configuration and secrets ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"relay": "redis://127.0.0.1:6379/0"}, "secret"),
        ({"relay": "http://127.0.0.1:6379/0", "secret": SECRET}, "relay"),
        ({"relay": "127.0.0.1:6379", "secret": SECRET}, "relay"),
        ({"relay": "redis://", "secret": SECRET}, "relay"),
        ({"relay": 6379, "secret": SECRET}, "relay"),
        (
            {"relay": "redis://127.0.0.1:6379/0", "secret": SECRET, "relay_channel": ""},
            "relay_channel",
        ),
    ],
)
def test_a_bad_relay_configuration_names_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"^{field}\b"):
        CallbackReceiver(**options)


@pytest.mark.parametrize(
    "url",
    [
        f"http://user:{PASSWORD}@127.0.0.1:6379/0",  # refused by the relay's check
        f"redis://:{PASSWORD}@127.0.0.1:notaport/0",  # refused by redis-py
    ],
)
def test_a_refused_relay_url_never_shows_its_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        CallbackReceiver(secret=SECRET, relay=url)
    assert "127.0.0.1" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(caught.value)


async def test_a_relay_password_is_never_shown(
    emulator: EmulatorServer,
    files: tuple[str, str],
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        await admin.config_set("requirepass", PASSWORD)
    finally:
        await admin.aclose()
    relay = redis_server.url.replace("redis://", f"redis://:{PASSWORD}@")
    wrong = redis_server.url.replace("redis://", "redis://:wrong-password@")
    async with replicas(emulator, relay) as running:
        # A replica with a wrong password opens anyway, and says why it hears nothing.
        locked_out = await running.mounted(emulator, wrong)
        handle = await running.a.submit(numbered(files[0], 1))
        with anyio.fail_after(3):
            await handle.wait()
        shown = [repr(receiver) for receiver in (running.receiver_a, running.receiver_b)]
        redis_server.stop()
        # Redis gone: B cannot publish A's next callback.
        await running.a.submit(numbered(files[0], 2))
        await until(lambda: running.receiver_b.outcomes["relay_down"] == 1)
    assert running.receiver_a.outcomes == {"relay_accepted": 1}
    assert locked_out.outcomes == {}
    assert all("relay=redis://***@127.0.0.1:" in text for text in shown)
    warnings = relay_records(caplog, logging.WARNING)
    assert len(warnings) == 3  # the locked-out replica, then A and B when Redis went away
    assert all("unreachable" in message for message in warnings)
    for text in (*shown, caplog.text):
        assert PASSWORD not in text
        assert "wrong-password" not in text
