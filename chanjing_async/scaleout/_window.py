"""The sliding-window log of one endpoint group, shared by every process through Redis.

The Chanjing limits (10 creates per minute, 10 reads per second) belong to the account, not to
a process: replicas that each believed they owned the whole budget would be answered 40001.
:class:`RedisSlidingWindowLimiter` keeps the same completion-anchored sliding-window log as the
in-process :class:`~chanjing_async.limits.SlidingWindowLimiter`, in one Redis sorted set per
(app id, endpoint group), so every process admits against the same log::

    client = AsyncChanjingClient(rate_limiter="redis://redis.internal:6379/0")

How it stays strict:

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
  or whose log was lost is replaced by a new one first (``_fence``). Not covered: a
  pause longer than the lease between the fence and the bytes leaving the socket.

Waiters in different processes race for free slots (there is no global FIFO); within a process
they are admitted in order.
"""

from __future__ import annotations

import math
import secrets
import time
from typing import TYPE_CHECKING

import anyio

from ..errors import raise_unchained
from ..limits import LimiterBase, Slot
from ._fence import FENCE, FenceLog
from ._heartbeat import Heartbeat
from ._redis import OutageLog, redis_call, redis_errors, refusal_errors, refused
from ._scripts import ACQUIRE, PRELUDE, SYNC

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["DEFAULT_LEASE", "RedisSlidingWindowLimiter", "redis_timeout"]

DEFAULT_LEASE = 10.0


class RedisSlidingWindowLimiter(LimiterBase):
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
        self._acquire: AsyncScript = redis.register_script(ACQUIRE)
        self._sync: AsyncScript = redis.register_script(SYNC)
        self._fence: AsyncScript = redis.register_script(PRELUDE + FENCE)
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
        self._heartbeat = Heartbeat(self._write, self._due, self._lease / 4, name)
        self._outages = OutageLog(f"{name or key} limiter", "admissions wait until it is back")
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
        self._heartbeat.start()
        self._heartbeat.wake()

    async def aclose(self) -> None:
        """Write pending releases (best effort, bounded) and stop the heartbeat."""
        await self._heartbeat.stop()
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
                        self._heartbeat.start()
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
            self._outages.down(exc)
            return 0, redis_timeout(self._span)
        except self._refusals as exc:
            raise_unchained(refused(exc))
        except BaseException:
            # Cancelled while the script may have run: take the member back if it was added.
            with anyio.CancelScope(shield=True), anyio.move_on_after(redis_timeout(self._span)):
                await self._forget(token)
            raise
        self._outages.up()
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
            self._outages.down(exc)

    async def _check(self, token: str) -> bool | None:
        """The Redis side of :meth:`Slot.fence` (``_fence``): True if ``token`` was live
        and is renewed, False if not and it is gone (log and ``_mine``), None if Redis is down."""
        async with self._write_lock:  # no renewal computed before this lands after it
            asked = time.monotonic()
            suspect = int(self._fences.suspect(token))
            args: list[str | float] = [self._span, self._lease, self._epoch, _epoch(), token]
            try:
                live = int(await redis_call(self._fence(keys=self._keys, args=[*args, suspect])))
            except self._errors as exc:
                self._outages.down(exc)
                return None
            except self._refusals as exc:
                raise_unchained(refused(exc))
            self._outages.up()
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
                self._outages.down(exc)
                return False
            except self._refusals as exc:
                raise_unchained(refused(exc))
            self._outages.up()
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

    def _due(self) -> bool:
        """Anything for the heartbeat to write: a lease in flight, a release, a penalty."""
        due = self._unsynced or self._penalty_due
        return bool(due) or any(release is None for release in self._mine.values())


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
