-- Replace a user's stored data key only if it is still the one the caller read, so an
-- erasure between the read and the write wins (streams/keystore.py, rewrap).
-- KEYS[1]  the partition's data-key hash
-- ARGV[1]  the user
-- ARGV[2]  the stored key as read
-- ARGV[3]  the stored key to write
-- Returns 1 when replaced, 0 when the stored key changed (or was erased) meanwhile.
local keys_hash = KEYS[1]
local user, seen, new = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', keys_hash, user) == seen then
  redis.call('HSET', keys_hash, user, new)
  return 1
end
return 0
