-- Fire due schedule entries and digest summaries of one partition, in one atomic step,
-- fenced by the scheduler's lease of the partition.
-- KEYS[1]    the partition stream
-- KEYS[2]    the partition's scheduler lease (must hold ARGV[1])
-- KEYS[3..]  per entry: its idempotency key, then its cancel tombstone if it has one
-- ARGV[1]    the consumer that must hold the lease
-- ARGV[2]    lifetime (ms) of the idempotency keys (the producer's dedupe window)
-- ARGV[3]    number of entries n
-- ARGV[4..]  per entry five values: the schedule event's position ("" = no tombstone
--            key follows its idempotency key), the created event's id, the encoded
--            created event, the drop event's id, the encoded drop event
-- Per entry, exactly one of:
--   "duplicate" — its idempotency key exists (fired or dropped before): nothing appended;
--   "dropped"   — its tombstone holds a cancel positioned after the schedule event: the
--                 schedule.cancelled (drop) event is appended instead of the created one;
--   "fired"     — the notification.created event is appended.
-- The idempotency key takes the producer's layout "event_id position", so a duplicate
-- answers the first append's position.
-- Returns {"fenced"} | {"ok", outcome, position, outcome, position, ...}.
local stream, lease = KEYS[1], KEYS[2]
local consumer, window, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

if redis.call('GET', lease) ~= consumer then
  return {'fenced'}
end

local function pad(position)
  local dash = string.find(position, '-', 1, true)
  local ms, seq = string.sub(position, 1, dash - 1), string.sub(position, dash + 1)
  return string.rep('0', 15 - #ms) .. ms .. '-' .. string.rep('0', 20 - #seq) .. seq
end

local out = {'ok'}
local k = 3
for i = 0, n - 1 do
  local base = 4 + i * 5
  local scheduled_at = ARGV[base]
  local idem = KEYS[k]
  k = k + 1
  local tomb = nil
  if scheduled_at ~= '' then
    tomb = KEYS[k]
    k = k + 1
  end
  local prev = redis.call('GET', idem)
  if prev then
    local sep = string.find(prev, ' ', 1, true)
    out[#out + 1] = 'duplicate'
    out[#out + 1] = string.sub(prev, sep + 1)
  else
    local cancelled = false
    if tomb then
      local at = redis.call('GET', tomb)
      cancelled = at and pad(at) > pad(scheduled_at)
    end
    local event_id, payload, outcome = ARGV[base + 1], ARGV[base + 2], 'fired'
    if cancelled then
      event_id, payload, outcome = ARGV[base + 3], ARGV[base + 4], 'dropped'
    end
    local position = redis.call('XADD', stream, '*', 'e', payload)
    redis.call('SET', idem, event_id .. ' ' .. position, 'PX', window)
    out[#out + 1] = outcome
    out[#out + 1] = position
  end
end
return out
