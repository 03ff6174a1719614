"""The fence of a reservation in the shared Redis log: is it still live as the request goes?

A process admitted by :class:`~chanjing_async.scaleout.RedisSlidingWindowLimiter` holds a
member of the log scored ``now + lease``, renewed by its heartbeat every ``lease / 4``. Paused
for longer than the lease between admission and send (SIGSTOP, a VM freeze, a debugger), it
renews nothing: the other processes count the member as released at its score and, one window
later, admit new requests in its place. Sent on resume, its request would be one too many in
that window: a 40001.

:meth:`Slot.fence() <chanjing_async.limits.Slot.fence>`, which the transport calls right before
it writes the request, closes that gap:

- **Locally first.** The member is suspect if a renewal found it already lapsed or gone in
  Redis (on resume the heartbeat may run before the fence and write the member back as if it
  had never lapsed), or if no renewal was confirmed for longer than the lease, measured with
  ``time.monotonic`` (which keeps running across SIGSTOP). The clock is needed even with the
  first rule: a renewal issued just before the pause may reach Redis only on resume, write the
  member back, and have its reply (which reports the lapse) dropped because its deadline
  passed during the pause (without this rule, ``tests/scaleout/test_redis_fencing.py`` meets it).
- **Then atomically in Redis**, on Redis ``TIME`` (never a client clock): a member that is not
  suspect and whose score is still in the future is live; it is renewed and the request goes.
  Anything else (lapsed, pruned, suspect, or the log lost: Redis came back empty, the epoch
  changed) removes the member, and the slot takes a *new* reservation through the normal
  admission path, waiting as admissions wait (FIFO behind this process's earlier waiters;
  other processes race as usual). The release on exit is then written for the new member and
  :attr:`Slot.admitted_at` is the new admission time.
- **Redis unreachable:** the fence waits and asks again, as admissions do; nothing is sent on a
  reservation Redis has not confirmed. A refusal that never heals raises ConfigurationError.

Cost: one more Redis round trip per request (three in all: admission, fence, release), about
0.2-0.3 ms on loopback.

Not covered: a pause longer than the lease *after* the fence, before the request's bytes leave
the socket (the connection set-up, a TLS handshake, the write itself). No client-side check can
close that last window; only a server that checked a fencing token could.
"""

from __future__ import annotations

import time

__all__ = ["FENCE", "FenceLog"]

# Appended to the prelude of redis_limits (TIME, epoch, `lost`, keep_log). ARGV[5..6]: token,
# suspect ("1": the local side already knows it may have lapsed). Returns 1 if the member was
# live and is renewed, else 0 once it is removed.
FENCE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[5])
if not lost and ARGV[6] == '0' and score and tonumber(score) > now then
  redis.call('ZADD', KEYS[1], 'GT', now + lease, ARGV[5])
  keep_log()
  return 1
end
redis.call('ZREM', KEYS[1], ARGV[5])
return 0
"""


class FenceLog:
    """What the fence knows locally about this process's in-flight members.

    For each: the monotonic time at which the last script that admitted or renewed it was sent
    (Redis ran it no earlier), and whether it may have lapsed since.
    """

    __slots__ = ("_lapsed", "_lease", "_renewed")

    def __init__(self, lease: float) -> None:
        self._lease = lease
        self._renewed: dict[str, float] = {}
        self._lapsed: set[str] = set()

    def confirmed(self, token: str, asked: float, *, lapsed: bool = False) -> None:
        """A script sent at ``asked`` admitted or renewed ``token`` (``lapsed``: it found the
        member lapsed or gone first). A reply later than a lease after the previous
        confirmation leaves the member suspect: it may have lapsed in between."""
        previous = self._renewed.get(token, asked)
        self._renewed[token] = asked
        if lapsed or time.monotonic() - previous > self._lease:
            self._lapsed.add(token)

    def suspect(self, token: str) -> bool:
        """True if ``token`` may have lapsed: flagged, or not confirmed within one lease."""
        renewed = self._renewed.get(token)
        return token in self._lapsed or renewed is None or time.monotonic() - renewed > self._lease

    def forget(self, token: str) -> None:
        """``token`` is released or gone: nothing more to know about it."""
        self._renewed.pop(token, None)
        self._lapsed.discard(token)
