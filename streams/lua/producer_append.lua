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
-- ARGV[4]      optional: one msgpack array of one string per event, the digest of its
--              payload ("" = none). A record keeps the first append's digest; a later
--              event under the key with another digest is a conflict.
-- Returns one value per event: its position, or for a duplicate {first event id,
-- first position} (a duplicate appends nothing), or for a conflict {first event id,
-- first position, "conflict"} (nothing appended either).
-- A record is "event_id position" or "event_id position digest".
local stream = KEYS[1]
local span, bucket = tonumber(ARGV[1]), tonumber(ARGV[2])
local events = cmsgpack.unpack(ARGV[3])
local digests = (ARGV[4] and ARGV[4] ~= '') and cmsgpack.unpack(ARGV[4]) or nil
local call, n = redis.call, #events
-- Locals and counters instead of table lengths and helper calls per event: this loop
-- is the producer's hot path (measured ~9% of the script's time).
local fields, nf = {}, 0
for i = 3, n, 3 do
  local key = events[i]
  if key ~= '' then
    nf = nf + 1
    fields[nf] = key
  end
end
local idem, found, fresh, nfresh = nil, nil, nil, 0
if nf > 0 then
  idem = idem_open(2, bucket, span)
  idem_load(idem, fields)
  found, fresh = idem.found, idem.fresh
end
local out, no = {}, 0
for base = 1, n, 3 do
  local key = events[base + 2]
  local prev = nil
  if key ~= '' then
    prev = found[key]
  end
  no = no + 1
  local digest = digests and digests[no] or ''
  if prev then
    local sep = string.find(prev, ' ', 1, true)
    local sep2 = string.find(prev, ' ', sep + 1, true)
    local first_id = string.sub(prev, 1, sep - 1)
    if sep2 then
      local first_digest = string.sub(prev, sep2 + 1)
      local position = string.sub(prev, sep + 1, sep2 - 1)
      if digest ~= '' and first_digest ~= '' and digest ~= first_digest then
        out[no] = {first_id, position, 'conflict'}
      else
        out[no] = {first_id, position}
      end
    else
      out[no] = {first_id, string.sub(prev, sep + 1)}
    end
  else
    local position = call('XADD', stream, '*', 'e', events[base])
    if key ~= '' then
      local record = events[base + 1] .. ' ' .. position
      if digest ~= '' then
        record = record .. ' ' .. digest
      end
      found[key] = record -- a later event of this call with the same key is a duplicate
      fresh[nfresh + 1], fresh[nfresh + 2] = key, record
      nfresh = nfresh + 2
    end
    out[no] = position
  end
end
if idem then
  idem_save(idem)
end
return out
