"""Task callbacks over loopback: signed per-job URLs, delivery, forgeries, repeats, rejections.

A callback is only a hint: a verified one makes the manager read the task through ``detail``
at once, and the handle follows that answer. Most tests use a poll policy so slow (first read
and every interval 10 s of real time) that a job of half a second can only end in time through
its callback, and an emulator that sends none of its own when the test posts them by hand.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import socket
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

import aiohttp
import anyio
import pytest
from aiohttp import web

from chanjing_async import (
    AsyncChanjingClient,
    CallbackReceiver,
    ConfigurationError,
    CreateOutcomeUnknown,
    InvalidInputError,
    JobHandle,
    JobManager,
    JobStage,
    LipSyncRequest,
    LipSyncTask,
    PollPolicy,
    TaskStatus,
)
from chanjing_async.emulator import EmulatorServer, Fault
from tests.support import TIME_SCALE, VOICE, emulator_settings, make_client, until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, MutableMapping
    from pathlib import Path

pytestmark = pytest.mark.anyio

MAX_BODY = 64 * 1024  # the receiver's default max_body
# Ten real seconds before the first read and between reads; emulator tasks last 0.5 s.
SLOW = PollPolicy(
    first=600.0, min_interval=600.0, max_interval=600.0, callback_interval=600.0
).scaled(TIME_SCALE)
NORMAL = PollPolicy().scaled(TIME_SCALE)


# -- helpers ---------------------------------------------------------------------------------


@dataclass
class Quiet:
    """An emulator that drops every callback, a client of it and a ready video file."""

    emulator: EmulatorServer
    client: AsyncChanjingClient
    video_id: str


@pytest.fixture
async def quiet(media: tuple[Path, Path]) -> AsyncIterator[Quiet]:
    """Only the test's own requests reach the receiver: the emulator drops its callbacks."""
    settings = emulator_settings(callbacks=False)
    async with EmulatorServer(settings) as emulator, make_client(emulator.base_url) as client:
        video = await client.files.upload(media[0], service="lip_sync_video", poll_interval=0.02)
        yield Quiet(emulator, client, video.id)


def tts(video_id: str) -> LipSyncRequest:
    return LipSyncRequest.tts(video_id, text="你好", audio_man_id=VOICE)


def envelope(task: LipSyncTask) -> dict[str, Any]:
    """A callback body as Chanjing sends it: the detail envelope around the task object."""
    return {"trace_id": uuid.uuid4().hex, "code": 0, "msg": "success", "data": task.model_dump()}


def claimed(task_id: str, status: int = TaskStatus.SUCCEEDED) -> LipSyncTask:
    """A task object claiming ``status`` (a body anyone could write)."""
    done = status == TaskStatus.SUCCEEDED
    return LipSyncTask(
        id=task_id,
        status=status,
        progress=100 if done else 50,
        video_url="https://evil.example/fake.mp4" if done else "",
    )


def sig_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["sig"][0]


def with_query(url: str, query: str) -> str:
    return urlunsplit(urlsplit(url)._replace(query=query))


def snapshot(handle: JobHandle) -> tuple[object, ...]:
    return (handle.stage, handle.progress, handle.last, handle.done, handle.error)


async def created(handle: JobHandle) -> str:
    """The job's task id, once its create has been answered."""
    await until(lambda: handle.task_id is not None)
    assert handle.task_id is not None
    return handle.task_id


async def ended_on_server(client: AsyncChanjingClient, task_id: str) -> LipSyncTask:
    """The task object once the emulator has ended it (read by the test, not the poller)."""
    with anyio.fail_after(3):
        while True:
            task = await client.lip_sync.get(task_id)
            if task.is_terminal:
                return task
            await anyio.sleep(0.05)


async def answer(
    url: str,
    body: object = None,
    *,
    method: str = "POST",
    content_type: str = "application/json",
) -> tuple[int, bytes]:
    """Send one request to a callback URL; ``body`` is JSON-encoded unless it is bytes or a
    stream (an async iterator of bytes, sent chunked)."""
    data = body if body is None or isinstance(body, bytes) or hasattr(body, "__aiter__") else None
    if data is None and body is not None:
        data = json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=data, headers={"Content-Type": content_type}) as resp,
    ):
        return resp.status, await resp.read()


