"""Result downloads are bounded and go only where the policy allows (issue 15, findings 2 and 8).

A small loopback server of this file plays a result host that cannot be trusted: huge, endless,
gzip-bombed, slow or redirecting bodies; a raw one sends answers byte for byte (header framings
aiohttp's server would not write). The 1 GiB download runs in a process of its own
(``tests/support/download_rss_worker.py``), whose peak resident size is read from ``/proc``. A batch
whose output subfolder is swapped for a symbolic link while it runs writes nothing outside its
output folder.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import math
import zlib
from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from benchmarks import _rss
from chanjing_async import (
    AsyncChanjingClient,
    ChanjingError,
    ConfigurationError,
    LipSyncTask,
    RequestTimeoutError,
    TransportError,
)
from chanjing_async.batch import BatchProgress, run_batch
from chanjing_async.batch._manifest import read_manifest
from chanjing_async.client import _output_files
from chanjing_async.client._downloads import (
    DownloadPolicy,
    DownloadRefusedError,
    DownloadTooLargeError,
)
from tests.support import JOB_POLL, VOICE, make_client
from tests.support.subprocess_worker import run_worker

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from chanjing_async.emulator import EmulatorServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

MIB = 1 << 20
GIB = 1 << 30


@functools.cache
def gzip_bomb() -> bytes:
    """64 MiB of zeros, gzipped to about 64 KB."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    return b"".join(packer.compress(bytes(MIB)) for _ in range(64)) + packer.flush()


class ResultHost:
    """A loopback result host; ``hits`` counts requests per route name."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.headers: list[dict[str, str]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        route = request.match_info["route"]
        self.hits[route] += 1
        self.headers.append(dict(request.headers))
        arg = request.match_info["arg"]
        if route == "small":
            return web.Response(body=b"x" * int(arg))
        if route == "hops":  # /hops/<n>: n redirects, then a small body
            left = int(arg)
            target = f"/hops/{left - 1}" if left > 1 else "/small/10"
            return web.Response(status=302, headers={"Location": target})
        if route == "to":  # a redirect to the URL in the query
            return web.Response(status=302, headers={"Location": request.query["url"]})
        if route == "bomb":
            return web.Response(body=gzip_bomb(), headers={"Content-Encoding": "gzip"})
        response = web.StreamResponse()
        if route == "announced":  # 10 GiB announced, nothing sent
            response.headers["Content-Length"] = str(10 * GIB)
            await response.prepare(request)
            await anyio.sleep_forever()
        await response.prepare(request)  # chunked
        while True:  # "endless": 64 KiB at a time; "trickle": a byte every 20 ms
            if route == "endless":
                await response.write(bytes(64 * 1024))
            else:
                await response.write(b"x")
                await anyio.sleep(0.02)


@pytest.fixture
async def host() -> AsyncIterator[ResultHost]:
    results = ResultHost()
    app = web.Application()
    app.router.add_get("/{route}/{arg}", results.handle)
    # A client that hangs up cancels its handler (the "announced" one waits forever).
    async with TestServer(app, handler_cancellation=True) as server:
        results.url = str(server.make_url("")).rstrip("/")
        yield results


class RawHost:
    """A loopback host answering each request with ``answer``, as it goes on the wire."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.answer = b""
        self.requests = 0

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            # The client hangs up as soon as it refuses the answer.
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                received = b""
                while b"\r\n\r\n" not in received:
                    received += await stream.receive()
                self.requests += 1
                await stream.send(self.answer)


@pytest.fixture
async def raw_host() -> AsyncIterator[RawHost]:
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        raw = RawHost(listener.extra(anyio.abc.SocketAttribute.local_port))
        async with anyio.create_task_group() as group:
            group.start_soon(listener.serve, raw.handle)
            yield raw
            group.cancel_scope.cancel()


def chunked(body: bytes) -> bytes:
    """``body`` in the chunked transfer coding, 64 KiB a chunk."""
    step = 64 * 1024
    pieces = (body[at : at + step] for at in range(0, len(body), step))
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def result(url: str) -> LipSyncTask:
    return LipSyncTask(id="t1", status=20, video_url=url)


async def fetch(url: str, out: Path, **policy: Any) -> Path:
    """Download ``url`` into ``out/clip.mp4`` with a client of the given policy."""
    base = policy.pop("base_url", url)
    async with make_client(base, downloads=DownloadPolicy(**policy)) as client:
        with anyio.fail_after(10):
            return await client.lip_sync.download(result(url), out / "clip.mp4")


