"""Rate limits shared by every process and host of an account, kept in Redis.

The Chanjing limits (10 creates per minute, 10 reads per second) belong to the account, not to
a process: replicas that each believed they owned the whole budget would be answered 40001.
:class:`RedisSlidingWindowLimiter` keeps the same completion-anchored sliding-window log as the
in-process :class:`~chanjing_async.limits.SlidingWindowLimiter`, in one Redis sorted set per
(app id, endpoint group), so every process admits against the same log::

    client = AsyncChanjingClient(rate_limiter="redis://redis.internal:6379/0")

How it stays strict (``reference/rate-limits.md`` §5.1):

- **One clock.** Every script reads Redis ``TIME``; no client clock is ever compared with
  another, so clock skew between hosts cannot break the limit.
- **Atomic reservations.** A Lua script drops releases older than ``window + margin`` and,
  if fewer than ``limit`` members remain, adds the caller's token. Its score is a *lease*:
  now + ``lease``, an upper bound on when the request can reach the server.
- **Completion anchoring.** When the response arrives (or the caller gives up), the score is
  moved to the completion time (plus any :meth:`Slot.hold`). A request still in flight has its
  lease renewed every ``lease / 4`` by a heartbeat, so a slow request never loses its slot.
- **Crashed holders.** A process killed while holding a slot stops renewing; its member then
  counts as released at most ``lease`` later, which is as long as it can stall the others.
- **40001 for all.** A 40001 seen by any process raises a shared *blocked-until* time (one
  window from Redis ``TIME``), which every admission honours.
- **Redis down.** Admissions wait (a warning is logged once per outage) and never fall back to
  a local guess; releases that cannot be written are retried by the heartbeat. Nothing is sent
  without a reservation, so no create is lost or sent twice because of Redis.
- **Redis restarted empty.** Each log carries a random *epoch*. A process that knew an earlier
  epoch and finds none counts the window as full (blocked for one window or one lease, if
  longer: time for every heartbeat to come by), and every process that sees a new epoch, in an
  admission or a heartbeat, writes its own recent members back. The log itself expires only
  when its latest member stops counting (Redis must not evict it: ``noeviction``). If the
  first process to reach the empty Redis is a new one, the others' members are only written
  back when they next call it, so a few creates may meet a 40001 and be queued again: run Redis
  with persistence (``appendonly yes``) to avoid even that.
- **Fenced sends.** :meth:`Slot.fence`, called right before a request is written, renews a
  live reservation; one that lapsed (its holder paused past its lease: SIGSTOP, a VM freeze)
  or whose log was lost is replaced by a new one first (``_redis_fence``). Not covered: a
  pause longer than the lease between the fence and the bytes leaving the socket.

Waiters in different processes race for free slots (there is no global FIFO); within a process
they are admitted in order.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from typing import TYPE_CHECKING

import anyio
from pydantic import SecretStr

from .._checks import check_setting, conceal
from ..errors import ConfigurationError, raise_unchained
from ..limits._limits import Limiters, RateLimits, Slot, _LimiterBase
from ._attempts import RedisAttemptStore
from ._fence import FENCE, FenceLog
from ._redis import (
    check_url,
    connect,
    ping,
    redacted,
    redis_call,
    redis_errors,
    refusal_errors,
    refused,
)
from ._tokens import RedisTokenStore

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

    from ..limits._limits import Rate

__all__ = ["RedisRateLimiter", "RedisSlidingWindowLimiter"]

logger = logging.getLogger("chanjing_async")

DEFAULT_LEASE = 10.0

# Both scripts start here. KEYS: log (sorted set: token -> release time), meta (hash: epoch,
# blocked). ARGV: span, lease, the caller's known epoch ("" if none), a fresh epoch id.
# A log whose epoch is gone was lost (a Redis that came back empty, or evicted): if the caller
# knew the old one, the window counts as full for max(span, lease), long enough for every
# process's heartbeat to write its requests back. keep_log() makes the log live exactly as long
# as its latest member counts.
_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local span, lease, known = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  epoch = ARGV[4]
  redis.call('HSET', KEYS[2], 'epoch', epoch)
  if known ~= '' then
    redis.call('HSET', KEYS[2], 'blocked', string.format('%.6f', now + math.max(span, lease)))
  end
end
local lost = known ~= '' and epoch ~= known
local function keep_log()
  local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if top[2] then
    redis.call('PEXPIREAT', KEYS[1], math.ceil((tonumber(top[2]) + span) * 1000))
  end
end
"""

