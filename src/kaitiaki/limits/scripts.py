"""The Lua scripts the Redis store runs: one decision, one round trip.

``DECIDE`` mirrors :func:`kaitiaki.limits.memory.evaluate` step for step, so
both stores pass the same contract tests. Each check takes seven arguments
after ``now``: kind, limit, cost, interval, ends_at, slices, lease. Floats go
in and out as ``%.17g`` text, which round-trips a double exactly. Every key
gets a relative expiry (Redis' own clock) with a minute's margin, so counters
vanish by themselves and gateway clock skew cannot cut a window short.
"""

from __future__ import annotations

__all__ = ["DECIDE", "RELEASE"]

DECIDE = """
local now = tonumber(ARGV[1])
local EPS = 1e-9
local MARGIN = 60000
local function floor0(x)
  local v = math.floor(x + EPS)
  if v < 0 then return 0 end
  return v
end
local function num(x) return string.format('%.17g', x) end

local function rate(key, limit, cost, interval)
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local new_tat = tat + cost * interval
  local allow_at = new_tat - limit * interval
  if allow_at > now then
    return false, floor0((now - (tat - limit * interval)) / interval), allow_at - now
  end
  return true, floor0((now - allow_at) / interval), new_tat - now, function()
    redis.call('SET', key, num(new_tat), 'PX',
      math.ceil((new_tat - now) * 1000) + MARGIN)
  end
end

local function quota(key, limit, cost, ends_at)
  local count = tonumber(redis.call('GET', key) or '0')
  if count + cost > limit then return false, limit - count, ends_at - now end
  return true, limit - count - cost, ends_at - now, function()
    redis.call('INCRBY', key, cost)
    redis.call('PEXPIRE', key, math.ceil((ends_at - now) * 1000) + MARGIN)
  end
end

local function rolling(key, limit, cost, interval, slices)
  local current = math.floor(now / interval)
  local oldest = current - slices + 1
  local raw = redis.call('HGETALL', key)
  local live, stale, order, used = {}, {}, {}, 0
  for i = 1, #raw, 2 do
    local index, n = tonumber(raw[i]), tonumber(raw[i + 1])
    if index >= oldest then
      live[index] = n; used = used + n; table.insert(order, index)
    else
      table.insert(stale, raw[i])
    end
  end
  table.sort(order)
  if used + cost > limit then
    local freed = 0
    for _, index in ipairs(order) do
      freed = freed + live[index]
      if used - freed + cost <= limit then
        return false, limit - used, (index + slices) * interval - now
      end
    end
    return false, limit - used, slices * interval
  end
  local first = order[1] or current
  if current < first then first = current end
  return true, limit - used - cost, (first + slices) * interval - now, function()
    if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
    redis.call('HINCRBY', key, current, cost)
    redis.call('PEXPIRE', key, math.ceil(slices * interval * 1000) + MARGIN)
  end
end

local function concurrency(key, limit, interval, lease)
  local held = redis.call('ZCOUNT', key, '(' .. num(now), '+inf')
  if held + 1 > limit then return false, 0, 1.0 end
  return true, limit - held - 1, 0.0, function()
    redis.call('ZREMRANGEBYSCORE', key, '-inf', num(now))
    redis.call('ZADD', key, num(now + interval), lease)
    redis.call('PEXPIRE', key, math.ceil(interval * 1000) + MARGIN)
  end
end

local failed = -1
local out = {}
local writes = {}
for i = 1, #KEYS do
  local b = 1 + (i - 1) * 7
  local kind, key = ARGV[b + 1], KEYS[i]
  local limit, cost = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local interval, ends_at = tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5])
  local ok, remaining, reset, write
  if kind == 'rate' then
    ok, remaining, reset, write = rate(key, limit, cost, interval)
  elseif kind == 'quota' then
    ok, remaining, reset, write = quota(key, limit, cost, ends_at)
  elseif kind == 'rolling' then
    ok, remaining, reset, write = rolling(key, limit, cost, interval,
      tonumber(ARGV[b + 6]))
  else
    ok, remaining, reset, write = concurrency(key, limit, interval, ARGV[b + 7])
  end
  if not ok and failed < 0 then failed = i - 1 end
  writes[i] = write
  out[2 * i + 1] = remaining
  out[2 * i + 2] = num(reset)
end
if failed < 0 then
  for i = 1, #KEYS do writes[i]() end
end
out[1] = failed < 0 and 1 or 0
out[2] = failed
return out
"""

RELEASE = """
for i = 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[i]) end
return #KEYS
"""
