-- Apply one batch of projection writes of one partition and advance its checkpoint,
-- in one atomic step. Writes are described in consumers/projection/applier.py.
--@include positions
-- KEYS[1]  the namespace's checkpoint (string, plain position "ms-seq")
-- KEYS[2]  the partition's lease for the group (live mode: must hold ARGV[2])
-- KEYS[3]  the partition's view pointer (absent = ARGV[4])
-- KEYS[4]  the partition stream (live mode: its group's pending entries are checked)
-- KEYS[5]  the partition's dead-letter stream (live mode, when settling)
-- KEYS[6]  the namespace's key registry (build mode with ARGV[19] = "1": every key a
--          write touches is added to it, so a snapshot lists the namespace without SCAN)
-- KEYS[7]  the namespace's newest event-id bucket (string; see "Event ids" below)
-- ARGV[1]  mode: "live" (fenced, ns-checked, signals), "build" (replay: no fence,
--          no ns check, no signal), "late" (dead-letter retry: ns-checked, signals,
--          ignores and keeps the checkpoint)
-- ARGV[2]  consumer name that must hold the lease (live mode)
-- ARGV[3]  namespace the writes were built for
-- ARGV[4]  the default namespace when the view pointer is absent
-- ARGV[5]  checkpoint target: the batch's highest position (plain), "" = none
-- ARGV[6]  inbox cap (items per user)
-- ARGV[7]  signal channel ("" = publish nothing); one message per batch that changed
--          users: {"users": {user: highest position that changed them}}
-- ARGV[8..13] key prefixes: item, inbox, unread, read, archived, user state
-- ARGV[14] msgpack array of records {position, padded position, user, event id, op, ...}
-- ARGV[15] the consumer group (live mode)
-- ARGV[16] the batch's first position, padded (live mode)
-- ARGV[17] "" or, to settle the batch in the same step (live mode), msgpack
--          {positions to ack, {{position, reason, original bytes}, ...} dead letters}
-- ARGV[18] dead-letter stream cap (approximate MAXLEN)
-- ARGV[19] "1" to record written keys in KEYS[6], else ""
-- ARGV[20] key prefix of the event-id buckets (a bucket number is appended)
-- ARGV[21] bucket span in ms (HERALD_DEDUPE_WINDOW)
-- ARGV[22], ARGV[23] the dead-letter reason of a duplicate, before and after the
--          position that applied its event id
-- ARGV[24..26] key prefixes: expiring, snoozed, unseen (the inbox model: expiry,
--          snooze, seen)
-- Event ids: an entry whose event id was applied before, in the bucket of log time
-- (position ms / span) of the entry or the one before it, is a duplicate: it is not
-- applied; live with settling, its dead letter is written here (reason ARGV[22]
-- first position ARGV[23], the original bytes read back from the stream). Buckets
-- are deleted as log time moves on (never by wall-clock expiry), so a replay
-- decides exactly as live did. A record with an empty event id is not checked.
-- Returns {"ok", applied, skipped, {position, first position, ...} of the
-- duplicates} | {"fenced"} | {"ns", actual namespace} |
-- {"gap", position}: an older entry above the checkpoint is pending (delivered to
-- another consumer, e.g. a stale read of an ex-owner); applying this batch would skip
-- it, so nothing is written and the caller recovers the pending entries first.
-- {"lost", position}: the batch's last entry is no longer in the log, or the group no
-- longer has it delivered (the server lost writes after it was read); nothing is
-- written, the caller re-reads from the group.
local ckpt_key, lease_key, view_key, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local mode, consumer, ns, default_ns = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local target, cap, channel = ARGV[5], tonumber(ARGV[6]), ARGV[7]
local P_ITEM, P_INBOX, P_UNREAD = ARGV[8], ARGV[9], ARGV[10]
local P_READ, P_ARCH, P_USER = ARGV[11], ARGV[12], ARGV[13]
local P_EXP, P_SNZ, P_UNSEEN = ARGV[24], ARGV[25], ARGV[26]
local records = cmsgpack.unpack(ARGV[14])
local call = redis.call
if ARGV[19] == '1' then
  local raw, registry = redis.call, KEYS[6]
  local CREATES = {HSET = true, ZADD = true, SADD = true, SET = true, HINCRBY = true,
    INCRBY = true}
  call = function(command, key, ...)
    if CREATES[command] then
      raw('SADD', registry, key)
    end
    return raw(command, key, ...)
  end