def listing(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


# --------------------------------------------------------------------------------------------
# Size, encoding, time


@pytest.mark.skipif(not _rss.available(), reason="needs Linux /proc/self/clear_refs")
def test_a_1_gib_download_adds_at_most_64_mib_of_memory(tmp_path: Path) -> None:
    report = run_worker("tests.support.download_rss_worker", str(tmp_path), str(GIB))
    assert report["saved"] == GIB
    added = report["peak"] - report["before"]
    assert added <= 64 * MIB, f"{added / MIB:.0f} MiB added"


async def test_a_gzip_bomb_is_refused_not_expanded(host: ResultHost, tmp_path: Path) -> None:
    with pytest.raises(DownloadRefusedError, match="Content-Encoding 'gzip'"):
        await fetch(f"{host.url}/bomb/0", tmp_path)
    assert host.headers[-1]["Accept-Encoding"] == "identity"
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    ("head", "framing", "refused"),
    [
        (
            "Content-Encoding: identity\r\nContent-Encoding: gzip",
            "length",
            "Content-Encoding 'gzip'",
        ),
        ("Content-Encoding: identity\r\nContent-Encoding: , GZip", "length", "Encoding 'gzip'"),
        ("Transfer-Encoding: gzip, chunked", "chunked", "Transfer-Encoding 'gzip'"),
        ("Transfer-Encoding: gzip", "close", "Transfer-Encoding 'gzip'"),
        ("Transfer-Encoding: deflate, chunked", "chunked", "Transfer-Encoding 'deflate'"),
        ("Transfer-Encoding: br, chunked", "chunked", "Transfer-Encoding 'br'"),
    ],
    ids=["two Content-Encoding headers", "a list", "TE gzip chunked", "TE gzip", "deflate", "br"],
)
async def test_every_coding_header_is_read_and_only_chunked_is_let_through(
    raw_host: RawHost, tmp_path: Path, head: str, framing: str, refused: str
) -> None:
    """Each of them saved the gzip bytes as the video before."""
    body = chunked(gzip_bomb()) if framing == "chunked" else gzip_bomb()
    end = {"length": f"Content-Length: {len(body)}", "close": "Connection: close"}.get(framing)
    head = head if end is None else f"{head}\r\n{end}"
    raw_host.answer = f"HTTP/1.1 200 OK\r\n{head}\r\n\r\n".encode() + body
    with pytest.raises(DownloadRefusedError, match=refused):
        await fetch(f"{raw_host.url}/r.mp4", tmp_path)
    assert raw_host.requests == 1
    assert listing(tmp_path) == []  # the .part is removed


async def test_identity_and_chunked_are_no_coding(raw_host: RawHost, tmp_path: Path) -> None:
    head = (
        "Content-Encoding: identity\r\nContent-Encoding: ,identity,\r\nTransfer-Encoding: chunked"
    )
    raw_host.answer = f"HTTP/1.1 200 OK\r\n{head}\r\n\r\n".encode() + chunked(b"v" * 100_000)
    saved = await fetch(f"{raw_host.url}/r.mp4", tmp_path)
    assert saved.read_bytes() == b"v" * 100_000


async def test_an_endless_body_is_cut_at_the_cap(host: ResultHost, tmp_path: Path) -> None:
    with pytest.raises(DownloadTooLargeError, match=r"over the cap of 5,242,880 bytes") as caught:
        await fetch(f"{host.url}/endless/0", tmp_path, max_bytes=5 * MIB)
    assert caught.value.limit == 5 * MIB
    assert listing(tmp_path) == []  # the .part is removed


async def test_a_content_length_over_the_cap_is_refused_before_reading(
    host: ResultHost, tmp_path: Path
) -> None:
    # The host sends no byte of its body: reading it would hang past fail_after.
    with pytest.raises(DownloadTooLargeError, match=r"Content-Length 10,737,418,240"):
        await fetch(f"{host.url}/announced/0", tmp_path, max_bytes=MIB)
    assert listing(tmp_path) == []


async def test_a_body_that_trickles_past_the_time_bound_fails(
    host: ResultHost, tmp_path: Path
) -> None:
    with pytest.raises(RequestTimeoutError, match=r"not finished in 0\.3 s") as caught:
        await fetch(f"{host.url}/trickle/0", tmp_path, timeout=0.3)
    assert caught.value.__context__ is None
    assert listing(tmp_path) == []


