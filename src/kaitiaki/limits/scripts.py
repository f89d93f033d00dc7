"""The Lua scripts the Redis store runs: one decision, one round trip.

``DECIDE`` mirrors :func:`kaitiaki.limits.memory.evaluate` step for step, so
both stores pass the same contract tests. Its one argument is space-separated
text: ``now`` (or ``redis``: Redis' own ``TIME``, one clock for every
replica), then seven fields per check, ``kind limit cost interval ends_at
slices lease`` (``-`` for no lease). Floats go in, and are stored, as
``%.17g`` text, which round-trips a double exactly. The reply is a status
string: admitted (1/0), index of the failed check (-1 when none), then per
check the units remaining and the reset in seconds (``%.17g`` again, so it
equals the memory store's).

Every step is chosen for what it costs Redis and the client per decision,
since a decision should cost little more than one round trip: one argument
and a status reply pack and parse like a ``PING``; one ``MGET`` reads every
rate and quota counter (it answers nil for the rolling and concurrency keys,
which are read by type); a quota is written with one ``SET`` rather than
``INCRBY`` and ``PEXPIRE``; and numbers go to Redis as text formatted here,
because Redis formats a Lua number with the slower ``%.17g``. Every key gets
a relative expiry (Redis' own clock) with a minute's margin, so counters
vanish by themselves and gateway clock skew cannot cut a window short.
"""

from __future__ import annotations

__all__ = ["DECIDE", "RELEASE"]

DECIDE = """
local argument = ARGV[1]
local clock, at = string.match(argument, '^(%S+)()')
local now = tonumber(clock)
if now == nil then
  local time = redis.call('TIME')
  now = tonumber(time[1]) + tonumber(time[2]) / 1000000
end
local n = #KEYS
local values = {}
if n > 0 then values = redis.call('MGET', unpack(KEYS)) end
local reply = {'1 -1'}
-- What an admitted check writes: the value (a), the seconds it must outlive
-- (b), the stale slices or the lease (c), a rolling window's cost.
local kinds, a, b, c, costs = {}, {}, {}, {}, {}

for i = 1, n do
  local key = KEYS[i]
  local kind, limit, cost, interval, ends_at, slices, lease
  kind, limit, cost, interval, ends_at, slices, lease, at = string.match(argument,
    '^ (%a+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)()', at)
  limit, cost, interval = tonumber(limit), tonumber(cost), tonumber(interval)
  local ok, remaining, reset = true, 0, 0
  if kind == 'rate' then
    local tat = tonumber(values[i] or '0')
    if tat < now then tat = now end
    local new_tat = tat + cost * interval
    local allow_at = new_tat - limit * interval
    if allow_at > now then
      local free = (now - (tat - limit * interval)) / interval
      ok, remaining, reset = false, math.floor(free + 1e-9), allow_at - now
    else
      remaining = math.floor((now - allow_at) / interval + 1e-9)
      reset = new_tat - now
      a[i], b[i] = string.format('%.17g', new_tat), reset
    end
    if remaining < 0 then remaining = 0 end
  elseif kind == 'quota' then
    local count = tonumber(values[i] or '0')
    reset = tonumber(ends_at) - now
    if count + cost > limit then
      ok, remaining = false, limit - count
    else
      remaining = limit - count - cost
      a[i], b[i] = string.format('%d', count + cost), reset
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
      a[i], b[i], c[i] = string.format('%d', current), slices * interval, stale
      costs[i] = string.format('%d', cost)
    end
  else
    local held = redis.call('ZCOUNT', key, '(' .. string.format('%.17g', now), '+inf')
    if held + 1 > limit then
      ok, reset = false, 1.0
    else
      remaining = limit - held - 1
      a[i], b[i], c[i] = string.format('%.17g', now + interval), interval, lease
    end
  end
  kinds[i] = kind
  if not ok and reply[1] == '1 -1' then reply[1] = '0 ' .. (i - 1) end
  reply[i + 1] = string.format('%d %.17g', remaining, reset)
end

if reply[1] == '1 -1' then
  for i = 1, n do
    local key, kind = KEYS[i], kinds[i]
    -- At least 1 ms: PX refuses 0, and a window that ended long ago is gone.
    local ttl = string.format('%d', math.max(1, math.ceil(b[i] * 1000) + 60000))
    if kind == 'rate' or kind == 'quota' then
      redis.call('SET', key, a[i], 'PX', ttl)
    elseif kind == 'rolling' then
      if #c[i] > 0 then redis.call('HDEL', key, unpack(c[i])) end
      redis.call('HINCRBY', key, a[i], costs[i])
      redis.call('PEXPIRE', key, ttl)
    else
      redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%.17g', now))
      redis.call('ZADD', key, a[i], c[i])
      redis.call('PEXPIRE', key, ttl)
    end
  end
end
return {ok = table.concat(reply, ' ')}
"""

RELEASE = """
for i = 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[i]) end
return #KEYS
"""
