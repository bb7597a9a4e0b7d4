-- Fire due schedule entries and digest summaries of one partition, in one atomic step,
-- fenced by the scheduler's lease of the partition.
--@include positions
--@include idempotency
-- KEYS[1]    the partition stream
-- KEYS[2]    the partition's scheduler lease (must hold ARGV[1])
-- KEYS[3..6] the partition's idempotency buckets b-2 .. b+1 (streams/idempotency.py)
-- KEYS[7..]  the cancel tombstone of each entry that has one, in entry order
-- ARGV[1]    the consumer that must hold the lease
-- ARGV[2]    bucket span (ms): the producer's dedupe window
-- ARGV[3]    b, the caller's current bucket
-- ARGV[4]    number of entries n
-- ARGV[5..]  per entry six values: the schedule event's position ("" = no tombstone
--            key), its idempotency key, the created event's id, the encoded created
--            event, the drop event's id, the encoded drop event
-- Per entry, exactly one of:
--   "duplicate" — its idempotency key has a record (fired or dropped before): nothing
--                 appended;
--   "dropped"   — its tombstone holds a cancel positioned after the schedule event: the
--                 schedule.cancelled (drop) event is appended instead of the created one;
--   "fired"     — the notification.created event is appended.
-- The record is the producer's ("event_id position"), so a duplicate answers the first
-- append's position, and the producer refuses a later publish under the same key.
-- Returns {"fenced"} | {"ok", outcome, position, outcome, position, ...}.
local stream, lease = KEYS[1], KEYS[2]
local consumer, span = ARGV[1], tonumber(ARGV[2])
local bucket, n = tonumber(ARGV[3]), tonumber(ARGV[4])
local FIELDS = 6

if redis.call('GET', lease) ~= consumer then
  return {'fenced'}
end

local fields = {}
for i = 0, n - 1 do
  fields[#fields + 1] = ARGV[6 + i * FIELDS]
end
local idem = idem_open(3, bucket, span)
idem_load(idem, fields)

local out = {'ok'}
local k = 7
for i = 0, n - 1 do
  local base = 5 + i * FIELDS
  local scheduled_at, key = ARGV[base], ARGV[base + 1]
  local tomb = nil
  if scheduled_at ~= '' then
    tomb = KEYS[k]
    k = k + 1
  end
  local prev = idem_get(idem, key)
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
    local event_id, payload, outcome = ARGV[base + 2], ARGV[base + 3], 'fired'
    if cancelled then
      event_id, payload, outcome = ARGV[base + 4], ARGV[base + 5], 'dropped'
    end
    local position = redis.call('XADD', stream, '*', 'e', payload)
    idem_put(idem, key, event_id .. ' ' .. position)
    out[#out + 1] = outcome
    out[#out + 1] = position
  end
end
idem_save(idem)
return out