# ARGV[5..6]: token, limit. Returns {status, wait, epoch}: status 1 admitted (also when this
# token already is, so a retry after a lost reply takes no second slot), 0 wait, -1 write your
# members back first. wait is a lower bound while the member that decides is in flight.
_ACQUIRE = (
    _PRELUDE
    + """
if lost then return {-1, '0', epoch} end
if redis.call('ZSCORE', KEYS[1], ARGV[5]) then return {1, '0', epoch} end
local limit = tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - span)
local count = redis.call('ZCARD', KEYS[1])
local wait = 0
if count >= limit then
  local score = tonumber(redis.call('ZRANGE', KEYS[1], count - limit, count - limit,
    'WITHSCORES')[2])
  if score > now then wait = span else wait = score + span - now end
end
local blocked = tonumber(redis.call('HGET', KEYS[2], 'blocked') or '0')
wait = math.max(wait, blocked - now)
if wait > 0 then return {0, string.format('%.6f', wait), epoch} end
redis.call('ZADD', KEYS[1], now + lease, ARGV[5])
keep_log()
return {1, '0', epoch}
"""
)

# ARGV[5..]: penalty, n, n tokens to renew, then (token, offset) pairs. Renews the leases of
# requests in flight (never lowering a score), writes releases at now + offset (offset <= 0
# for a release already past), raises blocked-until to now + penalty when penalty > 0.
# Returns {status, epoch, lapsed}: status -1 if the log was lost (write everything back), else
# 1; lapsed, the renewed tokens that had lapsed or were gone (their slots must not send).
_SYNC = (
    _PRELUDE
    + """
local penalty = tonumber(ARGV[5])
if penalty > 0 then
  local blocked = tonumber(redis.call('HGET', KEYS[2], 'blocked') or '0')
  redis.call('HSET', KEYS[2], 'blocked', string.format('%.6f', math.max(blocked, now + penalty)))
end
local renew, lapsed = tonumber(ARGV[6]), {}
for i = 7, 6 + renew do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if lost or not score or tonumber(score) <= now then lapsed[#lapsed + 1] = ARGV[i] end
  redis.call('ZADD', KEYS[1], 'GT', now + lease, ARGV[i])
end
for i = 7 + renew, #ARGV, 2 do
  local score = now + tonumber(ARGV[i + 1])
  if score > now - span then
    redis.call('ZADD', KEYS[1], score, ARGV[i])
  else
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
keep_log()
if lost then return {-1, epoch, lapsed} end
return {1, epoch, lapsed}
"""
)


