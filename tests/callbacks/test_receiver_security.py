"""The callback receiver facing hostile clients (issue 15: findings 1, 4, 6 and 12).

Over loopback against the real emulator: garbage on a valid URL never escapes the app nor ends
the manager; slow and flooding clients (another process, ``tests/support/slow_clients.py``, so that
their descriptors are not counted as ours) hold neither our descriptors nor the door shut on
callbacks; a leaked URL posted 100 times costs one ``detail`` read; a flood of forged and
malformed requests writes a handful of log records while the receiver counts every one.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from chanjing_async import CallbackReceiver, InvalidInputError, JobManager, TaskStatus
from chanjing_async._bounded_log import BoundedLog
from chanjing_async.callbacks._guard import BACKLOG
from chanjing_async.callbacks._repeats import MAX_PAIRS, RepeatGate
from chanjing_async.emulator import EmulatorServer
from tests.callbacks.test_callbacks import (
    SLOW,
    asgi_call,
    claimed,
    created,
    ended_on_server,
    envelope,
    post,
    status_of,
    tts,
    with_query,
)
from tests.support import emulator_settings, make_client

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from chanjing_async import AsyncChanjingClient, JobHandle

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

NESTED = b"[" * 50_000  # deeper than the JSON parser's stack, smaller than max_body (64 KiB)
GARBAGE = [
    NESTED,
    b'{"code": 0, "msg": "success", "data": ' + NESTED,
    b'{"code": 0, "data": {"id": "x", "status": 1' + b"0" * 5000 + b"}}",  # a 5,000-digit int
]


@dataclass
class Setup:
    """An emulator, a client of it and a ready video file."""

    emulator: EmulatorServer
    client: AsyncChanjingClient
    video_id: str


@asynccontextmanager
async def running(media: tuple[Path, Path], **settings: Any) -> AsyncIterator[Setup]:
    async with (
        EmulatorServer(emulator_settings(**settings)) as emulator,
        make_client(emulator.base_url) as client,
    ):
        video = await client.files.upload(media[0], service="lip_sync_video", poll_interval=0.02)
        yield Setup(emulator, client, video.id)


@dataclass
class OneJob:
    """A quiet emulator (the test posts the callbacks), a manager whose first poll would come
    after 10 s, and one job of it whose task exists."""

    setup: Setup
    jobs: JobManager
    handle: JobHandle
    task_id: str
    url: str


@asynccontextmanager
async def one_job(
    media: tuple[Path, Path], receiver: CallbackReceiver, **settings: Any
) -> AsyncIterator[OneJob]:
    async with (
        running(media, callbacks=False, **settings) as setup,
        JobManager(setup.client, callbacks=receiver, poll=SLOW) as jobs,
    ):
        handle = await jobs.submit(tts(setup.video_id))
        task_id = await created(handle)
        yield OneJob(setup, jobs, handle, task_id, receiver.url_for(handle.key))


def severe(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


async def send(receiver: CallbackReceiver, url: str, body: bytes) -> int:
    """POST ``body`` as JSON to ``url``: over HTTP to a standalone receiver, else through ASGI."""
    if receiver.serve:
        return await post(url, body)
    return status_of(await asgi_call(receiver, url, chunks=(body,)))


def detail_reads(emulator: EmulatorServer) -> int:
    reads: int = emulator.state.stats()["endpoints"]["detail"]["requests"]
    return reads


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- finding 1: no input ends the manager or escapes the app ---------------------------------


@pytest.mark.parametrize("serve", [True, False], ids=["aiohttp", "asgi"])
async def test_deeply_nested_json_on_a_valid_url_is_400_and_the_job_goes_on(
    media: tuple[Path, Path], caplog: pytest.LogCaptureFixture, serve: bool
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = (
        CallbackReceiver() if serve else CallbackReceiver("https://app.example/h", serve=False)
    )
    async with one_job(media, receiver) as job:
        statuses = [await send(receiver, job.url, body) for body in GARBAGE]
        # The manager is still open: the real callback ends the job at once.
        real = await ended_on_server(job.setup.client, job.task_id)
        last = await send(receiver, job.url, json.dumps(envelope(real)).encode())
        finished = await job.handle.wait(timeout=2)
    assert statuses == [400] * len(GARBAGE)
    assert last == 200
    assert finished.status == TaskStatus.SUCCEEDED
    assert receiver.outcomes == {"bad_body": len(GARBAGE), "accepted": 1}
    assert severe(caplog) == []


# -- finding 4: slow and flooding clients hold neither descriptors nor the door ------------


class Descriptors:
    """The most descriptors this process had open while :meth:`watch` ran."""

    def __init__(self) -> None:
        self.baseline = self.peak = open_descriptors()

    async def watch(self) -> None:
        while True:
            self.peak = max(self.peak, open_descriptors())
            await anyio.sleep(0.01)


@dataclass
class Attack:
    """A manager under attack, its emulator, our descriptors and the attacker's output."""

    setup: Setup
    jobs: JobManager
    fds: Descriptors
    output: BufferedByteReceiveStream


