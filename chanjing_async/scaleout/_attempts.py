"""The create attempts and owned tasks of an app id, shared by its processes through Redis.

With several processes on one app id, a task one of them created must never be adopted by
another's job, and a create of one must count as a rival when another explains a task by time.
Each process publishes, under ``{<prefix>:<app id>}:attempts``:

* every create right before it is sent: its window in the **server's** time (what Chanjing's
  ``create_time`` will say; each process bounds it with its own clock estimate), kept for two
  processing horizons (its own, then the watch for late tasks), and marked in flight for the
  request timeout;
* its end: answered (the task joins the owned set for an hour) or refused (removed); unknown
  attempts stay until their window ends;
* tasks it adopts (owned).

A process that reads the task list to reconcile holds ``...:gate`` meanwhile: no process
sends a create while it is held (the publication script checks it atomically), and the reader
waits until no create is in flight anywhere, so the reading is whole. The gate expires on its
own if its holder dies.

Redis ``TIME`` is the only clock for expiries; windows are in the server's time, compared only
with ``create_time``. While Redis is unreachable, creates wait (as the shared limiter's
admissions do); a failed end-of-attempt write leaves the attempt a rival until its window ends,
which can only make another process's reconciliation more cautious.
"""

from __future__ import annotations

import contextlib
import json
import math
import secrets
from typing import TYPE_CHECKING

import anyio

from ._redis import Outages, redis_call, redis_errors

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from typing import Any

    from redis.asyncio import Redis

    _Call = Callable[[], Awaitable[Any]]


# Owned task ids are kept this long (ms): only tasks around an open attempt ever matter.
_OWNED_MS = 3_600_000
# The longest a reading may hold the gate (ms); a dead reader frees it after this.
_GATE_MS = 30_000
_POLL = 0.01

# KEYS: attempts hash, expiry zset, flight zset, gate. ARGV: member, window, flight ms, keep ms,
# me. Publishes the attempt unless another process is reading the task list.
_SEND = """
local gate = redis.call('GET', KEYS[4])
if gate and gate ~= ARGV[5] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[1])
return 1
"""
# KEYS: attempts, expiry, flight, owned. ARGV: member, closed ("1": drop it), task id or "",
# how long the task stays owned (ms).
_END = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREM', KEYS[3], ARGV[1])
if ARGV[2] == '1' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
if ARGV[3] ~= '' then redis.call('ZADD', KEYS[4], now + tonumber(ARGV[4]), ARGV[3]) end
return 1
"""
# KEYS: attempts, expiry, flight, owned. Drops what expired; returns attempts, owned ids and
# how many creates are in flight.
_SNAPSHOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, member in ipairs(gone) do redis.call('HDEL', KEYS[1], member) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
return {redis.call('HGETALL', KEYS[1]), redis.call('ZRANGE', KEYS[4], 0, -1),
        redis.call('ZCARD', KEYS[3])}
"""
_UNGATE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

Window = tuple[float, float]


class RedisAttemptStore:
    """An :class:`~chanjing_async._attempts.AttemptStore` in Redis (see the module doc).

    Args:
        redis: a redis-py asyncio client.
        key: the hash-tagged prefix of its keys, ``{<prefix>:<app id>}``.
    """

    def __init__(self, redis: Redis, key: str) -> None:
        self._redis = redis
        self._keys = [f"{key}:attempts", f"{key}:attempts:expiry", f"{key}:attempts:flight"]
        self._owned_key = f"{key}:owned"
        self._gate_key = f"{key}:gate"
        self._me = secrets.token_hex(8)
        self._send = redis.register_script(_SEND)
        self._end = redis.register_script(_END)
        self._snapshot = redis.register_script(_SNAPSHOT)
        self._ungate = redis.register_script(_UNGATE)
        self._errors = redis_errors()
        self._outages = Outages("shared attempts")

    def __repr__(self) -> str:
        return f"<RedisAttemptStore key={self._keys[0]!r}>"

    def member(self, number: int) -> str:
        """The name of this process's attempt ``number`` in Redis."""
        return f"{self._me}:{number}"

    async def sending(self, number: int, window: Window, flight: float, keep: float) -> None:
        """Publish attempt ``number`` right before it is sent.

        Waits while another process reads the task list, and while Redis is unreachable.

        Args:
            number: the attempt's number in this process.
            window: the server times its task may carry, ``(earliest, latest)``.
            flight: seconds it may stay on the wire (the request timeout).
            keep: seconds it stays a rival (its horizon and the watch after it).
        """
        shown = json.dumps([_finite(window[0]), _finite(window[1])])
        args: list[str | int] = [self.member(number), shown, _ms(flight), _ms(keep), self._me]
        await self._until(lambda: self._send(keys=[*self._keys, self._gate_key], args=args))

    async def ended(self, number: int, *, closed: bool, task_id: str | None = None) -> None:
        """Attempt ``number`` is off the wire: closed (answered or refused) or still unknown.

        Best effort: if Redis fails, the attempt stays a rival until its window ends.
        """
        args: list[str | int] = [
            self.member(number),
            "1" if closed else "0",
            task_id or "",
            _OWNED_MS,
        ]
        with anyio.CancelScope(shield=True), contextlib.suppress(*self._errors):
            await redis_call(self._end(keys=[*self._keys, self._owned_key], args=args))

    async def own(self, task_id: str) -> None:
        """A task this process adopted: no other process's job may take it."""
        args: list[str | int] = ["", "0", task_id, _OWNED_MS]
        with anyio.CancelScope(shield=True), contextlib.suppress(*self._errors):
            await redis_call(self._end(keys=[*self._keys, self._owned_key], args=args))

    async def rivals(self) -> tuple[list[Window], frozenset[str]]:
        """The other processes' attempt windows (server time) and every owned task id."""
        attempts, owned, _ = await self._read()
        return attempts, owned

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[None]:
        """Hold the gate (no process sends a create) until no create is in flight anywhere."""
        await self._until(lambda: self._redis.set(self._gate_key, self._me, nx=True, px=_GATE_MS))
        try:
            while True:  # polled: creates are at most ten a minute
                if not (await self._read())[2]:
                    break
                await anyio.sleep(_POLL)
            yield
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(*self._errors):
                await redis_call(self._ungate(keys=[self._gate_key], args=[self._me]))

    async def _read(self) -> tuple[list[Window], frozenset[str], int]:
        raw: Any = await self._until(lambda: self._snapshot(keys=[*self._keys, self._owned_key]))
        pairs, owned, flying = raw
        assert isinstance(pairs, list)
        assert isinstance(owned, list)
        mine = f"{self._me}:".encode()
        windows: list[Window] = []
        for member, value in zip(pairs[::2], pairs[1::2], strict=True):
            if _text(member).encode().startswith(mine):
                continue
            try:
                low, high = json.loads(_text(value))
                windows.append((_bound(low, -math.inf), _bound(high, math.inf)))
            except (ValueError, TypeError):
                windows.append((-math.inf, math.inf))  # unreadable: a rival everywhere
        return windows, frozenset(_text(task) for task in owned), int(str(flying))

    async def _until(self, call: _Call) -> object:
        """Run a Redis call until it succeeds (and returns something true), through outages."""
        while True:
            try:
                result = await redis_call(call())
            except self._outages.catch as exc:
                self._outages.failed(exc)
            else:
                self._outages.ok()
                if result:
                    return result
            await anyio.sleep(_POLL)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _bound(value: object, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) else default


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))
