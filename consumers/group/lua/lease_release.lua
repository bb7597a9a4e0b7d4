-- Give a partition lease back, only if this consumer still holds it.
-- KEYS[1]  the lease
-- ARGV[1]  this consumer's name
-- Returns 1 when released, 0 when someone else held it (or nobody).
local lease = KEYS[1]
local me = ARGV[1]
if redis.call('GET', lease) == me then
  redis.call('DEL', lease)
  return 1
end
return 0
