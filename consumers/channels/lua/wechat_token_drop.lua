-- Delete a cached WeChat access token (or the refresh lock) only if it still
-- holds the value the caller saw, so a worker that saw a stale token never
-- deletes the fresh one another worker has just stored.
local key = KEYS[1]
local expected = ARGV[1]

if redis.call('GET', key) == expected then
  return redis.call('DEL', key)
end
return 0