@asynccontextmanager
async def attacked(
    media: tuple[Path, Path],
    receiver: CallbackReceiver,
    connections: int,
    seconds: float,
    mode: str,
) -> AsyncIterator[Attack]:
    """A manager with ``receiver`` (the emulator's callbacks reach it; its first poll would
    come after 10 s) while ``tests/support/slow_clients.py`` holds ``connections`` to it."""
    async with (
        running(media) as setup,
        JobManager(setup.client, callbacks=receiver, poll=SLOW) as jobs,
        anyio.create_task_group() as group,
    ):
        fds = Descriptors()
        group.start_soon(fds.watch)
        port = str(urlsplit(receiver.public_url).port)
        argv = [sys.executable, "-m", "tests.support.slow_clients", port, str(connections)]
        async with await anyio.open_process([*argv, str(seconds), mode], stderr=None) as process:
            assert process.stdout is not None
            output = BufferedByteReceiveStream(process.stdout)
            try:
                assert await line_of(output) == {"open": connections}
                yield Attack(setup, jobs, fds, output)
            finally:
                process.kill()
        group.cancel_scope.cancel()


async def line_of(output: BufferedByteReceiveStream) -> dict[str, Any]:
    """The attacker's next line: at the end, what the server closed, when, what stayed open."""
    line: dict[str, Any] = json.loads(await output.receive_until(b"\n", 1 << 20))
    return line


async def test_slow_clients_are_closed_in_time_and_callbacks_still_arrive(
    media: tuple[Path, Path],
) -> None:
    receiver = CallbackReceiver(header_timeout=3.0)  # default cap: 128 connections
    async with attacked(media, receiver, 300, 5.0, "slow") as attack:  # a byte a second each
        handles = await attack.jobs.submit_many([tts(attack.setup.video_id) for _ in range(5)])
        with anyio.fail_after(3):  # the first poll would come after 10 s: callbacks end them
            tasks = [await handle.wait() for handle in handles]
        timed_out_meanwhile = receiver.outcomes["slow_head"]
        held = await line_of(attack.output)
        stats = attack.jobs.stats
    assert [task.status for task in tasks] == [TaskStatus.SUCCEEDED] * 5
    assert stats.callbacks["accepted"] == 5  # through callbacks,
    assert timed_out_meanwhile == 0  # while the slow clients still held their connections
    assert (held["closed"], held["still_open"]) == (300, 0)
    assert held["close_times"][-1] <= 3.0 + 1.5  # header_timeout, and some slack
    # 300 clients beyond the cap of 128: the oldest made room for newer ones.
    assert receiver.outcomes["evicted"] >= 300 - 128
    assert receiver.outcomes["evicted"] + receiver.outcomes["slow_head"] >= 300
    # Ours: the cap, one accept batch not yet seen by the guard, the emulator's callbacks (both
    # ends) and the client's API connections.
    assert attack.fds.peak - attack.fds.baseline <= 128 + BACKLOG + 32


async def test_a_flood_beyond_the_cap_is_closed_and_callbacks_get_through(
    media: tuple[Path, Path],
) -> None:
    receiver = CallbackReceiver(max_connections=32)  # header_timeout: 10 s, longer than the test
    async with attacked(media, receiver, 200, 2.0, "idle") as attack:  # connect, send nothing
        handle = await attack.jobs.submit(tts(attack.setup.video_id))
        with anyio.fail_after(3):  # its callback takes the place of the oldest idle one
            task = await handle.wait()
        held = await line_of(attack.output)
        stats = attack.jobs.stats
    assert task.status == TaskStatus.SUCCEEDED
    assert stats.callbacks["accepted"] == 1
    # 168 closed as the flood came in, one more for the callback; the newest 31 stay open.
    assert held["closed"] >= 200 - 32
    assert sorted(held["close_times"])[200 - 32 - 1] < 1.5
    assert held["still_open"] <= 32
    assert receiver.outcomes["evicted"] == held["closed"]
    assert attack.fds.peak - attack.fds.baseline <= 32 + 32