async def post(url: str, body: object, *, content_type: str = "application/json") -> int:
    status, _ = await answer(url, body, content_type=content_type)
    return status


async def in_pieces(data: bytes, *, pieces: int, pause: float = 0.02) -> AsyncIterator[bytes]:
    """``data`` in ``pieces`` chunks with a pause between them, as a slow network delivers it."""
    size = -(-len(data) // pieces)
    for start in range(0, len(data), size):
        if start:
            await anyio.sleep(pause)
        yield data[start : start + size]


# -- delivery --------------------------------------------------------------------------------


async def test_results_arrive_through_callbacks(
    client: AsyncChanjingClient,
    emulator: EmulatorServer,
    files: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = CallbackReceiver()
    started = anyio.current_time()
    async with JobManager(client, callbacks=receiver, poll=SLOW) as jobs:
        handles = await jobs.submit_many([tts(files[0]) for _ in range(5)])
        with anyio.fail_after(3):  # the first poll would come after 10 s
            tasks = [await handle.wait() for handle in handles]
        elapsed = anyio.current_time() - started
        stats = jobs.stats
        urls = [receiver.url_for(handle.key) for handle in handles]
    assert elapsed < SLOW.first
    assert [task.status for task in tasks] == [TaskStatus.SUCCEEDED] * 5
    assert all(task.video_url for task in tasks)
    assert [handle.stage for handle in handles] == [JobStage.SUCCEEDED] * 5
    # Each create carried its job's own signed URL, each callback woke one detail read.
    assert [emulator.state.tasks[task.id].callback for task in tasks] == urls
    assert urls[0].startswith(f"{receiver.public_url}/{handles[0].key}?sig=")
    assert len({sig_of(url) for url in urls}) == 5
    assert stats.callbacks == {"accepted": 5}
    assert (stats.poll.detail_calls, stats.poll.list_calls, stats.poll.errors) == (5, 0, 0)
    await until(lambda: emulator.state.stats()["callbacks_sent"] == 5)
    assert emulator.state.stats()["callbacks_failed"] == 0
    # The standalone server keeps no access log: no signature reaches any log record.
    assert not [url for url in urls if sig_of(url) in caplog.text]


async def test_polling_finishes_jobs_whose_callbacks_never_come(quiet: Quiet) -> None:
    receiver = CallbackReceiver()
    async with JobManager(quiet.client, callbacks=receiver, poll=NORMAL) as jobs:
        handles = await jobs.submit_many([tts(quiet.video_id) for _ in range(3)])
        with anyio.fail_after(4):
            tasks = [await handle.wait() for handle in handles]
        stats = jobs.stats
    assert [task.status for task in tasks] == [TaskStatus.SUCCEEDED] * 3
    assert receiver.outcomes == {}
    assert stats.poll.detail_calls + stats.poll.list_calls >= 3
    await until(lambda: quiet.emulator.state.stats()["callbacks_dropped"] == 3)
    assert quiet.emulator.state.stats()["callbacks_sent"] == 0


async def test_a_mounted_aiohttp_receiver_finishes_a_job(
    client: AsyncChanjingClient, emulator: EmulatorServer, files: tuple[str, str]
) -> None:
    # The public URL must be known before the app is built: hold the port with a bound socket.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    receiver = CallbackReceiver(f"http://127.0.0.1:{port}/hooks", serve=False)
    app = web.Application()
    app.add_subapp("/hooks", receiver.aiohttp_app())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        async with JobManager(client, callbacks=receiver, poll=SLOW) as jobs:
            handle = await jobs.submit(tts(files[0]))
            with anyio.fail_after(3):
                task = await handle.wait()
            stats = jobs.stats
        url = receiver.url_for(handle.key)
        # Once its manager has closed, the receiver knows no job: even a valid URL gets 404.
        after_close = await post(url, envelope(task))
    finally:
        await runner.cleanup()
    assert task.status == TaskStatus.SUCCEEDED
    assert emulator.state.tasks[task.id].callback == url
    assert url.startswith(f"http://127.0.0.1:{port}/hooks/{handle.key}?sig=")
    assert stats.callbacks == {"accepted": 1}
    assert (stats.poll.detail_calls, stats.poll.list_calls) == (1, 0)
    assert after_close == 404
    assert receiver.outcomes == {"accepted": 1, "unknown": 1}


# Keys a URL path cannot carry as they are (issue 14, defect 4): each is percent-encoded.
ODD_KEYS = ["a/b", "a#b", "a?b=c&sig=x", "a b", "订单-17", "a%2Fb", "a+b;c", "..."]


async def test_keys_needing_escapes_get_their_callbacks(
    client: AsyncChanjingClient, emulator: EmulatorServer, files: tuple[str, str]
) -> None:
    secret = b"k" * 32
    receiver = CallbackReceiver(secret=secret)
    async with JobManager(client, callbacks=receiver, poll=SLOW) as jobs:
        handles = await jobs.submit_many([tts(files[0]) for _ in ODD_KEYS], keys=ODD_KEYS)
        with anyio.fail_after(3):  # the first poll would come after 10 s: callbacks end them
            tasks = [await handle.wait() for handle in handles]
        stats = jobs.stats
    assert stats.callbacks == {"accepted": len(ODD_KEYS)}
    for key, task in zip(ODD_KEYS, tasks, strict=True):
        url = emulator.state.tasks[task.id].callback
        assert url is not None
        assert url == f"{receiver.public_url}/{quote(key, safe='')}?sig={sig_of(url)}"
        # The signature is over the key itself, not its escaped form.
        assert sig_of(url) == hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()
    assert (stats.poll.detail_calls, stats.poll.list_calls) == (len(ODD_KEYS), 0)


async def test_dot_keys_are_refused_with_callbacks(client: AsyncChanjingClient) -> None:
    # "." and ".." are resolved away by HTTP clients, escaped (%2E) or not.
    async with JobManager(client, callbacks=CallbackReceiver(), poll=SLOW) as jobs:
        for key in (".", ".."):
            with pytest.raises(InvalidInputError, match=re.escape("'.' or '..'")) as caught:
                await jobs.submit(tts("e284db4d95de4220afe78132158156b5"), key=key)
            assert (caught.value.field, caught.value.value) == ("key", key)
        assert jobs.unfinished == 0


def test_a_receiver_not_started_refuses_a_bad_key_as_bad_input() -> None:
    # The key is checked before the URL is read: a bad key is the caller's mistake either way.
    receiver = CallbackReceiver()
    for key in ("..", "k" * 513):
        with pytest.raises(InvalidInputError) as caught:
            receiver.url_for(key)
        assert caught.value.field == "key"
    with pytest.raises(RuntimeError, match="once its server has started"):
        receiver.url_for("fine")


async def test_an_escaped_key_through_the_asgi_front_end(quiet: Quiet) -> None:
    receiver = CallbackReceiver("https://app.example/hooks", serve=False)
    key = "orders/17?x#y 订单"
    async with JobManager(quiet.client, callbacks=receiver, poll=SLOW) as jobs:
        handle = await jobs.submit(tts(quiet.video_id), key=key)
        task = await ended_on_server(quiet.client, await created(handle))
        body = json.dumps(envelope(task)).encode()
        sent = await asgi_call(receiver, receiver.url_for(key), chunks=(body,))
        with anyio.fail_after(2):
            assert (await handle.wait()).id == task.id
    assert status_of(sent) == 200
    assert receiver.outcomes == {"accepted": 1}


async def test_one_receiver_serves_one_manager(client: AsyncChanjingClient) -> None:
    receiver = CallbackReceiver()
    with pytest.raises(RuntimeError, match="once its server has started"):
        _ = receiver.public_url
    async with JobManager(client, callbacks=receiver):
        assert receiver.public_url.startswith("http://127.0.0.1:")
        with pytest.raises(RuntimeError, match="one JobManager"):
            async with JobManager(client, callbacks=receiver):
                pass


# -- what a callback can and cannot do -------------------------------------------------------


async def test_a_forged_callback_is_a_bare_404_and_changes_nothing(
    quiet: Quiet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = CallbackReceiver()
    async with JobManager(quiet.client, callbacks=receiver, poll=SLOW) as jobs:
        handle = await jobs.submit(tts(quiet.video_id))
        task_id = await created(handle)
        before = snapshot(handle)
        url = receiver.url_for(handle.key)
        good = sig_of(url)
        flipped = good[:-1] + ("0" if good[-1] != "0" else "1")
        forged = [
            with_query(url, "sig=" + "0" * 64),
            with_query(url, "sig=" + flipped),
            with_query(url, "sig=" + good.upper()),
            with_query(url, ""),
            with_query(url, "sig=%C3%A9" + good[2:]),  # not ASCII: still a bare 404, not a 500
            # A URL minted by another receiver (another secret) for this very job.
            CallbackReceiver(receiver.public_url, serve=False).url_for(handle.key),
        ]
        body = envelope(claimed(task_id))
        answers = [await answer(forgery, body) for forgery in forged]
        # A correctly signed URL of a job this manager never had answers the same.
        unknown = await answer(receiver.url_for(uuid.uuid4().hex), body)
        after = snapshot(handle)
        detail_calls = jobs.stats.poll.detail_calls
    assert answers == [(404, b"")] * 6
    assert unknown == (404, b"")
    assert receiver.outcomes == {"forged": 6, "unknown": 1}
    assert after == before
    assert before[:4] == (JobStage.SUBMITTED, 0, None, False)
    assert detail_calls == 0  # nothing woke the poller
    assert "callback rejected: forged (HTTP 404)" in caplog.text
    assert good not in caplog.text


async def test_a_stolen_url_cannot_fake_a_result(quiet: Quiet) -> None:
    receiver = CallbackReceiver(repeat_interval=1.0)
    async with JobManager(quiet.client, callbacks=receiver, poll=SLOW) as jobs:
        handle = await jobs.submit(tts(quiet.video_id))
        task_id = await created(handle)
        # A valid URL with a made-up body claiming success while the task still runs.
        status = await post(receiver.url_for(handle.key), envelope(claimed(task_id)))
        await until(lambda: handle.last is not None)
        detail_calls = jobs.stats.poll.detail_calls
        assert handle.last is not None
        read = handle.last
        done = handle.done
        # The forgery did not use up the status: the real callback, once the task has ended
        # (0.5 s), comes within the repeat interval of the forgery (1 s), so it is held, and
        # handed on when the interval ends: a new hint, not a duplicate, and it finishes the job.
        real = await ended_on_server(quiet.client, task_id)
        assert await post(receiver.url_for(handle.key), envelope(real)) == 200
        held = dict(receiver.outcomes)
        finished = await handle.wait(timeout=2)
    assert status == 200
    assert held == {"accepted": 1, "repeat": 1}
    assert receiver.outcomes == {"accepted": 2, "repeat": 1}
    assert detail_calls == 1
    # The handle followed what detail answered, not what the body claimed.
    assert not done
    assert read.status in (TaskStatus.QUEUED, TaskStatus.GENERATING)
    assert read.video_url == ""
    assert finished.video_url.startswith(quiet.emulator.base_url)


async def test_a_repeated_callback_is_acknowledged_and_read_once(quiet: Quiet) -> None:
    receiver = CallbackReceiver()
    async with JobManager(quiet.client, callbacks=receiver, poll=SLOW) as jobs:
        handle = await jobs.submit(tts(quiet.video_id))
        task = await ended_on_server(quiet.client, await created(handle))
        url = receiver.url_for(handle.key)
        first = await post(url, envelope(task))
        second = await post(url, envelope(task))
        with anyio.fail_after(2):
            result = await handle.wait()
        # A late repeat, after the job ended, is still a duplicate rather than unknown.
        late = await post(url, envelope(task))
        stats = jobs.stats
    assert (first, second, late) == (200, 200, 200)
    # Within the repeat interval (10 s) of the first: held, and dropped when the manager closed.
    assert receiver.outcomes == {"accepted": 1, "repeat": 2}
    assert (stats.poll.detail_calls, stats.poll.list_calls) == (1, 0)
    assert result.id == task.id
    assert result.status == TaskStatus.SUCCEEDED
    assert result.video_url == task.video_url


@pytest.mark.parametrize(
    ("shape", "content_type"),
    [
        ("envelope", "application/json"),
        ("bare task", "application/json"),
        ("envelope", "Application/JSON; charset=utf-8"),
    ],
)
async def test_accepted_body_shapes_and_content_types(
    quiet: Quiet, shape: str, content_type: str
) -> None:
    receiver = CallbackReceiver()
    async with JobManager(quiet.client, callbacks=receiver, poll=SLOW) as jobs:
        handle = await jobs.submit(tts(quiet.video_id))
        task = claimed(await created(handle), TaskStatus.GENERATING)
        body = envelope(task) if shape == "envelope" else task.model_dump()
        status = await post(receiver.url_for(handle.key), body, content_type=content_type)
        await until(lambda: jobs.stats.poll.detail_calls == 1)
    assert status == 200
    assert receiver.outcomes == {"accepted": 1}


def _body(task_id: str) -> bytes:
    return json.dumps(envelope(claimed(task_id))).encode()


@pytest.mark.parametrize(
    ("method", "content_type", "make_body", "status", "outcome"),
    [
        pytest.param("POST", "text/plain", _body, 415, "bad_type", id="text-plain"),
        pytest.param(
            "POST", "application/x-www-form-urlencoded", _body, 415, "bad_type", id="form"
        ),
        pytest.param(
            "POST",
            "application/json",
            lambda _: b" " * (MAX_BODY + 1),
            413,
            "too_large",
            id="oversized",
        ),
        pytest.param("GET", "application/json", lambda _: None, 405, "bad_method", id="get"),
        pytest.param("PUT", "application/json", _body, 405, "bad_method", id="put"),
        pytest.param("POST", "application/json", lambda _: b"done!", 400, "bad_body", id="text"),
        pytest.param("POST", "application/json", lambda _: b"\xff\xfe", 400, "bad_body", id="bin"),
        pytest.param("POST", "application/json", lambda _: b"[1, 2]", 400, "bad_body", id="list"),
        pytest.param("POST", "application/json", lambda _: b"null", 400, "bad_body", id="null"),
        pytest.param(
            "POST",
            "application/json",
            lambda _: b'{"hello": "world"}',
            400,
            "bad_body",
            id="no-task",
        ),
        pytest.param(
            "POST",
            "application/json",
            lambda _: b'{"code": 0, "msg": "success", "data": null}',
            400,
            "bad_body",
            id="empty-envelope",
        ),
        pytest.param(
            "POST",
            "application/json",
            lambda task_id: json.dumps({"code": 0, "data": {"id": task_id}}).encode(),
            400,
            "bad_body",
            id="no-status",
        ),
        pytest.param(
            "POST",
            "application/json",
            lambda _: _body("another-task-id"),
            400,
            "mismatch",
            id="another-task",
        ),
    ],
)
async def test_rejected_requests_change_nothing(
    quiet: Quiet,
    method: str,
    content_type: str,
    make_body: Callable[[str], bytes | None],
    status: int,
    outcome: str,
) -> None:
    receiver = CallbackReceiver()
    async with JobManager(quiet.client, callbacks=receiver, poll=SLOW) as jobs:
        handle = await jobs.submit(tts(quiet.video_id))
        task_id = await created(handle)
        before = snapshot(handle)
        url = receiver.url_for(handle.key)
        got, _ = await answer(url, make_body(task_id), method=method, content_type=content_type)
        await anyio.sleep(0.02)  # a wrongly started confirmation would show by now
        after = snapshot(handle)
        detail_calls = jobs.stats.poll.detail_calls
    assert got == status
    assert receiver.outcomes == {outcome: 1}
    assert after == before
    assert detail_calls == 0


async def test_a_body_arriving_in_pieces_is_read_whole(quiet: Quiet) -> None:
    receiver = CallbackReceiver()
    async with JobManager(quiet.client, callbacks=receiver, poll=SLOW) as jobs:
        handle = await jobs.submit(tts(quiet.video_id))
        task = await ended_on_server(quiet.client, await created(handle))
        body = json.dumps(envelope(task)).encode()
        status = await post(receiver.url_for(handle.key), in_pieces(body, pieces=2))
        assert (status, dict(receiver.outcomes)) == (200, {"accepted": 1})
        with anyio.fail_after(2):
            result = await handle.wait()
    assert result.status == TaskStatus.SUCCEEDED


async def test_an_oversized_body_without_a_length_is_413(quiet: Quiet) -> None:
    receiver = CallbackReceiver()
    async with JobManager(quiet.client, callbacks=receiver, poll=SLOW) as jobs:
        handle = await jobs.submit(tts(quiet.video_id))
        await created(handle)
        # Chunked: no Content-Length announces the size, the receiver must count.
        big = b" " * (2 * MAX_BODY)
        status = await post(receiver.url_for(handle.key), in_pieces(big, pieces=16, pause=0.002))
    assert (status, dict(receiver.outcomes)) == (413, {"too_large": 1})


# -- ASGI ------------------------------------------------------------------------------------


async def asgi_call(
    receiver: CallbackReceiver,
    url: str,
    *,
    method: str = "POST",
    content_type: str = "application/json",
    chunks: tuple[bytes, ...] = (b"",),
) -> list[MutableMapping[str, Any]]:
    """One request through ``receiver.asgi`` as an ASGI server would make it; the messages
    the application sent back."""
    parts = urlsplit(url)
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": parts.scheme,
        "path": unquote(parts.path),  # ASGI servers decode the path, and keep it in raw_path
        "raw_path": parts.path.encode(),
        "query_string": parts.query.encode(),
        "root_path": "",
        "headers": [(b"host", parts.netloc.encode()), (b"content-type", content_type.encode())],
        "client": ("127.0.0.1", 50000),
        "server": (parts.hostname, 443),
    }
    incoming: list[MutableMapping[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await receiver.asgi(scope, receive, send)
    return sent


def status_of(sent: list[MutableMapping[str, Any]]) -> int:
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    status: int = sent[0]["status"]
    return status


async def test_the_asgi_front_end(quiet: Quiet) -> None:
    receiver = CallbackReceiver("https://app.example/hooks", serve=False)
    async with JobManager(quiet.client, callbacks=receiver, poll=SLOW) as jobs:
        handle = await jobs.submit(tts(quiet.video_id))
        task = await ended_on_server(quiet.client, await created(handle))
        url = receiver.url_for(handle.key)
        body = json.dumps(envelope(task)).encode()
        half = len(body) // 2
        forged = await asgi_call(receiver, with_query(url, "sig=" + "0" * 64), chunks=(body,))
        get = await asgi_call(receiver, url, method="GET")
        plain = await asgi_call(receiver, url, content_type="text/plain", chunks=(body,))
        big = await asgi_call(receiver, url, chunks=(b" " * MAX_BODY, b" " * MAX_BODY))
        untouched = snapshot(handle)
        # Valid, its body in two messages (more_body), as ASGI servers stream it.
        valid = await asgi_call(receiver, url, chunks=(body[:half], body[half:]))
        with anyio.fail_after(2):
            result = await handle.wait()
        lifespan: list[MutableMapping[str, Any]] = []

        async def nothing() -> MutableMapping[str, Any]:
            return {"type": "lifespan.startup"}

        async def record(message: MutableMapping[str, Any]) -> None:
            lifespan.append(message)

        await receiver.asgi({"type": "lifespan"}, nothing, record)
        stats = jobs.stats
    assert [status_of(sent) for sent in (forged, get, plain, big, valid)] == [
        404,
        405,
        415,
        413,
        200,
    ]
    assert untouched[:4] == (JobStage.SUBMITTED, 0, None, False)
    assert result.id == task.id
    assert result.status == TaskStatus.SUCCEEDED
    assert (stats.poll.detail_calls, stats.poll.list_calls) == (1, 0)
    assert receiver.outcomes == {
        "forged": 1,
        "bad_method": 1,
        "bad_type": 1,
        "too_large": 1,
        "accepted": 1,
    }
    assert lifespan == []  # not an HTTP scope: ignored


# -- configuration and secrets ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"serve": False}, "public_url"),
        ({"public_url": "https://jobs.example.com/hooks?token=1"}, "public_url"),
        ({"public_url": "ftp://jobs.example.com/hooks"}, "public_url"),
        ({"public_url": "jobs.example.com/hooks"}, "public_url"),
        ({"port": 65536}, "port"),
        ({"port": -1}, "port"),
        ({"port": "8080"}, "port"),
        ({"port": True}, "port"),
        ({"secret": b"fifteen bytes.."}, "secret"),
        ({"secret": "a str of more than sixteen chars"}, "secret"),
        ({"max_body": 1023}, "max_body"),
        ({"max_connections": 0}, "max_connections"),
        ({"max_connections": 12.5}, "max_connections"),
        ({"header_timeout": 0}, "header_timeout"),
        ({"header_timeout": float("nan")}, "header_timeout"),
        ({"idle_timeout": -1.0}, "idle_timeout"),
        ({"idle_timeout": "15"}, "idle_timeout"),
        ({"repeat_interval": -0.5}, "repeat_interval"),
        ({"repeat_interval": float("inf")}, "repeat_interval"),
    ],
)
def test_a_bad_configuration_names_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"^{field}\b"):
        CallbackReceiver(**options)


def test_urls_are_signed_per_key_and_the_signature_is_never_shown() -> None:
    secret = b"s3cr3t-" * 5
    receiver = CallbackReceiver("https://jobs.example.com/hooks/", serve=False, secret=secret)
    url_a, url_b = receiver.url_for("job-a"), receiver.url_for("job-b")
    assert url_a.startswith("https://jobs.example.com/hooks/job-a?sig=")
    sig_a = sig_of(url_a)
    expected = hmac.new(secret, b"job-a", hashlib.sha256).hexdigest()
    assert hmac.compare_digest(sig_a, expected)
    assert sig_a != sig_of(url_b)
    # Replicas sharing the secret mint the same URL; a receiver with its own secret does not.
    replica = CallbackReceiver("https://jobs.example.com/hooks", serve=False, secret=secret)
    stranger = CallbackReceiver("https://jobs.example.com/hooks", serve=False)
    assert replica.url_for("job-a") == url_a
    assert stranger.url_for("job-a") != url_a
    shown = repr(receiver)
    assert "jobs.example.com" in shown
    assert sig_a not in shown
    assert secret.hex() not in shown
    assert "s3cr3t" not in shown


async def test_an_ambiguous_create_never_shows_the_callback_signature(
    client: AsyncChanjingClient,
    emulator: EmulatorServer,
    files: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = CallbackReceiver("https://jobs.example.com/hooks", serve=False)
    url = receiver.url_for("job-1")
    emulator.inject(Fault(endpoint="create", kind="drop_after", count=1))
    request = tts(files[0]).model_copy(update={"callback": url})
    with pytest.raises(CreateOutcomeUnknown) as caught:
        await client.lip_sync.create(request)
    unknown = caught.value
    assert unknown.request["callback"] == "https://jobs.example.com/hooks/job-1?<redacted>"
    # The create did reach the server with the full signed URL.
    (task,) = emulator.state.tasks.values()
    assert task.callback == url
    sig = sig_of(url)
    for text in (str(unknown), repr(unknown), repr(unknown.request), caplog.text):
        assert sig not in text
