-- Append a batch of events to one partition stream, with idempotency.
--@include idempotency
-- KEYS[1]      the partition stream
-- KEYS[2..5]   the partition's idempotency buckets b-2 .. b+1 (streams/idempotency.py)
-- ARGV[1]      bucket span in milliseconds (the dedupe window)
-- ARGV[2]      b, the caller's current bucket
-- ARGV[3]      the events, one msgpack array holding per event three strings: encoded
--              event, its event id, and its idempotency key ("" when it has none);
--              one argument instead of three per event keeps the client's command
--              packing (pure Python in redis.asyncio) off the hot path
-- Returns one value per event: its position, or for a duplicate {first event id,
-- first position} (a duplicate appends nothing).
local stream = KEYS[1]
local span, bucket = tonumber(ARGV[1]), tonumber(ARGV[2])
local events = cmsgpack.unpack(ARGV[3])
local fields = {}
for i = 3, #events, 3 do
  local key = events[i]
  if key ~= '' then
    fields[#fields + 1] = key
  end
end
local idem = nil
if #fields > 0 then
  idem = idem_open(2, bucket, span)
  idem_load(idem, fields)
end
local out = {}
for base = 1, #events, 3 do
  local key = events[base + 2]
  local prev = nil
  if key ~= '' then
    prev = idem_get(idem, key)
  end
  if prev then
    local sep = string.find(prev, ' ', 1, true)
    out[#out + 1] = {string.sub(prev, 1, sep - 1), string.sub(prev, sep + 1)}
  else
    local position = redis.call('XADD', stream, '*', 'e', events[base])
    if key ~= '' then
      idem_put(idem, key, events[base + 1] .. ' ' .. position)
    end
    out[#out + 1] = position
  end
end
if idem then
  idem_save(idem)
end
return out