async def test_an_idle_keep_alive_connection_is_closed(media: tuple[Path, Path]) -> None:
    receiver = CallbackReceiver(idle_timeout=0.5)
    async with one_job(media, receiver) as job:
        url = urlsplit(with_query(job.url, "sig=" + "0" * 64))
        assert url.port is not None
        stream = await anyio.connect_tcp("127.0.0.1", url.port)
        head = f"POST {url.path}?{url.query} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        await stream.send(head.encode())
        answer = await stream.receive()
        answered = time.monotonic()
        with anyio.fail_after(3), pytest.raises(anyio.EndOfStream):
            await stream.receive()  # kept alive, then closed for idling
        idle = time.monotonic() - answered
        await stream.aclose()
    assert answer.startswith(b"HTTP/1.1 404 ")
    assert 0.4 <= idle < 1.5
    assert receiver.outcomes == {"forged": 1, "idle": 1}


async def test_a_body_slower_than_the_header_timeout_is_408(media: tuple[Path, Path]) -> None:
    receiver = CallbackReceiver(header_timeout=0.5)
    async with one_job(media, receiver) as job:
        url = urlsplit(job.url)
        assert url.port is not None
        stream = await anyio.connect_tcp("127.0.0.1", url.port)
        head = (
            f"POST {url.path}?{url.query} HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        )
        await stream.send(head.encode())
        sent = time.monotonic()
        with anyio.fail_after(3):
            while True:  # a byte every 0.1 s: the body would take 10 s
                with anyio.move_on_after(0.1):
                    answer = await stream.receive()
                    break
                await stream.send(b" ")
        waited = time.monotonic() - sent
        await stream.aclose()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert 0.4 <= waited < 1.5
    assert receiver.outcomes == {"slow_body": 1}


# -- finding 6: a leaked URL cannot spend the read budget -------------------------------------


async def test_repeated_callbacks_cost_one_read_and_the_job_still_completes(
    media: tuple[Path, Path],
) -> None:
    receiver = CallbackReceiver(repeat_interval=3.0)  # default 10 s; shortened for the test
    async with one_job(media, receiver, task_seconds=120.0) as job:  # tasks of 2 s
        before = detail_reads(job.setup.emulator)
        # A leaked URL, posted 100 times with a body claiming success while the task runs.
        forged = envelope(claimed(job.task_id))
        statuses = []
        for _ in range(100):
            statuses.append(await post(job.url, forged))
            await anyio.sleep(0.005)  # each read a callback started has time to end
        await anyio.sleep(0.05)
        reads = detail_reads(job.setup.emulator) - before
        burst = dict(receiver.outcomes)
        running_still = not job.handle.done
        # The real callback comes within the interval of the first forgery: held, then handed
        # on when that interval ends (3 s after it), and it ends the job.
        real = await ended_on_server(job.setup.client, job.task_id)
        assert await post(job.url, envelope(real)) == 200
        finished = await job.handle.wait(timeout=3)
        stats = job.jobs.stats
    assert statuses == [200] * 100
    assert reads == 1
    assert burst == {"accepted": 1, "repeat": 99}
    assert running_still
    assert finished.status == TaskStatus.SUCCEEDED
    assert receiver.outcomes == {"accepted": 2, "repeat": 100}
    assert stats.poll.detail_calls == 2  # the forgery's read, then the real callback's


async def test_a_leaked_url_naming_made_up_tasks_costs_four_reads_and_records_nothing(
    media: tuple[Path, Path],
) -> None:
    # A callback naming a task its job does not hold would be a duplicate of its create: it is
    # read through detail before anything is recorded, four distinct ids per job at most.
    receiver = CallbackReceiver(repeat_interval=0)  # the receiver's own bound out of the way
    async with one_job(media, receiver) as job:
        before = detail_reads(job.setup.emulator)
        statuses = [
            await post(job.url, envelope(claimed(uuid.uuid4().hex, TaskStatus.QUEUED)))
            for _ in range(50)
        ]
        await anyio.sleep(0.2)  # the reads it started have ended
        reads = detail_reads(job.setup.emulator) - before
        duplicates = list(job.handle.duplicates)
        refused = job.jobs._claims.refused
    assert statuses == [400] * 50  # a task its job does not hold: mismatch
    assert reads == 4
    assert refused == 46
    assert duplicates == []  # the server knows none of them: nothing is recorded


async def test_a_leaked_url_naming_ever_new_task_ids_holds_bounded_memory(
    media: tuple[Path, Path],
) -> None:
    receiver = CallbackReceiver()
    async with one_job(media, receiver) as job:
        gate = receiver._repeats
        remembered = len(gate._last)
        # Ids longer than any task's (Chanjing's have 32 characters) are no callback.
        long_ids = [
            await post(job.url, envelope(claimed("x" * 60_000 + str(n), TaskStatus.QUEUED)))
            for n in range(50)
        ]
        after_long = len(gate._last)
    assert long_ids == [400] * 50
    assert receiver.outcomes["bad_body"] == 50
    assert after_long == remembered  # nothing of theirs is kept


async def test_the_repeat_gate_forgets_the_oldest_pairs_beyond_its_cap() -> None:
    handed: list[str] = []

    async def later() -> None:
        handed.append("late")

    gate = RepeatGate(0.2, lambda outcome, exc: None)
    async with anyio.create_task_group() as group:
        gate.open(group)
        admitted = sum(gate.admit("job", f"task-{n}", later) for n in range(MAX_PAIRS + 500))
        full = len(gate._last)
        newest = f"task-{MAX_PAIRS + 499}"
        assert not gate.admit("job", newest, later)  # a repeat within the interval: held
        await anyio.sleep(0.3)  # its interval ends: handed on, and the old pairs forgotten
        after = len(gate._last)
        gate.close()
    assert admitted == MAX_PAIRS + 500  # new pairs are never refused while old ones can go
    assert full == MAX_PAIRS
    assert handed == ["late"]
    assert after <= 1  # at most the pair just handed on: the memory came back


async def test_a_key_no_callback_url_can_carry_is_refused_at_submit(
    media: tuple[Path, Path],
) -> None:
    receiver = CallbackReceiver()
    async with (
        running(media, callbacks=False) as setup,
        JobManager(setup.client, callbacks=receiver, poll=SLOW) as jobs,
    ):
        with pytest.raises(InvalidInputError, match="at most 512 characters with callbacks"):
            await jobs.submit(tts(setup.video_id), key="k" * 513)
        handle = await jobs.submit(tts(setup.video_id), key="你" * 512)
    assert receiver.url_for(handle.key).count("%") == 512 * 3


# -- finding 12: floods are counted, and logged at a bounded rate ------------------------------

# Garbled before the handler (aiohttp's parser answers 400): TLS on the HTTP port, a header
# without a colon, a request line too long.
UNPARSABLE = [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32),
    b"GET /chanjing/callbacks/x HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
    b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
]
# Heads of requests whose body breaks off (the client ends its side): the handler's read fails.
BROKEN_OFF = [
    "Transfer-Encoding: chunked\r\n\r\n5\r\nab",
    "Content-Length: 10\r\n\r\nab",
]