class RedisSlidingWindowLimiter(_LimiterBase):
    """The completion-anchored sliding-window log of one endpoint group, shared through Redis.

    Invariant (on Redis ``TIME``): a request is admitted at t only if fewer than ``limit``
    members of the log are in flight (scored by their lease) or were released after
    ``t - (window + margin)``, and t is past the shared blocked-until time. The proof of the
    in-process limiter carries over: every process admits against this one log. A slot's
    :meth:`~chanjing_async.limits.Slot.fence` re-checks its reservation right before the send.

    Made by :class:`RedisRateLimiter`; it implements :class:`~chanjing_async.limits.RateLimiter`.

    Args:
        redis: a redis-py asyncio client.
        key: the log's key; made ``{key}:log`` and ``{key}:meta`` (one cluster slot).
        limit: requests allowed per window.
        window: window length in seconds.
        margin: seconds added to the window.
        lease: seconds a reservation counts as in flight without news from its holder.
        name: label shown in the repr.
    """

    def __init__(
        self,
        redis: Redis,
        key: str,
        limit: int,
        window: float,
        *,
        margin: float = 0.0,
        lease: float = DEFAULT_LEASE,
        name: str = "",
    ) -> None:
        self._span = float(window) + margin
        super().__init__(limit, window, self._span, time.monotonic, name)
        self._margin = float(margin)
        self._lease = float(lease)
        self._key = key
        self._keys = [f"{{{key}}}:log", f"{{{key}}}:meta"]
        self._redis = redis
        self._acquire: AsyncScript = redis.register_script(_ACQUIRE)
        self._sync: AsyncScript = redis.register_script(_SYNC)
        self._fence: AsyncScript = redis.register_script(_PRELUDE + FENCE)
        self._fences = FenceLog(self._lease)  # what Slot.fence knows locally
        self._prefix = secrets.token_hex(6)
        self._counter = 0
        self._epoch = ""
        self._lock = anyio.Lock()  # one local waiter asks Redis at a time, in FIFO order
        self._write_lock = anyio.Lock()
        self._freed: anyio.Event | None = None  # set by a local release: re-ask at once
        self._waiting = 0
        # This process's members of the log: release time (monotonic, hold included), or None
        # while in flight. Written back if Redis comes back empty; pruned once out of the window.
        self._mine: dict[str, float | None] = {}
        self._unsynced: set[str] = set()  # releases Redis has not confirmed
        self._penalty_due = False
        self._penalties = 0
        self._next_free = -math.inf
        self._heartbeat: asyncio.Task[None] | None = None
        self._closing = False
        self._wake = anyio.Event()
        self._outage = False
        self._errors = redis_errors()
        self._refusals = refusal_errors()

    # -- RateLimiter -------------------------------------------------------------------------

    @property
    def margin(self) -> float:
        """Seconds added to the window before a release stops counting."""
        return self._margin

    @property
    def lease(self) -> float:
        """Seconds a reservation counts as in flight without a heartbeat from its holder."""
        return self._lease

    @property
    def queue_depth(self) -> int:
        """Callers of this process waiting in :meth:`slot`."""
        return self._waiting

    def next_free(self) -> float:
        """Estimated monotonic time of the next admission, from Redis's last answer."""
        now = time.monotonic()
        return max(now, self._next_free, self._blocked_until)

    def slot(self) -> AbstractAsyncContextManager[Slot]:
        """Wait for a reservation in the shared log, then hold it until the block is left."""
        return _RedisAdmission(self)

    def penalize(self, until: float | None = None) -> None:
        """Block every process until ``until`` (this process's monotonic clock; default one
        window plus margin from now), after a 40001. Written to Redis in the background.

        Raises:
            ValueError: if ``until`` is not finite.
        """
        super().penalize(until)
        self._penalty_due = True
        self._penalties += 1
        self._start_heartbeat()
        self._wake.set()

    async def aclose(self) -> None:
        """Write pending releases (best effort, bounded) and stop the heartbeat."""
        self._closing = True
        self._wake.set()
        task, self._heartbeat = self._heartbeat, None
        if task is not None:
            await task  # it ends after its current write (bounded by the socket timeout)
        if self._unsynced or self._penalty_due:
            with anyio.move_on_after(redis_timeout(self._span)):
                await self._write()

    def __repr__(self) -> str:
        in_flight = sum(release is None for release in self._mine.values())
        return (
            f"<RedisSlidingWindowLimiter {self._name!r} key={self._key!r} limit={self._limit}"
            f" window={self._window} margin={self._margin} lease={self._lease}"
            f" in_flight_here={in_flight} queue_depth={self._waiting}>"
        )

    # -- admission ---------------------------------------------------------------------------

    async def _admit(self) -> tuple[str, float]:
        self._counter += 1
        token = f"{self._prefix}:{self._counter}"
        self._waiting += 1
        try:
            async with self._lock:
                while True:
                    local = self._blocked_until - time.monotonic()
                    if local > 0:
                        await anyio.sleep(local)
                        continue
                    asked = time.monotonic()
                    status, wait = await self._try(token)
                    if status == 1:
                        self._mine[token] = None
                        self._fences.confirmed(token, asked)
                        self._start_heartbeat()
                        return token, time.monotonic()
                    if status == -1:
                        continue  # our members were written back: ask again
                    self._next_free = time.monotonic() + wait
                    # A release of ours may free the slot before `wait` (it was a lower bound).
                    freed = self._freed = anyio.Event()
                    with anyio.move_on_after(wait):
                        await freed.wait()
        finally:
            self._waiting -= 1

    async def _try(self, token: str) -> tuple[int, float]:
        """One acquire script call; Redis errors become a wait, never an admission."""
        args: list[str | float] = [self._span, self._lease, self._epoch, _epoch(), token]
        args.append(self._limit)
        try:
            reply = await redis_call(self._acquire(keys=self._keys, args=args))
        except self._errors as exc:
            self._down(exc)
            return 0, redis_timeout(self._span)
        except self._refusals as exc:
            raise_unchained(refused(exc))
        except BaseException:
            # Cancelled while the script may have run: take the member back if it was added.
            with anyio.CancelScope(shield=True), anyio.move_on_after(redis_timeout(self._span)):
                await self._forget(token)
            raise
        self._up()
        status, wait, epoch = int(reply[0]), float(reply[1]), reply[2].decode()
        if status != -1:
            self._epoch = epoch
        elif not await self._write(everything=True, epoch=epoch):
            return 0, redis_timeout(self._span)  # write back again on the next attempt
        return status, wait

    async def _forget(self, token: str) -> None:
        try:
            await redis_call(self._redis.zrem(self._keys[0], token))
        except self._errors as exc:
            self._down(exc)

    async def _check(self, token: str) -> bool | None:
        """The Redis side of :meth:`Slot.fence` (``_redis_fence``): True if ``token`` was live
        and is renewed, False if not and it is gone (log and ``_mine``), None if Redis is down."""
        async with self._write_lock:  # no renewal computed before this lands after it
            asked = time.monotonic()
            suspect = int(self._fences.suspect(token))
            args: list[str | float] = [self._span, self._lease, self._epoch, _epoch(), token]
            try:
                live = int(await redis_call(self._fence(keys=self._keys, args=[*args, suspect])))
            except self._errors as exc:
                self._down(exc)
                return None
            except self._refusals as exc:
                raise_unchained(refused(exc))
            self._up()
            if live:
                self._fences.confirmed(token, asked)
                return True
            self._mine.pop(token, None)  # the heartbeat must not write it back
            self._fences.forget(token)
        if self._freed is not None:
            self._freed.set()  # a slot may have come free for a local waiter
        return False

    async def _leave(self, token: str, slot: Slot) -> None:
        self._fences.forget(token)
        if self._freed is not None:
            self._freed.set()
        if slot.discarded:
            del self._mine[token]
            with anyio.CancelScope(shield=True), anyio.move_on_after(redis_timeout(self._span)):
                await self._forget(token)
            return
        self._mine[token] = time.monotonic() + slot.held
        self._unsynced.add(token)
        # Shielded and bounded: a cancelled caller still records its release; if Redis cannot
        # take it now, the heartbeat writes it later (the lease covers the meantime).
        with anyio.CancelScope(shield=True), anyio.move_on_after(redis_timeout(self._span)):
            await self._write()

    # -- writes ------------------------------------------------------------------------------

    async def _write(self, *, everything: bool = False, epoch: str | None = None) -> bool:
        """Renew in-flight leases, write unconfirmed releases and any penalty, in one script.

        ``everything`` writes back every member of this process in the window, for ``epoch``
        (a log that was lost and begun anew). Writes run one at a time, so a renewal computed
        before a release never lands after it. Returns False if Redis could not be reached.
        """
        async with self._write_lock:
            known = self._epoch if epoch is None else epoch
            now = sent = time.monotonic()
            self._prune(now)
            renew = [token for token, release in self._mine.items() if release is None]
            releases = self._mine.keys() - set(renew) if everything else set(self._unsynced)
            offsets: list[str | float] = []
            for token in releases:
                release = self._mine.get(token)
                offsets += [token, release - now] if release is not None else []
            penalties = self._penalties
            penalty = max(0.0, self._blocked_until - now) if self._penalty_due else 0.0
            args: list[str | float] = [self._span, self._lease, known, _epoch(), penalty]
            args.append(len(renew))
            try:
                reply = await redis_call(
                    self._sync(keys=self._keys, args=[*args, *renew, *offsets])
                )
            except self._errors as exc:
                self._down(exc)
                return False
            except self._refusals as exc:
                raise_unchained(refused(exc))
            self._up()
            for token in renew:
                if self._mine.get(token, 0.0) is None:  # still in flight
                    self._fences.confirmed(token, sent, lapsed=token.encode() in reply[2])
            self._unsynced -= releases
            if penalties == self._penalties:  # no 40001 arrived while this was written
                self._penalty_due = False
            lost, current = int(reply[0]) == -1, reply[1].decode()
            if not lost and everything:
                self._epoch = known  # our members are in this log now
        if lost:
            return await self._write(everything=True, epoch=current)
        return True

    def _prune(self, now: float) -> None:
        for token, release in list(self._mine.items()):
            if release is not None and release <= now - self._span:
                del self._mine[token]
                self._unsynced.discard(token)

    def _start_heartbeat(self) -> None:
        if not self._closing and (self._heartbeat is None or self._heartbeat.done()):
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    async def _beat(self) -> None:
        """Every ``lease / 4``, or at once after a 40001: renew leases, write what is due.

        Stopped by :meth:`aclose` through a flag, not by cancellation: redis-py may turn a
        cancelled read into a connection error, which this loop would take for an outage.
        """
        while not self._closing:
            wake = self._wake = anyio.Event()  # made before looking: no wake-up is missed
            due = self._unsynced or self._penalty_due
            if due or any(release is None for release in self._mine.values()):
                try:
                    # Bounded: a Redis that stops answering must not hold up renewals (or
                    # aclose) beyond the next beat.
                    with anyio.move_on_after(self._lease / 4):
                        await self._write()
                except Exception:  # a refusal (ConfigurationError) or a bug: keep beating
                    logger.exception("%s limiter: heartbeat write failed", self._name)
            with anyio.move_on_after(self._lease / 4):
                await wake.wait()

    # -- Redis health ------------------------------------------------------------------------

    def _down(self, exc: BaseException) -> None:
        if not self._outage:
            self._outage = True
            logger.warning(
                "%s limiter: Redis unreachable (%s); admissions wait until it is back",
                self._name or self._key,
                type(exc).__name__,
            )

    def _up(self) -> None:
        if self._outage:
            self._outage = False
            logger.warning("%s limiter: Redis reachable again", self._name or self._key)