end

-- Lease, view pointer and checkpoint in one read (one slot: the partition's tag).
local state = call('MGET', lease_key, view_key, ckpt_key)
if mode == 'live' and state[1] ~= consumer then
  return {'fenced'}
end
if mode ~= 'build' then
  local view = state[2] or default_ns
  if view ~= ns then
    return {'ns', view}
  end
end

local current = state[3]
local floor = current and pad(current) or ''

if mode == 'live' then
  local oldest = call('XPENDING', stream, ARGV[15])[2]
  if oldest then
    local padded_oldest = pad(oldest)
    if padded_oldest < ARGV[16] and padded_oldest > floor then
      return {'gap', oldest}
    end
  end
  -- The batch was read from the log: if its last entry is not there any more, the
  -- server lost writes since (restarted from an older state); applying entries the
  -- log no longer has would put the projection ahead of it.
  if target ~= '' and #call('XRANGE', stream, target, target) == 0 then
    return {'lost', target}
  end
  -- ... or it kept the entries but not their delivery to the group: then entries the
  -- group has not delivered yet may lie between the checkpoint and this batch, and
  -- applying it would move the checkpoint over them (delivered later, they would be
  -- taken for applied ones). Re-read from the group instead.
  if target ~= '' then
    for _, group in ipairs(call('XINFO', 'GROUPS', stream)) do
      local fields = {}
      for i = 1, #group, 2 do
        fields[group[i]] = group[i + 1]
      end
      if fields['name'] == ARGV[15] and pad(fields['last-delivered-id']) < pad(target) then
        return {'lost', target}
      end
    end
  end
end
local PAD_LEN = 36 -- #pad(any position); a member is pad .. ':' .. notification id

-- The user's item `nid`: its hash key, padded position, read time, archived flag.
-- Returns nil when the item does not exist or belongs to someone else.
local function owned(user, nid)
  local key = P_ITEM .. nid
  local f = call('HMGET', key, 'u', 'p', 'r', 'a', 'z')
  if f[1] ~= user then
    return nil
  end
  return key, f[2] .. ':' .. nid, f[3], f[4], f[5]
end

local function drop(user, member)
  call('ZREM', P_UNREAD .. user, member)
  call('ZREM', P_READ .. user, member)
  call('ZREM', P_ARCH .. user, member)
  call('ZREM', P_SNZ .. user, member)
  call('ZREM', P_UNSEEN .. user, member)
  call('ZREM', P_EXP .. user, member)
  call('DEL', P_ITEM .. string.sub(member, PAD_LEN + 2))
end

-- Expiry as part of the projection: items whose expires_at is at or before the log
-- time of an event that creates an item for the user go (replay decides the same).
local function prune_expired(user, padded)
  local expiring = P_EXP .. user
  local gone = call('ZRANGEBYSCORE', expiring, '-inf', tonumber(string.sub(padded, 1, 15)))
  for i = 1, #gone do
    call('ZREM', P_INBOX .. user, gone[i])
    drop(user, gone[i])
  end
end

-- The members of `set` at or below `up_to` (padded) whose item is in `category`
-- ("" = any).
local function matching(set, up_to, category)
  local members = call('ZRANGEBYLEX', set, '-', '(' .. up_to .. ';')
  if category == '' then
    return members
  end
  local out = {}
  for i = 1, #members do
    if call('HGET', P_ITEM .. string.sub(members[i], PAD_LEN + 2), 'c') == category then
      out[#out + 1] = members[i]
    end
  end
  return out
end

local OPS = {}

-- {create, nid, category, title, body, data, created_ms, sealed ("" = not sealed),
--  expires_ms ("" = never)}
OPS['create'] = function(op, position, padded, user)
  local key = P_ITEM .. op[2]
  if call('EXISTS', key) == 1 then
    return false
  end
  prune_expired(user, padded)
  call('HSET', key, 'u', user, 'p', padded, 'c', op[3], 't', op[4], 'b', op[5],
    'd', op[6], 'ts', op[7])
  if op[8] and op[8] ~= '' then
    call('HSET', key, 's', op[8])
  end
  local member = padded .. ':' .. op[2]
  if op[9] and op[9] ~= '' then
    call('HSET', key, 'x', op[9])
    call('ZADD', P_EXP .. user, op[9], member)
  end
  local inbox = P_INBOX .. user
  call('ZADD', inbox, 0, member)
  call('ZADD', P_UNREAD .. user, 0, member)
  call('ZADD', P_UNSEEN .. user, 0, member)
  local excess = call('ZCARD', inbox) - cap
  if excess > 0 then
    -- The inbox cap: the oldest items by position fall out, as part of the projection.
    local popped = call('ZPOPMIN', inbox, excess)
    for i = 1, #popped, 2 do
      drop(user, popped[i])
    end
  end
  return true
end

-- {read, nid, read_ms}
OPS['read'] = function(op, position, padded, user)
  local key, member, read_at, archived, snoozed = owned(user, op[2])
  if not key or read_at then
    return false
  end
  call('HSET', key, 'r', op[3])
  call('ZREM', P_UNSEEN .. user, member)
  if not archived and not snoozed then
    call('ZREM', P_UNREAD .. user, member)
    call('ZADD', P_READ .. user, 0, member)
  end
  return true
end

-- {unread, nid}
OPS['unread'] = function(op, position, padded, user)
  local key, member, read_at, archived, snoozed = owned(user, op[2])
  if not key or not read_at then
    return false
  end
  call('HDEL', key, 'r')
  if not archived and not snoozed then
    call('ZREM', P_READ .. user, member)
    call('ZADD', P_UNREAD .. user, 0, member)
  end
  return true
end

-- {archive, nid}
OPS['archive'] = function(op, position, padded, user)
  local key, member, read_at, archived, snoozed = owned(user, op[2])
  if not key or archived or snoozed then
    return false
  end
  call('HSET', key, 'a', '1')
  call('ZREM', (read_at and P_READ or P_UNREAD) .. user, member)
  call('ZREM', P_UNSEEN .. user, member)
  call('ZADD', P_ARCH .. user, 0, member)
  return true
end

-- {unarchive, nid}: back in the inbox, read or unread as it was (still seen).
OPS['unarchive'] = function(op, position, padded, user)
  local key, member, read_at, archived = owned(user, op[2])
  if not key or not archived then
    return false
  end
  call('HDEL', key, 'a')
  call('ZREM', P_ARCH .. user, member)
  call('ZADD', (read_at and P_READ or P_UNREAD) .. user, 0, member)
  return true
end

-- {snooze, nid, until_ms}: hidden (out of the unread and read sets, seen) until woken;
-- snoozing a snoozed item moves its wake time. Archived items are not snoozed.
OPS['snooze'] = function(op, position, padded, user)
  local key, member, read_at, archived, snoozed = owned(user, op[2])
  if not key or archived or snoozed == op[3] then
    return false
  end
  call('HSET', key, 'z', op[3])
  if not snoozed then
    call('ZREM', (read_at and P_READ or P_UNREAD) .. user, member)
    call('ZREM', P_UNSEEN .. user, member)
  end
  call('ZADD', P_SNZ .. user, op[3], member)
  return true
end

-- {woke, nid, until_ms, schedule zset, scheduled entry key, user schedules set}: the
-- snooze that ends at until_ms is over: back as unread and unseen, and its wake-up
-- leaves the schedule. A woke of an older snooze (moved since) changes nothing.
OPS['woke'] = function(op, position, padded, user)
  if tonumber(call('ZSCORE', op[4], op[2]) or '-1') == tonumber(op[3]) then
    call('ZREM', op[4], op[2])
    call('DEL', op[5])
    call('SREM', op[6], op[2])
  end
  local key, member, read_at, archived, snoozed = owned(user, op[2])
  if not key or snoozed ~= op[3] then
    return false
  end
  call('HDEL', key, 'z', 'r')
  call('ZREM', P_SNZ .. user, member)
  call('ZADD', P_UNREAD .. user, 0, member)
  call('ZADD', P_UNSEEN .. user, 0, member)
  return true
end

-- {seen, up_to (padded), category ("" = any)}: every unseen item at or below up_to.
OPS['seen'] = function(op, position, padded, user)
  local unseen = P_UNSEEN .. user
  local members = matching(unseen, op[2], op[3])
  if #members == 0 then
    return false
  end
  for from = 1, #members, 1000 do
    call('ZREM', unseen, unpack(members, from, math.min(from + 999, #members)))
  end
  return true
end

-- {bulk_read, up_to (padded), category, read_ms}: read_all within one category.
OPS['bulk_read'] = function(op, position, padded, user)
  local members = matching(P_UNREAD .. user, op[2], op[3])
  for i = 1, #members do
    OPS['read']({'read', string.sub(members[i], PAD_LEN + 2), op[4]}, position, padded, user)
  end
  return #members > 0
end

-- {bulk_archive, up_to (padded), category}: every unread and read item at or below.
OPS['bulk_archive'] = function(op, position, padded, user)
  local changed = false
  for _, set in ipairs({P_UNREAD .. user, P_READ .. user}) do
    local members = matching(set, op[2], op[3])
    for i = 1, #members do
      OPS['archive']({'archive', string.sub(members[i], PAD_LEN + 2)}, position, padded, user)
      changed = true
    end
  end
  return changed
end

-- {delete, nid}
OPS['delete'] = function(op, position, padded, user)
  local key, member = owned(user, op[2])
  if not key then
    return false
  end
  call('ZREM', P_INBOX .. user, member)
  drop(user, member)
  return true
end

-- {read_all, up_to (padded), read_ms}: every unread, unarchived item at or below up_to.
OPS['read_all'] = function(op, position, padded, user)
  local unread = P_UNREAD .. user
  local bound = '(' .. op[2] .. ';' -- ';' sorts right after ':', so up_to itself is in
  local members = call('ZRANGEBYLEX', unread, '-', bound)
  if #members == 0 then
    return false
  end
  local read, unseen = P_READ .. user, P_UNSEEN .. user
  for i = 1, #members do
    local member = members[i]
    call('HSET', P_ITEM .. string.sub(member, PAD_LEN + 2), 'r', op[3])
    call('ZADD', read, 0, member)
    call('ZREM', unseen, member)
  end
  call('ZREMRANGEBYLEX', unread, '-', bound)
  return true
end

-- {erase_inbox}: the user's every item, the inbox and status sets, the user state. It
-- changes nobody (no signal, no "pos"): afterwards no key names the user.
OPS['erase_inbox'] = function(op, position, padded, user)
  local members = call('ZRANGE', P_INBOX .. user, 0, -1)
  for i = 1, #members do
    call('DEL', P_ITEM .. string.sub(members[i], PAD_LEN + 2))
  end
  call('DEL', P_INBOX .. user, P_UNREAD .. user, P_READ .. user, P_ARCH .. user, P_USER .. user,
    P_EXP .. user, P_SNZ .. user, P_UNSEEN .. user)
  return false
end

-- {erase_schedules, schedule index, schedule zset, scheduled prefix, digest index,
--  digests due zset, digest bucket prefix}: the user's pending schedules and digests.
OPS['erase_schedules'] = function(op, position, padded, user)
  local scheduled = call('SMEMBERS', op[2])
  for i = 1, #scheduled do
    call('ZREM', op[3], scheduled[i])
    call('DEL', op[4] .. scheduled[i])
  end
  local digests = call('SMEMBERS', op[5])
  for i = 1, #digests do
    local bucket = op[7] .. digests[i]
    local fields = call('HKEYS', bucket)
    for j = 1, #fields do
      call('ZREM', op[6], user .. '|' .. digests[i] .. '|' .. fields[j])
    end
    call('DEL', bucket)
  end
  call('DEL', op[2], op[5])
  return false
end

-- {erase_topics, user topics set, topic members prefix}: the user leaves every topic.
OPS['erase_topics'] = function(op, position, padded, user)
  local topics = call('SMEMBERS', op[2])
  for i = 1, #topics do
    call('SREM', op[3] .. topics[i], user)
  end
  call('DEL', op[2])
  return false
end

-- Plain writes of other projections; keys were built by streams/keys.py.
local CALLS = {HSET = true, HDEL = true, DEL = true, SET = true, ZADD = true, ZREM = true,
  SADD = true, SREM = true, PEXPIREAT = true, HINCRBY = true, INCRBY = true, UNLINK = true}
-- {call, COMMAND, key, args...}
OPS['call'] = function(op, position, padded, user)
  if not CALLS[op[2]] then
    error('projector_apply: command not allowed: ' .. tostring(op[2]))
  end
  call(unpack(op, 2))
  return false
end

-- {mark_if, key, field, value}: the field, unless set, of a hash that exists (a workflow
-- run's notification: consumers/workflows/projection.py); nothing for any other key.
OPS['mark_if'] = function(op, position, padded, user)
  if call('EXISTS', op[2]) == 1 then
    call('HSETNX', op[2], op[3], op[4])
  end
  return false
end

-- {touch}: signal "user changed" for an event whose writes were plain calls.
OPS['touch'] = function(op, position, padded, user)
  return true
end

-- Validate every op before writing anything, so a malformed batch changes nothing.
for i = 1, #records do
  local rec = records[i]
  for j = 5, #rec do
    if type(rec[j]) ~= 'table' or not OPS[rec[j][1]] then
      return redis.error_reply('projector_apply: unknown op in record ' .. i)
    end
  end
end

-- Event ids (see the header): look up every id to apply in its bucket and the one
-- before, in one HMGET per bucket and chunk. Records come in log order, so a record's
-- bucket is computed only when its padded position reaches the next bucket's start.
local SEEN, SPAN, last_key = ARGV[20], tonumber(ARGV[21]), KEYS[7]
local rb = {} -- record index -> its bucket, for the records checked
local found = {} -- bucket -> {event id -> position that applied it, in buckets b-1, b}
local wanted, buckets = {}, {} -- bucket -> ids of records in it; the buckets in order
local b, b_end = nil, nil -- the current bucket and the padded ms where the next starts
for i = 1, #records do
  local rec = records[i]
  local padded = rec[2]
  if rec[4] ~= '' and (mode == 'late' or padded > floor) then
    if not b_end or padded >= b_end then
      b = math.floor(tonumber(string.sub(padded, 1, 15)) / SPAN)
      b_end = string.format('%015d', (b + 1) * SPAN)
    end
    rb[i] = b
    local ids = wanted[b]
    if not ids then
      ids = {}
      wanted[b] = ids
      buckets[#buckets + 1] = b
    end
    ids[#ids + 1] = rec[4]
  end
end
for _, bucket in ipairs(buckets) do
  local ids, into = wanted[bucket], {}
  found[bucket] = into
  for _, key in ipairs({SEEN .. bucket, SEEN .. (bucket - 1)}) do -- b - 1 last: it wins
    for from = 1, #ids, 500 do
      local upto = math.min(from + 499, #ids)
      local vals = call('HMGET', key, unpack(ids, from, upto))
      for k = from, upto do
        local v = vals[k - from + 1]
        if v then
          into[ids[k]] = v
        end
      end
    end
  end
end
local last = tonumber(call('GET', last_key) or '')
local last_was = last
local mine_at, mine_b = {}, {} -- event id -> position, bucket: applied by this call
local fresh, nfresh, fresh_b = {}, 0, nil -- id, position, ... to write into fresh_b
local function flush()
  for from = 1, nfresh, 1000 do
    call('HSET', SEEN .. fresh_b, unpack(fresh, from, math.min(from + 999, nfresh)))
  end
  fresh, nfresh = {}, 0
end
-- Before recording into bucket b: buckets older than b - 1 go. Only last - 1 and last
-- can exist (each move deletes what falls behind), so two DELs at most.
local function enter(bucket)
  if fresh_b ~= bucket and nfresh > 0 then
    flush()
  end
  fresh_b = bucket
  if last == nil or bucket > last then
    if last ~= nil then
      for old = last - 1, last do
        if old < bucket - 1 then
          call('UNLINK', SEEN .. old) -- freed off the main thread: a bucket can be big
        end
      end
    end
    last = bucket
  end
end

local applied, skipped = 0, 0
local duplicates = {}
local changed, changed_padded = {}, {} -- user -> highest position that changed them
for i = 1, #records do
  local rec = records[i]
  local position, padded, user = rec[1], rec[2], rec[3]
  if mode == 'late' or padded > floor then
    local first = nil
    local bucket = rb[i]
    if bucket then
      -- Applied by this call within the window, or found in the buckets b - 1 and b.
      local id = rec[4]
      local own = mine_b[id]
      if own and own >= bucket - 1 then
        first = mine_at[id]
      else
        first = found[bucket][id]
      end
      if first == position then -- this very entry (a letter retried again): not a copy
        first = nil
      elseif not first and bucket >= (last or bucket) - 1 then
        enter(bucket)
        mine_at[id], mine_b[id] = position, bucket
        fresh[nfresh + 1], fresh[nfresh + 2] = id, position
        nfresh = nfresh + 2
      end
    end
    if first then
      duplicates[#duplicates + 1] = position
      duplicates[#duplicates + 1] = first
    else
      local touched = false
      for j = 5, #rec do
        local op = rec[j]
        if OPS[op[1]](op, position, padded, user) then
          touched = true
        end
      end
      if touched then
        changed[user] = position
        changed_padded[user] = padded
      end
      applied = applied + 1
    end
    if mode ~= 'late' then
      floor = padded
    end
  else
    skipped = skipped + 1
  end
end
if nfresh > 0 then
  flush()
end
if last ~= last_was then
  call('SET', last_key, string.format('%d', last))
end

if mode ~= 'late' and target ~= '' and (not current or pad(target) > pad(current)) then
  call('SET', ckpt_key, target)
end

-- The user state's "pos": the highest position that changed the user (once per user).
for user, position in pairs(changed) do
  local last = mode == 'late' and call('HGET', P_USER .. user, 'pos')
  if not last or changed_padded[user] > pad(last) then
    call('HSET', P_USER .. user, 'pos', position)
  end
end

-- Settle: dead letters and the ack of every entry of the batch, in this same step.
if mode == 'live' and ARGV[17] ~= '' then
  local settle = cmsgpack.unpack(ARGV[17])
  local acks, dead, group = settle[1], settle[2], ARGV[15]
  for i = 1, #dead do
    local letter = dead[i]
    call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[18], '*', 'group', group,
      'position', letter[1], 'reason', letter[2], 'e', letter[3])
  end
  for i = 1, #duplicates, 2 do
    local entry = call('XRANGE', stream, duplicates[i], duplicates[i])[1]
    local raw = ''
    if entry then
      for j = 1, #entry[2], 2 do
        if entry[2][j] == 'e' then
          raw = entry[2][j + 1]
        end
      end
    end
    call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[18], '*', 'group', group,
      'position', duplicates[i], 'reason', ARGV[22] .. duplicates[i + 1] .. ARGV[23], 'e', raw)
  end
  for from = 1, #acks, 1000 do -- unpack() has a stack limit: ack in chunks
    call('XACK', stream, group, unpack(acks, from, math.min(from + 999, #acks)))
  end
end

if channel ~= '' and next(changed) then
  call('SPUBLISH', channel, cjson.encode({users = changed}))
end
return {'ok', applied, skipped, duplicates}
