"""Result downloads: where they may go, how much they may bring, and how they reach the disk.

Result URLs come from a remote server, so a download trusts nothing in them:

* **Targets.** Only ``http``/``https`` URLs are fetched, and only from addresses the policy
  allows. Link-local (``169.254.0.0/16``, ``fe80::/10``: the cloud metadata service),
  unspecified (``0.0.0.0/8``, ``::``), multicast and reserved addresses are always refused;
  loopback only with ``allow_loopback`` (by default: on the port of the client's base URL
  when that is loopback, as for the emulator, which serves its results itself; a loopback
  base URL may also be a TLS sidecar, and the other local ports are none of a result URL's
  business); private ranges (RFC 1918, ``fc00::/7``, ``100.64.0.0/10`` and every
  other non-global range) only with ``allow_private``. An IPv4 address inside an IPv6 one
  (``::ffff:a.b.c.d``, 6to4, NAT64) is judged as that IPv4 address too. An IP literal is
  checked before any connection; a host name is resolved by the connector's own resolver,
  which drops the addresses it refuses, and the connection goes to an address it kept: a
  name cannot resolve to a public address for the check and to a private one for the connect.
  Proxies from the environment are not used.
* **Redirects** are followed by hand, at most ``max_redirects``, each hop checked as above.
* **Size.** A ``Content-Length`` over ``max_bytes`` is refused before the body is read, and
  the bytes are counted as they come: the body is cut when it passes the cap.
* **Encoding.** The request asks for ``Accept-Encoding: identity`` and nothing is
  decompressed; a body that comes with another content coding anyway (a gzip bomb, or a
  server that ignores the request) is refused: the file would not be the result. Every
  ``Content-Encoding`` header counts, and every element of its list (``identity`` in one
  header and ``gzip`` in the next is a gzip body). Likewise a ``Transfer-Encoding`` other than
  ``chunked`` (``gzip``, ``deflate``, ``br`` ..., which aiohttp passes on as they came) is
  refused; ``identity`` and empty list elements mean no coding.
* **Time.** The whole download (every hop and the write) ends within ``timeout`` seconds; a
  connection that cannot be made, or a body that stalls, for ``_STALL`` seconds fails sooner.
* **Memory.** The body goes to the disk in chunks of ``_CHUNK`` bytes as it comes
  (``_output_files``): memory does not grow with the file.

Each download uses an aiohttp session of its own (the connector's resolver enforces the
policy), never the client's API session: no API header, cookie or pooled connection reaches a
result host. The bytes go to a hidden ``.part`` file renamed into place once whole.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
import anyio
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from .._checks import check_setting, check_type
from ..errors import ChanjingError, HTTPStatusError, RequestTimeoutError, TransportError
from ._connect_failures import cannot_connect
from ._output_files import PartFile
from ._wire import redact_url

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    _Sink = Callable[[bytearray], Awaitable[None]]

__all__ = ["DownloadPolicy", "DownloadRefusedError", "DownloadTooLargeError", "save"]

_CHUNK = 1 << 20
"""Bytes gathered before each write to the disk."""
_STALL = 60.0
"""Seconds a connection may take to open, or a body may go without a byte."""
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CODINGS = {  # the codings a body may come with, and why only those
    "Content-Encoding": (frozenset({"identity"}), "identity was asked"),
    "Transfer-Encoding": (frozenset({"identity", "chunked"}), "only chunked is undone"),
}
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # "this host": Linux connects it to loopback
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class DownloadPolicy:
    """Limits of a result download (see the module docstring).

    Attributes:
        max_bytes: the largest result accepted, in bytes (default 4 GiB).
        max_redirects: redirects followed at most (0: none).
        allow_loopback: fetch from loopback addresses (any port); None (the default) allows
            the port of the client's base URL when that is loopback (the emulator, tests),
            and nothing else on loopback.
        allow_private: fetch from private and other non-global addresses (RFC 1918,
            ``fc00::/7``, ``100.64.0.0/10`` ...). Link-local, unspecified, multicast and
            reserved addresses are never fetched.
        timeout: seconds the whole download may take, every redirect and the write included.

    Raises:
        ConfigurationError: a field of the wrong type or out of range.
    """

    max_bytes: int = 4 * 1024**3
    max_redirects: int = 3
    allow_loopback: bool | None = None
    allow_private: bool = False
    timeout: float = 1800.0
    _loopback_port: int | None = field(default=None, repr=False)
    """Set by :meth:`for_base_url`: the only loopback port an inferred allowance opens."""

    def __post_init__(self) -> None:
        check_setting("DownloadPolicy.max_bytes", self.max_bytes, integer=True, above=True)
        check_setting("DownloadPolicy.max_redirects", self.max_redirects, integer=True)
        check_type("DownloadPolicy.allow_loopback", self.allow_loopback, bool)
        check_type("DownloadPolicy.allow_private", self.allow_private, bool, optional=False)
        check_setting("DownloadPolicy.timeout", self.timeout, above=True, unit="seconds")

    def for_base_url(self, base_url: str) -> DownloadPolicy:
        """This policy with ``allow_loopback`` decided: as given, or whether ``base_url`` is
        loopback."""
        if self.allow_loopback is not None:
            return self
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost" or host.endswith(".localhost")
        if not loopback:
            return replace(self, allow_loopback=False)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return replace(self, allow_loopback=True, _loopback_port=port)

    def refusal(self, address: str, port: int | None = None) -> str | None:
        """Why this policy refuses to connect to an IP ``address`` on ``port`` (None: it does
        not). A port of None stands for any port: refused where only one port is open."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # a zone id: fe80::1%eth0
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        embedded: list[Address] = [ip]
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.sixtofour is not None:
                embedded.append(ip.sixtofour)
            if ip in _NAT64:
                embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        for each in embedded:
            reason = self._refusal(each, port)
            if reason is not None:
                return reason
        return None

    def _refusal(self, ip: Address, port: int | None) -> str | None:
        if ip.is_link_local:
            return "a link-local address"
        if ip.is_unspecified or ip in _THIS_NETWORK:
            return "an unspecified address"
        if ip.is_multicast:
            return "a multicast address"
        if ip.is_loopback:
            if not self.allow_loopback:
                return "a loopback address (see allow_loopback)"
            if self._loopback_port is not None and port != self._loopback_port:
                return f"a loopback address on a port other than the API's {self._loopback_port}"
            return None
        if ip.is_reserved:
            return "a reserved address"
        if ip.is_global or self.allow_private:
            return None
        return "a private address (see allow_private)"


