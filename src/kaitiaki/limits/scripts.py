"""The Lua scripts the Redis store runs: one decision, one round trip.

``DECIDE`` mirrors :func:`kaitiaki.limits.memory.evaluate` step for step, so
both stores pass the same contract tests. The one argument is ``now`` (or
``redis``: Redis' own ``TIME``, one clock for every replica), then per check
``kind limit cost interval ends_at slices lease`` (space-separated), all
joined by ``|``. Floats go in, and are stored, as ``%.17g`` text, which
round-trips a double exactly. The reply is one space-separated string:
admitted (1/0), index of the failed check (-1 when none), then per check the
units remaining and the reset in nanoseconds. One argument and a flat reply
keep the client's packing and parsing close to a bare PING. Every key gets a
relative expiry (Redis' own clock) with a minute's margin, so counters vanish
by themselves and gateway clock skew cannot cut a window short.
"""

from __future__ import annotations

__all__ = ["DECIDE", "RELEASE"]

DECIDE = """
local specs = {}
for spec in string.gmatch(ARGV[1], '[^|]+') do specs[#specs + 1] = spec end
local now = tonumber(specs[1])
if now == nil then
  local time = redis.call('TIME')
  now = tonumber(time[1]) + tonumber(time[2]) / 1000000
end
local n = #KEYS
local failed = -1
local out = {}
local kinds, a, b, c = {}, {}, {}, {}

local function floor0(x)
  local v = math.floor(x + 1e-9)
  if v < 0 then return 0 end
  return v
end

for i = 1, n do
  local key = KEYS[i]
  local kind, limit, cost, interval, ends_at, slices, lease = string.match(
    specs[i + 1], '(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)')
  limit, cost, interval = tonumber(limit), tonumber(cost), tonumber(interval)
  local ok, remaining, reset = true, 0, 0
  if kind == 'rate' then
    local tat = tonumber(redis.call('GET', key) or '0')
    if tat < now then tat = now end
    local new_tat = tat + cost * interval
    local allow_at = new_tat - limit * interval
    if allow_at > now then
      ok, remaining = false, floor0((now - (tat - limit * interval)) / interval)
      reset = allow_at - now
    else
      remaining, reset = floor0((now - allow_at) / interval), new_tat - now
      a[i], b[i] = new_tat, math.ceil((new_tat - now) * 1000) + 60000
    end
  elseif kind == 'quota' then
    ends_at = tonumber(ends_at)
    local count = tonumber(redis.call('GET', key) or '0')
    reset = ends_at - now
    if count + cost > limit then
      ok, remaining = false, limit - count
    else
      remaining = limit - count - cost
      a[i], b[i] = cost, math.ceil(reset * 1000) + 60000
    end
  elseif kind == 'rolling' then
    slices = tonumber(slices)
    local current = math.floor(now / interval)
    local oldest = current - slices + 1
    local raw = redis.call('HGETALL', key)
    local live, stale, order, used = {}, {}, {}, 0
    for j = 1, #raw, 2 do
      local index, count = tonumber(raw[j]), tonumber(raw[j + 1])
      if index >= oldest then
        live[index] = count; used = used + count; order[#order + 1] = index
      else
        stale[#stale + 1] = raw[j]
      end
    end
    table.sort(order)
    if used + cost > limit then
      ok, remaining, reset = false, limit - used, slices * interval
      local freed = 0
      for _, index in ipairs(order) do
        freed = freed + live[index]
        if used - freed + cost <= limit then
          reset = (index + slices) * interval - now
          break
        end
      end
    else
      local first = order[1] or current
      if current < first then first = current end
      remaining, reset = limit - used - cost, (first + slices) * interval - now
      a[i], b[i], c[i] = current, math.ceil(slices * interval * 1000) + 60000, stale
    end
  else
    local held = redis.call('ZCOUNT', key, '(' .. string.format('%.17g', now), '+inf')
    if held + 1 > limit then
      ok, reset = false, 1.0
    else
      remaining = limit - held - 1
      a[i], b[i], c[i] = now + interval, math.ceil(interval * 1000) + 60000, lease
    end
  end
  kinds[i] = kind
  if not ok and failed < 0 then failed = i - 1 end
  out[#out + 1] = remaining
  out[#out + 1] = string.format('%d', math.floor(reset * 1e9 + 0.5))
end

if failed < 0 then
  for i = 1, n do
    local key, kind = KEYS[i], kinds[i]
    if kind == 'rate' then
      redis.call('SET', key, string.format('%.17g', a[i]), 'PX', b[i])
    elseif kind == 'quota' then
      redis.call('INCRBY', key, a[i])
      redis.call('PEXPIRE', key, b[i])
    elseif kind == 'rolling' then
      if #c[i] > 0 then redis.call('HDEL', key, unpack(c[i])) end
      local cost = tonumber(string.match(specs[i + 1], '%S+ %S+ (%S+)'))
      redis.call('HINCRBY', key, a[i], cost)
      redis.call('PEXPIRE', key, b[i])
    else
      redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%.17g', now))
      redis.call('ZADD', key, string.format('%.17g', a[i]), c[i])
      redis.call('PEXPIRE', key, b[i])
    end
  end
end
return (failed < 0 and '1 ' or '0 ') .. failed .. ' ' .. table.concat(out, ' ')
"""

RELEASE = """
for i = 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[i]) end
return #KEYS
"""