def redis_timeout(span: float) -> float:
    """Seconds between attempts while Redis is unreachable (a quarter window, at most 1 s)."""
    return min(1.0, span / 4)


def _epoch() -> str:
    return secrets.token_hex(8)


class _RedisAdmission:
    """``async with limiter.slot()`` of a RedisSlidingWindowLimiter."""

    __slots__ = ("_limiter", "_slot", "_token")

    def __init__(self, limiter: RedisSlidingWindowLimiter) -> None:
        self._limiter = limiter
        self._slot: Slot | None = None
        self._token = ""

    async def __aenter__(self) -> Slot:
        self._token, admitted = await self._limiter._admit()
        self._slot = Slot(admitted, fence=self._fence)
        return self._slot

    async def _fence(self) -> None:
        """:meth:`Slot.fence`: return once the reservation is live (renewed) or taken anew.

        Not covered: a pause past the lease between this and the bytes leaving the socket.
        """
        limiter, slot = self._limiter, self._slot
        assert slot is not None
        live = await limiter._check(self._token)
        while live is None:  # Redis unreachable: wait, never guess
            await anyio.sleep(redis_timeout(limiter._span))
            live = await limiter._check(self._token)
        if not live:
            self._token = ""  # no reservation until the new one: a cancelled wait frees none
            self._token, slot.admitted_at = await limiter._admit()

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._slot is not None
        if self._token:
            await self._limiter._leave(self._token, self._slot)