class DownloadRefusedError(ChanjingError):
    """A result was not downloaded or not written because the download policy forbids it:
    a target address it refuses, too many redirects, an encoded body, or an output path that
    would leave its folder. Nothing is left under the final name.

    Attributes:
        url: the URL concerned, without its query string (it may carry a signature).
        reason: what was refused.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: refused: {reason}")


class DownloadTooLargeError(DownloadRefusedError):
    """The result is larger than ``DownloadPolicy.max_bytes`` (announced or as it came).

    Attributes:
        limit: the cap, in bytes.
    """

    def __init__(self, url: str, reason: str, *, limit: int) -> None:
        self.limit = limit
        super().__init__(
            url, f"{reason} over the cap of {limit:,} bytes (DownloadPolicy.max_bytes)"
        )


class _GuardedResolver(AbstractResolver):
    """The system resolver, keeping only the addresses the policy allows."""

    def __init__(self, policy: DownloadPolicy) -> None:
        self._policy = policy
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        kept = [entry for entry in found if self._policy.refusal(entry["host"], port) is None]
        if not kept:
            reasons = sorted({self._policy.refusal(entry["host"], port) or "" for entry in found})
            raise DownloadRefusedError(host, f"it resolves only to {', '.join(reasons)}")
        return kept

    async def close(self) -> None:
        await self._resolver.close()


async def save(url: str, dest: Path, policy: DownloadPolicy, *, within: Path | None) -> Path:
    """Download ``url`` to ``dest`` under ``policy``, through a ``.part`` file; see
    :meth:`LipSync.download <chanjing_async._resources.LipSync.download>`.

    The errors raised carry no ``__context__``: aiohttp's quote the signed URL.
    """
    error: ChanjingError | None = None
    part: PartFile | None = None
    shown = redact_url(url)
    try:
        with anyio.move_on_after(policy.timeout):
            try:
                part = await PartFile.create(dest, within)
                await _fetch(url, policy, part.write)
                return await part.commit()
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                error = TransportError(cannot_connect(url, exc), endpoint=shown, sent=False)
            except asyncio.TimeoutError:  # a stall (builtin TimeoutError on 3.11+)
                error = RequestTimeoutError(f"no byte for {_STALL:g} s", endpoint=shown, sent=True)
            except aiohttp.ClientError as exc:
                error = TransportError(_failed("connection failed", exc), endpoint=shown, sent=True)
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                error = ChanjingError(f"{dest}: cannot be written ({reason})")
        if error is None:
            reason = f"not finished in {policy.timeout:g} s (DownloadPolicy.timeout)"
            error = RequestTimeoutError(reason, endpoint=shown, sent=True)
    finally:
        if part is not None:
            with anyio.CancelScope(shield=True):
                await part.close()
    raise error  # outside the handlers: no __context__


async def _fetch(url: str, policy: DownloadPolicy, write: _Sink) -> None:
    """GET ``url`` (and its redirects) and hand the body to ``write`` in chunks."""
    connector = aiohttp.TCPConnector(resolver=_GuardedResolver(policy), use_dns_cache=False)
    async with aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(sock_connect=_STALL, sock_read=_STALL),
    ) as session:
        current = yarl.URL(url, encoded=True)  # the signature covers the query as written
        for hop in range(policy.max_redirects + 2):
            shown = redact_url(str(current))
            if hop > policy.max_redirects:
                raise DownloadRefusedError(shown, f"more than {policy.max_redirects} redirects")
            _check_target(current, policy, shown)
            async with session.get(
                current, allow_redirects=False, headers={"Accept-Encoding": "identity"}
            ) as response:
                location = response.headers.get("Location")
                if response.status not in _REDIRECTS or not location:
                    await _receive(response, policy, shown, write)
                    return
                current = current.join(yarl.URL(location, encoded=True))


def _failed(what: str, exc: BaseException) -> str:
    """aiohttp's messages quote the URL, signed query included: only the class name is kept."""
    return f"{what} ({type(exc).__name__})"


