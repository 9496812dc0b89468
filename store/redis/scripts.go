package redis

import goredis "github.com/redis/go-redis/v9"

// nextID is the Lua that picks the stream ID of a new changelog entry:
// "<ms>-<n>", where n counts the log's entries from 1 without gaps and ms is
// the server's clock, never going backwards. Because n is dense, a reader
// can tell from the first entry kept whether entries it has not read were
// trimmed away. KEYS[seqkey] is the log's counter hash (n, ms).
const nextID = `
local function nextid(seqkey)
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local last = redis.call('HMGET', seqkey, 'n', 'ms')
  local n = tonumber(last[1] or '0') + 1
  local lms = tonumber(last[2] or '0')
  if ms < lms then ms = lms end
  redis.call('HSET', seqkey, 'n', n, 'ms', ms)
  return string.format('%d-%d', ms, n)
end
`

// applyScript writes one change if the record is still at the version read
// and the user's data key is as read (see shred.go). A user's first change
// also appends the user to the shard's user list, whose length gives the
// user's dense number.
//
// It refuses to write to a slot that lost its identity marker (the log
// counter's field e differs from the store's epoch) and to a user whose
// record is gone while receipts of theirs remain (a lost record must not be
// silently re-created from empty).
//
// KEYS: 1 user hash, 2 receipts list, 3 shard log, 4 receipt index, 5 log
// counter, 6 shard user list, 7 the user's request counts (deleted by an
// erasure), 8 the shard's ledger pseudonyms (an erasure deletes the user's
// link, field lp of the user's hash)
// ARGV: 1 expected version, 2 new version, 3 record JSON, 4 receipt list
// item, 5 receipt time (unix ms), 6 changelog MAXLEN, 7 user ID, 8 shard
// count, 9 shard, 10 epoch, 11 data key, 12 key mode (new: set it, none
// must be there; have: it must be there; replace: the damaged key as read,
// ARGV 14, is replaced; drop: delete it, an erasure), 13 status (st), 14 the
// key field as read, 15 the record JSON as the writer last saw it written
// (a one-round-trip write: the stored JSON must still be exactly that; ""
// when read just now), 16 R: the number of receipt items to rewrite (an
// erasure: the list must still hold exactly R items, replaced by ARGV 17 to
// 16+R before the new one is appended), then the changelog entry's fields
// and values
// Returns {1, stream ID, user number}, {2, stream ID or "", user number}
// (this write was made already: a resend), {0, current version} (read
// again), {-1} (slot lost its identity) or {-2} (record lost).
var applyScript = goredis.NewScript(nextID + `
if redis.call('HGET', KEYS[5], 'e') ~= ARGV[10] then return {-1} end
local cur = redis.call('HGET', KEYS[1], 'v') or '0'
if cur == '0' and redis.call('EXISTS', KEYS[2]) == 1 then return {-2} end
if cur == ARGV[2] and redis.call('HGET', KEYS[1], 'd') == ARGV[3] then
  -- This very write is there already: its reply was lost and the client
  -- sent it again. Answer it as done (its entry, when still among the
  -- log's last 256) instead of a conflict that would apply it twice.
  local id = ''
  for _, e in ipairs(redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 256)) do
    local f = e[2]
    if f[1] == 'u' and f[2] == ARGV[7] and f[3] == 'v' and f[4] == ARGV[2] then id = e[1] break end
  end
  return {2, id, redis.call('HGET', KEYS[1], 'n') or ''}
end
if cur ~= ARGV[1] then return {0, cur} end
if ARGV[15] ~= '' and redis.call('HGET', KEYS[1], 'd') ~= ARGV[15] then return {0, cur} end
local k = redis.call('HGET', KEYS[1], 'k')
local mode = ARGV[12]
if mode == 'new' then
  if k then return {0, cur} end
  redis.call('HSET', KEYS[1], 'k', ARGV[11])
elseif mode == 'have' then
  if k ~= ARGV[11] then return {0, cur} end
elseif mode == 'replace' then
  if k ~= ARGV[14] then return {0, cur} end
  redis.call('HSET', KEYS[1], 'k', ARGV[11])
else
  redis.call('HDEL', KEYS[1], 'k')
  redis.call('DEL', KEYS[7])
  local lp = redis.call('HGET', KEYS[1], 'lp')
  if lp then
    redis.call('HDEL', KEYS[8], lp)
    redis.call('HDEL', KEYS[1], 'lp')
  end
end
local r = tonumber(ARGV[16])
if mode == 'drop' then
  if redis.call('LLEN', KEYS[2]) ~= r then return {0, cur} end
  redis.call('DEL', KEYS[2])
  for i = 17, 16 + r do redis.call('RPUSH', KEYS[2], ARGV[i]) end
end
local num = redis.call('HGET', KEYS[1], 'n')
if not num then
  local c = redis.call('RPUSH', KEYS[6], ARGV[7])
  num = string.format('%d', (c - 1) * tonumber(ARGV[8]) + tonumber(ARGV[9]) + 1)
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3], 'n', num)
if ARGV[13] == '' then redis.call('HDEL', KEYS[1], 'st') else redis.call('HSET', KEYS[1], 'st', ARGV[13]) end
redis.call('RPUSH', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[4], 'NX', ARGV[5], ARGV[7])
local f = {}
for i = 17 + r, #ARGV do f[#f+1] = ARGV[i] end
f[#f+1] = 'n'
f[#f+1] = num
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], nextid(KEYS[5]), unpack(f))
return {1, id, num}
`)

