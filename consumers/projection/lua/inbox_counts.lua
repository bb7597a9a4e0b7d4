-- Counts of one user's inbox per state and per category, in one snapshot (expired
-- items, as of the server's time, are not counted).
-- KEYS[1]  the partition's view pointer (absent = ARGV[2])
-- KEYS[2]  the user's inbox (every item)
-- KEYS[3]  the user's unseen set
-- ARGV[1]  namespace the keys were built for
-- ARGV[2]  the default namespace when the pointer is absent
-- ARGV[3]  item key prefix in ARGV[1]
-- Returns {"ok", cjson {total, unread, unseen, read, archived, snoozed,
-- categories = {category = {total, unread}}}} or {"ns", actual}.
local call = redis.call
local view = call('GET', KEYS[1]) or ARGV[2]
if view ~= ARGV[1] then
  return {'ns', view}
end
local t = call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local counts = {total = 0, unread = 0, unseen = 0, read = 0, archived = 0, snoozed = 0}
local categories = {}
local members = call('ZRANGE', KEYS[2], 0, -1)
for i = 1, #members do
  local member = members[i]
  local nid = string.sub(member, string.find(member, ':', 1, true) + 1)
  local f = call('HMGET', ARGV[3] .. nid, 'c', 'r', 'a', 'z', 'x')
  if f[1] and not (f[5] and tonumber(f[5]) <= now) then
    if f[4] then
      counts.snoozed = counts.snoozed + 1
    else
      local cat = categories[f[1]]
      if not cat then
        cat = {total = 0, unread = 0}
        categories[f[1]] = cat
      end
      counts.total = counts.total + 1
      cat.total = cat.total + 1
      if f[3] then
        counts.archived = counts.archived + 1
      elseif f[2] then
        counts.read = counts.read + 1
      else
        counts.unread = counts.unread + 1
        cat.unread = cat.unread + 1
      end
      if call('ZSCORE', KEYS[3], member) then
        counts.unseen = counts.unseen + 1
      end
    end
  end
end
counts.categories = categories
return {'ok', cjson.encode(counts)}