def _check_target(url: yarl.URL, policy: DownloadPolicy, shown: str) -> None:
    if url.scheme not in ("http", "https") or not url.host:
        raise DownloadRefusedError(shown, "only http:// and https:// URLs are downloaded")
    try:
        reason = policy.refusal(url.host, url.port)
    except ValueError:
        return  # a host name: the resolver checks what it resolves to
    if reason is not None:
        raise DownloadRefusedError(shown, f"{url.host} is {reason}")


async def _receive(
    response: aiohttp.ClientResponse, policy: DownloadPolicy, shown: str, write: _Sink
) -> None:
    """Check the answer's status, encoding and size, then stream its body to ``write``."""
    if response.status != 200:
        excerpt = await response.content.read(200)
        raise HTTPStatusError(
            response.status,
            endpoint=shown,
            body_excerpt=excerpt.decode("utf-8", "replace").strip(),
        )
    refusal = _coding_refusal(response)
    if refusal is not None:
        raise DownloadRefusedError(shown, refusal)
    limit = policy.max_bytes
    if response.content_length is not None and response.content_length > limit:
        announced = f"Content-Length {response.content_length:,} is"
        raise DownloadTooLargeError(shown, announced, limit=limit)
    received = 0
    pending = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        received += len(chunk)
        if received > limit:
            raise DownloadTooLargeError(shown, "the body went", limit=limit)
        pending += chunk
        if len(pending) >= _CHUNK:
            await write(pending)
            pending.clear()
    if pending:
        await write(pending)


def _coding_refusal(response: aiohttp.ClientResponse) -> str | None:
    """Why the body of ``response`` would not be the result as stored (a coding nothing
    undoes), or None: every header of each name and every element of its list counts."""
    for header, (allowed, why) in _CODINGS.items():
        for value in response.headers.getall(header, []):
            for element in value.split(","):
                coding = element.strip().lower()
                if coding and coding not in allowed:
                    return f"{header} {coding!r} ({why})"
    return None