// settingsScript saves settings if they are still at the version read.
//
// KEYS: 1 settings hash, 2 settings receipts list, 3 settings log, 4 log counter
// ARGV: 1 expected version, 2 new version, 3 settings JSON, 4 receipt list
// item, 5 receipt JSON, 6 receipt hash, 7 receipt seq, 8 MAXLEN, 9 epoch
// Returns {1, stream ID}, {0, current version} or {-1} (slot lost its
// identity).
var settingsScript = goredis.NewScript(nextID + `
if redis.call('HGET', KEYS[4], 'e') ~= ARGV[9] then return {-1} end
local cur = redis.call('HGET', KEYS[1], 'v') or '0'
if cur ~= ARGV[1] then return {0, cur} end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3], 'h', ARGV[6], 'n', ARGV[7])
redis.call('RPUSH', KEYS[2], ARGV[4])
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], nextid(KEYS[4]), 's', ARGV[3], 'c', ARGV[5])
return {1, id}
`)

// initSettingsScript stores the first settings unless some exist.
//
// KEYS: 1 settings hash. ARGV: 1 settings JSON. Returns 1 if it wrote.
var initSettingsScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'v', '1', 'd', ARGV[1], 'h', '', 'n', '0')
return 1
`)

// purgeScript pops receipts older than a cutoff from the head of a receipts
// list and keeps the receipt index in step.
//
// KEYS: 1 receipts list, 2 receipt index (or the list itself for settings)
// ARGV: 1 cutoff (unix ms), 2 member in the index ("" for none)
// Returns the number of receipts removed.
var purgeScript = goredis.NewScript(`
local n = 0
local cutoff = tonumber(ARGV[1])
while true do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head then
    if ARGV[2] ~= '' then redis.call('ZREM', KEYS[2], ARGV[2]) end
    break
  end
  local at = tonumber(string.match(head, '^(%-?%d+) '))
  if at >= cutoff then
    if ARGV[2] ~= '' then redis.call('ZADD', KEYS[2], at, ARGV[2]) end
    break
  end
  redis.call('LPOP', KEYS[1])
  n = n + 1
end
return n
`)

// initMetaScript writes a new keyspace's identity unless one exists.
//
// KEYS: 1 meta hash. ARGV: 1 shard count, 2 epoch. Returns 1 if it wrote.
var initMetaScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'shards', ARGV[1], 'epoch', ARGV[2])
return 1
`)