# --------------------------------------------------------------------------------------------
# Redirects and targets


async def test_redirects_beyond_the_bound_fail(host: ResultHost, tmp_path: Path) -> None:
    saved = await fetch(f"{host.url}/hops/2", tmp_path, max_redirects=2)
    assert saved.read_bytes() == b"x" * 10
    host.hits.clear()
    with pytest.raises(DownloadRefusedError, match="more than 2 redirects"):
        await fetch(f"{host.url}/hops/3", tmp_path, max_redirects=2)
    assert host.hits == {"hops": 3}  # the third redirect is not followed
    assert listing(tmp_path) == ["clip.mp4"]  # the earlier file is untouched


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/x", "link-local"),
        ("http://[::ffff:169.254.169.254]/x", "link-local"),
        ("http://10.1.2.3/x", "private"),
        ("http://192.168.0.1/x", "private"),
        ("http://[fd00::1]/x", "private"),
        ("http://0.0.0.0:{port}/small/1", "unspecified"),
        ("http://224.0.0.1/x", "multicast"),
        ("file:///etc/passwd", "only http:// and https://"),
    ],
)
async def test_a_redirect_to_a_forbidden_target_is_refused_without_connecting(
    host: ResultHost, tmp_path: Path, target: str, reason: str
) -> None:
    port = host.url.rsplit(":", 1)[1]
    url = f"{host.url}/to/0?url={target.format(port=port)}"
    with anyio.fail_after(2):  # no connection attempt to wait for
        with pytest.raises(DownloadRefusedError, match=reason):
            await fetch(url, tmp_path)
    assert host.hits == {"to": 1}  # 0.0.0.0 would have reached this host again
    assert listing(tmp_path) == []


async def test_loopback_is_refused_unless_allowed(host: ResultHost, tmp_path: Path) -> None:
    name = host.url.replace("127.0.0.1", "localhost")
    # The literal is refused before any connection, the name by the resolver.
    with pytest.raises(DownloadRefusedError, match=r"127\.0\.0\.1 is a loopback address"):
        await fetch(f"{host.url}/small/1", tmp_path, allow_loopback=False)
    with pytest.raises(DownloadRefusedError, match="resolves only to a loopback address"):
        await fetch(f"{name}/small/1", tmp_path, allow_loopback=False)
    # By default, loopback is allowed only to a client whose API is on loopback.
    with pytest.raises(DownloadRefusedError, match="loopback"):
        await fetch(f"{name}/small/1", tmp_path, base_url="https://open-api.chanjing.cc")
    # Inferred from a loopback base URL, the allowance covers that port only: a loopback base
    # URL may be a TLS sidecar, and the other local services are no result's business.
    sidecar = "http://127.0.0.1:1"
    for url in (f"{host.url}/small/1", f"{name}/small/1"):
        with pytest.raises(DownloadRefusedError, match="on a port other than the API's 1"):
            await fetch(url, tmp_path, base_url=sidecar)
    assert host.hits == {}
    assert (await fetch(f"{name}/small/3", tmp_path)).read_bytes() == b"xxx"
    assert (
        await fetch(f"{name}/small/3", tmp_path, base_url=sidecar, allow_loopback=True)
    ).exists()
    assert host.hits == {"small": 2}