async def malformed(port: int, request: bytes) -> bytes:
    """Send one garbled request on its own connection, end our side; the server's answer."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(request)
        await stream.send_eof()
        answer = b""
        with anyio.fail_after(3):
            try:
                while chunk := await stream.receive():
                    answer += chunk
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                pass
    return answer


async def test_a_flood_of_forged_and_malformed_requests_logs_a_handful_of_records(
    media: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = CallbackReceiver()
    async with one_job(media, receiver) as job:
        parts = urlsplit(job.url)
        assert parts.port is not None
        forged_url = with_query(job.url, "sig=" + "0" * 64)
        body = envelope(claimed(job.task_id))
        async with aiohttp.ClientSession() as session:
            for _ in range(1000):
                async with session.post(forged_url, json=body) as reply:
                    assert reply.status == 404
        head = f"POST {parts.path}?{parts.query} HTTP/1.1\r\nHost: x\r\n"
        head += "Content-Type: application/json\r\n"
        broken = [(head + rest).encode() for rest in BROKEN_OFF]
        answers = [
            await malformed(parts.port, request)
            for request in [*UNPARSABLE, *broken] * 40  # 200 requests
        ]
    records = [
        record
        for record in caplog.records
        if record.name.startswith(("chanjing_async", "aiohttp"))
        and "callback" in record.getMessage()
    ]
    assert len(records) <= 3  # one per kind: forged, malformed
    assert all(answer == b"" or answer.startswith(b"HTTP/1.0 400 ") for answer in answers)
    assert receiver.outcomes == {"forged": 1000, "malformed": 200}
    assert severe(caplog) == []
    assert "Traceback" not in caplog.text


def test_a_bounded_log_writes_the_first_record_then_one_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chanjing_async")
    log = BoundedLog(logging.getLogger("chanjing_async"), interval=0.2)
    for _ in range(50):
        log.note("forged", logging.INFO, "callback rejected: %s", "forged")
        log.note("bad_body", logging.INFO, "callback rejected: %s", "bad_body")
    time.sleep(0.25)
    log.note("forged", logging.INFO, "callback rejected: %s", "forged")
    messages = [record.getMessage() for record in caplog.records]
    assert messages[:2] == ["callback rejected: forged", "callback rejected: bad_body"]
    assert len(messages) == 3
    assert messages[2].startswith("callback rejected: forged (and 49 more like it in the last ")
