-- Idempotency records, included by the scripts that append under an idempotency key
-- (see streams/idempotency.py). One hash per partition and time bucket of the dedupe
-- window: field = idempotency key, value = "event_id position" of the first append.
-- A record is found while the bucket it was written in is the server's current or
-- previous one, so it answers for at least one window and less than two; each bucket
-- expires when it can no longer be consulted.
-- The caller passes four bucket keys in a row, b-2 .. b+1 of its own clock
-- (``first`` = the KEYS index of b-2), with b and the span; the server's clock picks.
-- When the server's bucket s is not among them (a clock more than a window off, or a
-- call delayed that long), the script fails with "BUCKET <s>" before writing anything
-- and the caller sends it again with the keys around s.
local function idem_open(first, b, span)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local s = math.floor(now / span)
  local off = s - b
  if off < -1 or off > 1 then
    error({err = 'BUCKET ' .. string.format('%d', s)})
  end
  -- found: idempotency key -> record (loaded, or put by this call); fresh: the flat
  -- list key, record, key, record… that idem_save writes (a hot loop may fill both
  -- directly instead of calling idem_get/idem_put).
  return {cur = KEYS[first + 2 + off], prev = KEYS[first + 1 + off],
          expire = (s + 2) * span, found = {}, fresh = {}}
end

local IDEM_CHUNK = 500

-- Look up every field (an array of idempotency keys) in both buckets at once.
local function idem_load(st, fields)
  for _, key in ipairs({st.prev, st.cur}) do
    for from = 1, #fields, IDEM_CHUNK do
      local upto = math.min(from + IDEM_CHUNK - 1, #fields)
      local vals = redis.call('HMGET', key, unpack(fields, from, upto))
      for i = from, upto do
        local v = vals[i - from + 1]
        if v then
          st.found[fields[i]] = v
        end
      end
    end
  end
end

-- The first append's "event_id position" under ``field``, or nil.
local function idem_get(st, field)
  return st.found[field]
end

-- Record an append (seen at once by later events of the same call).
local function idem_put(st, field, value)
  st.found[field] = value
  st.fresh[#st.fresh + 1] = field
  st.fresh[#st.fresh + 1] = value
end

-- Write the records of this call into the current bucket.
local function idem_save(st)
  if #st.fresh == 0 then
    return
  end
  for from = 1, #st.fresh, 2 * IDEM_CHUNK do
    local upto = math.min(from + 2 * IDEM_CHUNK - 1, #st.fresh)
    redis.call('HSET', st.cur, unpack(st.fresh, from, upto))
  end
  redis.call('PEXPIREAT', st.cur, st.expire)
end