def test_the_address_rule() -> None:
    strict = DownloadPolicy(allow_loopback=False)
    refused = {
        "169.254.169.254": "link-local",
        "fe80::1%eth0": "link-local",
        "127.0.0.1": "loopback",
        "::1": "loopback",
        "::ffff:127.0.0.1": "loopback",
        "10.0.0.1": "private",
        "172.16.5.4": "private",
        "100.64.0.1": "private",
        "fc00::1": "private",
        "0.0.0.0": "unspecified",
        "0.1.2.3": "unspecified",
        "::": "unspecified",
        "239.1.1.1": "multicast",
        "ff02::1": "multicast",
        "240.0.0.1": "reserved",
        "255.255.255.255": "reserved",
        "2002:a9fe:a9fe::1": "link-local",  # 6to4 around 169.254.169.254
    }
    for address, reason in refused.items():
        assert reason in (strict.refusal(address) or ""), address
    assert strict.refusal("64:ff9b::a9fe:a9fe") is not None  # NAT64 around 169.254.169.254
    for address in ("8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"):
        assert strict.refusal(address) is None, address
    lenient = DownloadPolicy(allow_loopback=True, allow_private=True)
    assert [lenient.refusal(a) for a in ("127.0.0.1", "10.0.0.1", "fd00::1")] == [None] * 3
    assert "link-local" in (lenient.refusal("169.254.169.254") or "")  # never allowed
    assert DownloadPolicy().for_base_url("http://127.0.0.1:8000").allow_loopback is True
    assert DownloadPolicy().for_base_url("http://localhost:8000").allow_loopback is True
    assert DownloadPolicy().for_base_url("https://open-api.chanjing.cc").allow_loopback is False
    assert DownloadPolicy(allow_loopback=False).for_base_url("http://[::1]").allow_loopback is False


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("max_bytes", 0, "an integer > 0"),
        ("max_bytes", 1.5, "an integer > 0"),
        ("max_bytes", True, "an integer > 0"),
        ("max_redirects", -1, "an integer >= 0"),
        ("max_redirects", "3", "an integer >= 0"),
        ("allow_loopback", "yes", "must be a bool, or None"),
        ("allow_private", None, "must be a bool$"),
        ("timeout", math.inf, "a finite number of seconds > 0"),
        ("timeout", 0, "a finite number of seconds > 0"),
    ],
)
def test_a_bad_download_policy_is_refused(field: str, value: object, allowed: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"DownloadPolicy\.{field}=.*{allowed}"):
        DownloadPolicy(**{field: value})  # type: ignore[arg-type]


async def test_a_failed_download_keeps_no_aiohttp_error_as_context(tmp_path: Path) -> None:
    """aiohttp's errors quote the URL with its signed query: they are not kept."""
    with pytest.raises(TransportError) as caught:
        await fetch("http://127.0.0.1:1/x.mp4?signature=s3cr3t", tmp_path)
    assert caught.value.__context__ is None
    assert caught.value.__cause__ is None
    assert "s3cr3t" not in str(caught.value)


# --------------------------------------------------------------------------------------------
# Output paths checked at write time


async def test_a_subfolder_swapped_for_a_link_during_a_batch_is_not_followed(
    tmp_path: Path, media: tuple[Path, Path], emulator: EmulatorServer, client: AsyncChanjingClient
) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    (out / "sub").mkdir(parents=True)
    outside.mkdir()
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["output", "video", "text", "voice"])
        writer.writerow(["fine", str(media[0]), "一", VOICE])
        writer.writerow(["sub/clip", str(media[0]), "二", VOICE])
    rows = read_manifest(manifest).rows
    swapped: list[bool] = []

    def swap(progress: BatchProgress) -> None:
        # After the run's checks and before any task is done: the folder becomes a link.
        if not swapped:
            (out / "sub").rmdir()
            (out / "sub").symlink_to(outside, target_is_directory=True)
            swapped.append(progress.finished == 0)

    with anyio.fail_after(20):
        report = await run_batch(
            client,
            rows,
            journal=tmp_path / "jobs.sqlite",
            out_dir=out,
            poll=JOB_POLL,
            on_progress=swap,
        )
    assert swapped == [True]
    assert [outcome.result for outcome in report.outcomes] == ["succeeded", "failed"]
    reason = report.outcomes[1].reason or ""
    assert reason.startswith("download failed: ")
    assert "'sub' is a symbolic link or no folder (not followed inside" in reason
    assert list(outside.iterdir()) == []
    assert sorted(path.name for path in out.iterdir()) == ["fine.jpg", "fine.mp4", "sub"]


@pytest.mark.parametrize("dir_fd", [True, False], ids=["dir_fd", "paths (Windows)"])
async def test_within_keeps_a_download_inside_its_folder(
    host: ResultHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dir_fd: bool
) -> None:
    monkeypatch.setattr(_output_files, "_AT", dir_fd and _output_files._AT)
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    task = result(f"{host.url}/small/4")
    async with make_client(host.url) as client:
        saved = await client.lip_sync.download(task, out / "a" / "b.mp4", within=out)
        assert saved.read_bytes() == b"xxxx"  # missing folders are created
        (out / "link").symlink_to(outside, target_is_directory=True)
        for dest in (out / "link" / "c.mp4", out / "a" / ".." / "d.mp4", outside / "e.mp4"):
            with pytest.raises(ChanjingError, match="cannot be written") as caught:
                await client.lip_sync.download(task, dest, within=out)
            assert "inside" in str(caught.value)
    assert list(outside.iterdir()) == []
    assert listing(out / "a") == ["b.mp4"]
