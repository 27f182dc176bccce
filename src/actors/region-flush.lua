-- One region's part of one Kafka partition batch, applied as ONE atomic step.
--
-- KEYS[1]  hash   region:{r}:offsets      partition -> last applied offset (the fence)
-- KEYS[2]  zset   region:{r}:top_k        exact all-time leaderboard
-- KEYS[3]  zset   region:{r}:top_k_bounded  at most K members, scored by their true totals
-- KEYS[4]  hash   region:{r}:meta         epoch: which incarnation of Redis state this is
-- KEYS[5]  set    region:{r}:dirty        "<key id>|<post>" changed since the last checkpoint
-- KEYS[6]  hash   region:{r}:trailing     spec -> "<lo>:<hi>", the pane starts its trailing key sums
-- KEYS[7]  hash   region:{r}:sealed       session spec -> bucket start below which sessions are sealed
-- KEYS[8 .. 7+nSeen]          sets  region:{r}:seen:<hour>   event_ids seen (dedup horizon)
-- then nWin zsets region:{r}:top_k:<window id> (tumbling windows),
-- then nPane zsets region:{r}:pane:<spec>:<start> (panes of the trailing timeframes),
-- then S zsets region:{r}:trailing:<spec> (one per spec, in spec order),
-- then Q zsets region:{r}:buckets:<session spec> (index of the unsealed buckets),
-- then nBucket zsets region:{r}:bucket:<session spec>:<start> (a session bucket's counts)
--
-- ARGV[1] partition  ARGV[2] S = window specs  ARGV[3] K  ARGV[4] nSeen  ARGV[5] nWin
-- ARGV[6] epoch  ARGV[7] nPane  ARGV[8] Q = session specs  ARGV[9] nBucket
-- then nSeen PEXPIREAT times, then per window its PEXPIREAT time and its id, then per
-- pane its PEXPIRE ttl (ms), spec index (1..S) and start, then the S spec names, then per
-- bucket its PEXPIRE ttl, session spec index (1..Q) and start, then the Q session spec
-- names, then per event (stride 4+2S+Q): offset, event_id, post_id, seen key index (into
-- KEYS), S window indexes (1..nWin; 0 = not this window: too late), S pane indexes
-- (1..nPane), Q bucket indexes (1..nBucket; 0 = beyond that session spec's lateness).
--
-- Refuses to write (returns {'NOMETA'} or {'EPOCH', <epoch>}) unless the region's state
-- belongs to the caller's epoch: after Redis lost state or was rebuilt, the caller must
-- first rewind Kafka to the checkpointed offsets.
-- Events at or below the fence were applied before (a redelivered batch): skipped.
-- Events whose event_id is already in its seen set (a re-sent event): skipped.
-- Ties rank by count, then post_id (Redis orders equal scores by member bytes).
-- Trailing keys: an event's pane inside the trailing range [lo, hi] also adds to the
-- trailing key; a pane above hi is added by trailing-advance.lua when the watermark
-- reaches it; a pane below lo fell out of the range and is not written.
-- Session buckets below the spec's sealed mark belong to sessions already sealed: not written
-- (counted in the reply; the hot path's lateness rule makes this rare).
-- Returns {'OK', applied, duplicates, fenced, fence, kth score or -1, session events refused}.

local epoch = redis.call('HGET', KEYS[4], 'epoch')
if not epoch then return {'NOMETA'} end
if epoch ~= ARGV[6] then return {'EPOCH', epoch} end

local partition = ARGV[1]
local S = tonumber(ARGV[2])
local K = tonumber(ARGV[3])
local nSeen = tonumber(ARGV[4])
local nWin = tonumber(ARGV[5])
local nPane = tonumber(ARGV[7])
local Q = tonumber(ARGV[8])
local nBucket = tonumber(ARGV[9])
local seenKey0 = 7
local winKey0 = 7 + nSeen
local paneKey0 = winKey0 + nWin
local trKey0 = paneKey0 + nPane
local idxKey0 = trKey0 + S
local bucketKey0 = idxKey0 + Q
local seenArg0 = 9
local winArg0 = 9 + nSeen
local paneArg0 = winArg0 + 2 * nWin
local nameArg0 = paneArg0 + 3 * nPane
local bucketArg0 = nameArg0 + S
local sessNameArg0 = bucketArg0 + 3 * nBucket
local head = sessNameArg0 + Q
local stride = 4 + 2 * S + Q

local fence = tonumber(redis.call('HGET', KEYS[1], partition) or '-1')
local maxOff = fence
local applied, dups, fenced = 0, 0, 0
local deltas = {}
local wdeltas = {}
local pdeltas = {}
local bdeltas = {}
local touched = {}

for i = head + 1, #ARGV, stride do
  local off = tonumber(ARGV[i])
  if off <= fence then
    fenced = fenced + 1
  else
    if off > maxOff then maxOff = off end
    local seenKey = KEYS[tonumber(ARGV[i + 3])]
    if redis.call('SADD', seenKey, ARGV[i + 1]) == 0 then
      dups = dups + 1
    else
      applied = applied + 1
      touched[seenKey] = true
      local post = ARGV[i + 2]
      deltas[post] = (deltas[post] or 0) + 1
      for s = 1, S do
        local w = tonumber(ARGV[i + 3 + s])
        if w > 0 then -- 0: beyond that window's allowed lateness
          local t = wdeltas[w]
          if t == nil then t = {}; wdeltas[w] = t end
          t[post] = (t[post] or 0) + 1
        end
        local p = tonumber(ARGV[i + 3 + S + s])
        local t = pdeltas[p]
        if t == nil then t = {}; pdeltas[p] = t end
        t[post] = (t[post] or 0) + 1
      end
      for q = 1, Q do
        local b = tonumber(ARGV[i + 3 + 2 * S + q])
        if b > 0 then -- 0: beyond that session spec's allowed lateness
          local t = bdeltas[b]
          if t == nil then t = {}; bdeltas[b] = t end
          t[post] = (t[post] or 0) + 1
        end
      end
    end
  end
end

-- Dedup sets expire at the end of the horizon after their hour.
for j = 1, nSeen do
  local key = KEYS[seenKey0 + j]
  if touched[key] then redis.call('PEXPIREAT', key, ARGV[seenArg0 + j]) end
end

-- Bounded Top-K: the Kth (lowest) member is read once and refreshed only after a change.
local card = redis.call('ZCARD', KEYS[3])
local kthScore, kthMember = -1, ''
local function refreshKth()
  local low = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  if low[1] then kthMember = low[1]; kthScore = tonumber(low[2]) else kthMember = ''; kthScore = -1 end
end
refreshKth()

for post, d in pairs(deltas) do
  local total = tonumber(redis.call('ZINCRBY', KEYS[2], d, post))
  redis.call('SADD', KEYS[5], 'all|' .. post)
  if card < K then
    if redis.call('ZADD', KEYS[3], total, post) == 1 then card = card + 1 end
    refreshKth()
  elseif total > kthScore or (total == kthScore and post > kthMember) then
    -- Skip-write rule: only posts that beat the Kth (or are members already) touch the set.
    if redis.call('ZADD', KEYS[3], total, post) == 1 then
      redis.call('ZPOPMIN', KEYS[3], 1)
    end
    refreshKth()
  elseif redis.call('ZSCORE', KEYS[3], post) then
    redis.call('ZADD', KEYS[3], total, post)
    refreshKth()
  end
end

for w, t in pairs(wdeltas) do
  local key = KEYS[winKey0 + w]
  local id = ARGV[winArg0 + 2 * w]
  for post, d in pairs(t) do
    redis.call('ZINCRBY', key, d, post)
    redis.call('SADD', KEYS[5], id .. '|' .. post)
  end
  redis.call('PEXPIREAT', key, ARGV[winArg0 + 2 * w - 1])
end

local ranges = {}
for t = 1, S do
  local cur = redis.call('HGET', KEYS[6], ARGV[nameArg0 + t])
  if cur then
    local sep = string.find(cur, ':', 1, true)
    ranges[t] = { tonumber(string.sub(cur, 1, sep - 1)), tonumber(string.sub(cur, sep + 1)) }
  end
end
for p, t in pairs(pdeltas) do
  local spec = tonumber(ARGV[paneArg0 + 3 * p - 1])
  local start = tonumber(ARGV[paneArg0 + 3 * p])
  local range = ranges[spec]
  if range == nil or start >= range[1] then
    local key = KEYS[paneKey0 + p]
    local inRange = range ~= nil and start <= range[2]
    for post, d in pairs(t) do
      redis.call('ZINCRBY', key, d, post)
      if inRange then redis.call('ZINCRBY', KEYS[trKey0 + spec], d, post) end
    end
    redis.call('PEXPIRE', key, ARGV[paneArg0 + 3 * p - 2])
  end
end

local sealed = {}
for q = 1, Q do sealed[q] = tonumber(redis.call('HGET', KEYS[7], ARGV[sessNameArg0 + q]) or '-1') end
local refused = 0
for b, t in pairs(bdeltas) do
  local q = tonumber(ARGV[bucketArg0 + 3 * b - 1])
  local start = tonumber(ARGV[bucketArg0 + 3 * b])
  if start >= sealed[q] then
    local key = KEYS[bucketKey0 + b]
    for post, d in pairs(t) do redis.call('ZINCRBY', key, d, post) end
    redis.call('PEXPIRE', key, ARGV[bucketArg0 + 3 * b - 2])
    redis.call('ZADD', KEYS[idxKey0 + q], start, ARGV[bucketArg0 + 3 * b])
  else
    for _, d in pairs(t) do refused = refused + d end
  end
end

if maxOff > fence then redis.call('HSET', KEYS[1], partition, string.format('%d', maxOff)) end
return {'OK', applied, dups, fenced, string.format('%d', maxOff), tostring(kthScore), refused}