// readScript reads users' records of one shard, checking the shard's
// identity marker in the same atomic step.
//
// KEYS: 1 the shard's log counter, then for each user its hash and its
// receipts list. ARGV: 1 epoch.
// Returns {-1} when the shard lost its identity, else {1, then per user: v,
// d, n, a (the purge anchor), receipts-exist (0/1)}; missing fields are nil.
var readScript = goredis.NewScript(`
if redis.call('HGET', KEYS[1], 'e') ~= ARGV[1] then return {-1} end
local out = {1}
local j = 2
for i = 2, #KEYS, 2 do
  local r = redis.call('HMGET', KEYS[i], 'v', 'd', 'n', 'a')
  out[j] = r[1]; out[j+1] = r[2]; out[j+2] = r[3]; out[j+3] = r[4]
  if r[1] then out[j+4] = 0 else out[j+4] = redis.call('EXISTS', KEYS[i+1]) end
  j = j + 5
end
return out
`)

// touchScript marks a slot written (the log counter's field t) so that a
// WAIT on the same connection confirms every earlier write to the slot has
// reached the replicas: used for a change that turned out to be a no-op
// (a retry) when Durability asks for replicas.
//
// KEYS: 1 the slot's log counter. ARGV: 1 epoch, 2 time (unix ms).
// Returns {1} or {-1} (slot lost its identity).
var touchScript = goredis.NewScript(`
if redis.call('HGET', KEYS[1], 'e') ~= ARGV[1] then return {-1} end
redis.call('HSET', KEYS[1], 't', ARGV[2])
return {1}
`)

// purgeUserScript removes the oldest receipts of one user, exactly those
// the caller read and found expired, and records their anchor.
//
// KEYS: 1 receipts list, 2 receipt index, 3 user hash
// ARGV: 1 number of receipts to remove, 2 the last of them as read, 3 the
// anchor JSON, 4 the user ID
// Returns the number removed, or -1 when the list changed since it was read
// (read again).
var purgeUserScript = goredis.NewScript(`
local n = tonumber(ARGV[1])
if redis.call('LINDEX', KEYS[1], n - 1) ~= ARGV[2] then return -1 end
redis.call('LTRIM', KEYS[1], n, -1)
redis.call('HSET', KEYS[3], 'a', ARGV[3])
local head = redis.call('LINDEX', KEYS[1], 0)
if head then
  redis.call('ZADD', KEYS[2], tonumber(string.match(head, '^(%-?%d+) ')), ARGV[4])
else
  redis.call('ZREM', KEYS[2], ARGV[4])
end
return n
`)

// outcomeKeysScript returns, for each user of one shard, the data key and
// status, creating the data key of a user who has none (and is not erased)
// from the one offered.
//
// KEYS: the users' hashes. ARGV: one offered key per user.
// Returns per user {key or false, status or false}.
var outcomeKeysScript = goredis.NewScript(`
local out = {}
for i = 1, #KEYS do
  local r = redis.call('HMGET', KEYS[i], 'k', 'st', 'd')
  if not r[2] and r[3] and string.find(r[3], '"erased":true', 1, true) then
    r[2] = 'e' -- erased before st existed
  end
  if not r[1] and r[2] ~= 'e' then
    redis.call('HSET', KEYS[i], 'k', ARGV[i])
    r[1] = ARGV[i]
  end
  out[i] = {r[1], r[2]}
end
return out
`)

// countScript records one request in a user's request counts and counts
// those of its class in the window.
//
// KEYS: 1 the user's request counts (a sorted set: member
// "<class>|<ms>|<random>", score ms). ARGV: 1 window start (unix ms,
// exclusive), 2 now (unix ms), 3 member, 4 "<class>|", 5 TTL (ms), 6 cap.
// Returns the count.
var countScript = goredis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[6])
if over > 0 then redis.call('ZPOPMIN', KEYS[1], over) end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local n = 0
local p = ARGV[4]
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')) do
  if string.sub(m, 1, #p) == p then n = n + 1 end
end
return n
`)

// rewriteListScript replaces a list if it still holds the number of items
// read. KEYS: 1 the list. ARGV: 1 the number read, 2.. the new items.
// Returns the number written, or -1 when the list changed (read again).
var rewriteListScript = goredis.NewScript(`
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return -1 end
redis.call('DEL', KEYS[1])
for i = 2, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
return #ARGV - 1
`)

// setRecordScript replaces a record's JSON if it is still at the version
// read. KEYS: 1 the user's hash. ARGV: 1 the version, 2 the JSON.
var setRecordScript = goredis.NewScript(`
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[2])
return 1
`)
