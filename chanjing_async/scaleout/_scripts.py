"""The Lua scripts of the shared sliding-window log: every decision runs in Redis, atomically.

Each script reads Redis ``TIME``, so no client clock is ever compared with another.
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "PRELUDE", "SYNC"]

# Both scripts start here. KEYS: log (sorted set: token -> release time), meta (hash: epoch,
# blocked). ARGV: span, lease, the caller's known epoch ("" if none), a fresh epoch id.
# A log whose epoch is gone was lost (a Redis that came back empty, or evicted): if the caller
# knew the old one, the window counts as full for max(span, lease), long enough for every
# process's heartbeat to write its requests back. keep_log() makes the log live exactly as long
# as its latest member counts.
PRELUDE = """
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
ACQUIRE = (
    PRELUDE
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
SYNC = (
    PRELUDE
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
