-- Take or keep a partition lease: set it when free, extend it when ours.
-- KEYS[1]  the lease (string: the owning consumer's name, with a PX TTL)
-- ARGV[1]  this consumer's name
-- ARGV[2]  TTL in milliseconds
-- Returns {1, ttl} when this consumer holds the lease afterwards, else
-- {0, remaining ms of the other owner's lease}.
local lease = KEYS[1]
local me, ttl = ARGV[1], tonumber(ARGV[2])
if redis.call('SET', lease, me, 'NX', 'PX', ttl) then
  return {1, ttl}
end
if redis.call('GET', lease) == me then
  redis.call('PEXPIRE', lease, ttl)
  return {1, ttl}
end
return {0, redis.call('PTTL', lease)}
