-- Append a user's cancel of everything scheduled under a cancel key, and its tombstone,
-- in one atomic step on the partition's slot.
-- KEYS[1]  the partition stream
-- KEYS[2]  the tombstone of (user, cancel key)
-- ARGV[1]  the encoded schedule.cancelled event
-- ARGV[2]  tombstone lifetime (ms); an existing longer lifetime is kept
-- Returns the cancel event's position. The tombstone holds that position: the
-- scheduler's fire script refuses every schedule under the key whose own position is
-- lower (scheduled before this cancel), even before the projector has seen the cancel.
local stream, tombstone = KEYS[1], KEYS[2]
local payload, ttl = ARGV[1], tonumber(ARGV[2])
local position = redis.call('XADD', stream, '*', 'e', payload)
local left = redis.call('PTTL', tombstone)
if left > ttl then
  ttl = left
end
redis.call('SET', tombstone, position, 'PX', ttl)
return position