class RedisRateLimiter:
    """One setting that shares a client's rate limits with every process of the account.

    Pass it (or just its URL) to the client; each endpoint group (create, read, other) then
    gets a :class:`RedisSlidingWindowLimiter` with the client's :class:`RateLimits`, under the
    keys ``{<prefix>:<app id>:<group>}:log`` and ``:meta``. The access token is shared under
    ``{<prefix>:<app id>}:token`` (see :meth:`token_store`)::

        AsyncChanjingClient(rate_limiter="redis://redis.internal:6379/0")
        AsyncChanjingClient(rate_limiter=RedisRateLimiter(redis=my_redis, lease=15))

    Args:
        url: a ``redis://``, ``rediss://`` or ``unix://`` URL (a str or a SecretStr); the
            connection is opened with the client and closed with it. A password in it is
            never shown, and the URL is kept as a SecretStr from the first line on, so no
            frame an error tracker records holds it.
        redis: an existing redis-py asyncio client instead of ``url``; left open.
        prefix: first part of every key, to keep apart accounts or environments.
        lease: seconds a reservation counts as in flight without a heartbeat from its holder:
            the longest a crashed process can hold a slot. Renewed every ``lease / 4``.

    Raises:
        ConfigurationError: not exactly one of ``url`` and ``redis``, a bad URL, lease or
            prefix, or redis-py is not installed.
    """

    def __init__(
        self,
        url: str | SecretStr | None = None,
        *,
        redis: Redis | None = None,
        prefix: str = "chanjing",
        lease: float = DEFAULT_LEASE,
    ) -> None:
        url, problem = conceal("rate_limiter", url, SecretStr)  # hidden before anything fails
        if problem is not None:
            raise ConfigurationError(problem)
        if (url is None) == (redis is None):
            raise ConfigurationError("RedisRateLimiter: give exactly one of url and redis")
        if url is not None:
            check_url(url, field="rate_limiter")
            redis_errors()  # redis-py missing: say so now, not when the client opens
        if type(prefix) is not str or not prefix or "{" in prefix or "}" in prefix:
            raise ConfigurationError(
                f"prefix={prefix!r}: must be a non-empty string without braces"
            )
        check_setting("lease", lease, above=True)
        self._url = url
        self._given = redis
        self._redis: Redis | None = None
        self._prefix = prefix
        self._lease = float(lease)
        self._limiters: list[RedisSlidingWindowLimiter] = []

    def __repr__(self) -> str:
        return f"<RedisRateLimiter {self._where()} prefix={self._prefix!r} lease={self._lease}>"

    def _where(self) -> str:
        return redacted(self._url) if self._url is not None else "a given client"

    @property
    def lease(self) -> float:
        """Seconds a reservation counts as in flight without a heartbeat."""
        return self._lease

    async def open(self, limits: RateLimits, app_id: str) -> Limiters:
        """Limiters for ``app_id`` with ``limits``' rates, all kept in Redis.

        ``limits.kind`` is not looked at: the log is always a sliding window.

        Raises:
            ConfigurationError: Redis does not answer PING (unreachable, wrong password).
            RuntimeError: already open (one client at a time per instance).
        """
        if self._limiters:
            raise RuntimeError("this RedisRateLimiter is already in use by an open client")
        redis, where = self._given, self._where()
        if redis is None:
            assert self._url is not None
            redis = connect(self._url)
        try:
            await ping(redis, where, field="rate_limiter")
        except ConfigurationError:
            if self._given is None:
                await redis_call(redis.aclose())
            raise
        self._redis = redis

        def make(group: str, rate: Rate) -> RedisSlidingWindowLimiter:
            limiter = RedisSlidingWindowLimiter(
                redis,
                f"{self._prefix}:{app_id}:{group}",
                rate.limit,
                rate.window,
                margin=rate.margin,
                lease=self._lease,
                name=group,
            )
            self._limiters.append(limiter)
            return limiter

        return Limiters(
            create=make("create", limits.create),
            read=make("read", limits.read),
            other=make("other", limits.other),
        )

    def token_store(self, app_id: str) -> RedisTokenStore:
        """Where the processes of ``app_id`` share its access token (after :meth:`open`).

        A new token invalidates the previous one, so processes that share the limits of an
        app id must share its token too, or they refresh each other's token away.
        """
        if self._redis is None:
            raise RuntimeError("RedisRateLimiter.token_store() needs open() first")
        return RedisTokenStore(self._redis, f"{{{self._prefix}:{app_id}}}:token")

    def attempt_store(self, app_id: str) -> RedisAttemptStore:
        """Where the processes of ``app_id`` share their create attempts (after :meth:`open`).

        So that a task one process created is never adopted by another's job, and a create of
        one counts as a rival when another explains a task by its time.
        """
        if self._redis is None:
            raise RuntimeError("RedisRateLimiter.attempt_store() needs open() first")
        return RedisAttemptStore(self._redis, f"{{{self._prefix}:{app_id}}}")

    async def aclose(self) -> None:
        """Stop the heartbeats, write what is pending, close a connection we opened.

        Never raises for Redis refusing the pending writes (full, a key of the wrong type):
        closing goes on, with one WARNING; the leases of what was not written lapse by
        themselves.
        """
        limiters, self._limiters = self._limiters, []
        refused_by: list[str] = []
        for limiter in limiters:
            try:
                await limiter.aclose()
            except ConfigurationError as exc:  # its message names the refusal, no secret
                refused_by.append(f"{limiter._name}: {exc}")
        if refused_by:
            logger.warning("rate limiter closed without its pending writes (%s)", refused_by)
        redis, self._redis = self._redis, None
        if redis is not None and self._given is None:
            await redis_call(redis.aclose())
