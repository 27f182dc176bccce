-- One region's part of one Kafka partition batch, applied as ONE atomic step.
--
-- KEYS[1]  hash   region:{r}:offsets      partition -> last applied offset (the fence)
-- KEYS[2]  zset   region:{r}:top_k        exact all-time leaderboard
-- KEYS[3]  zset   region:{r}:top_k_bounded  at most K members, scored by their true totals
-- KEYS[4]  hash   region:{r}:meta         epoch: which incarnation of Redis state this is
-- KEYS[5]  set    region:{r}:dirty        "<key id>|<post>" changed since the last checkpoint
-- KEYS[6]  hash   region:{r}:trailing     spec -> "<lo>:<hi>", the pane starts its trailing key sums
-- KEYS[7]  hash   region:{r}:sealed       session spec -> bucket start below which sessions are sealed
-- The other keys the events need share the region's hash tag (same slot) and are named
-- here from ARGV[4]: seen:<hour>, top_k:<spec>:<start>, pane:<spec>:<start>,
-- trailing:<spec>, buckets:<spec>, bucket:<spec>:<start>.
--
-- ARGV[1] partition  ARGV[2] K  ARGV[3] epoch  ARGV[4] key prefix "region:{r}:"
-- ARGV[5] dedup horizon ms
-- ARGV[6] specs, JSON {"w": [[name, size, ttl, pane], ...], "s": [[name, bucket, ttl], ...]}
-- ARGV[7] events, JSON [[offset, event_id, post_id, timestamp, late mask], ...] in offset order;
--         late mask bit k-1: beyond window spec k's lateness; bit 15+q: beyond session spec q's
--
-- Refuses to write (returns {'NOMETA'} or {'EPOCH', <epoch>}) unless the region's state
-- belongs to the caller's epoch: after Redis lost state or was rebuilt, the caller must
-- first rewind Kafka to the checkpointed offsets.
-- Events at or below the fence were applied before (a redelivered batch): skipped.
-- Events whose event_id is already in its hour's seen set (a re-sent event): skipped.
-- Ties rank by count, then post_id (Redis orders equal scores by member bytes).
-- Trailing keys: an event's pane inside the trailing range [lo, hi] also adds to the
-- trailing key; a later pane is added by trailing-advance.lua when the watermark has
-- passed it; a pane below lo fell out of the range and is not written.
-- Session buckets below the spec's sealed mark belong to sessions already sealed: not
-- written (counted in the reply; the hot path's lateness rule makes this rare).
-- Returns {'OK', applied, duplicates, fenced, fence, kth score or -1, session events
-- refused, window ids written...}.

local epoch = redis.call('HGET', KEYS[4], 'epoch')
if not epoch then return {'NOMETA'} end
if epoch ~= ARGV[3] then return {'EPOCH', epoch} end

local partition = ARGV[1]
local K = tonumber(ARGV[2])
local prefix = ARGV[4]
local horizon = tonumber(ARGV[5])
local specs = cjson.decode(ARGV[6])
local events = cjson.decode(ARGV[7])
local W, Q = specs.w, specs.s
local HOUR = 3600000
local fmt = function(n) return string.format('%d', n) end
local band = bit.band

local fence = tonumber(redis.call('HGET', KEYS[1], partition) or '-1')
local maxOff = fence
local applied, dups, fenced = 0, 0, 0
local deltas = {}
local seenKeys = {}   -- hour -> key
local touched = {}    -- key -> hour
local wdeltas = {}    -- window key id -> {post -> n}
local wexpire = {}    -- window key id -> PEXPIREAT
local pdeltas = {}    -- pane start per spec: k -> {start -> {post -> n}}
local bdeltas = {}    -- q -> {bucket start -> {post -> n}}
local lastStart, lastId = {}, {}
for k = 1, #W do pdeltas[k] = {} end
for q = 1, #Q do bdeltas[q] = {} end

local function inc(t, key, post)
  local m = t[key]
  if m == nil then m = {}; t[key] = m end
  m[post] = (m[post] or 0) + 1
end

for _, e in ipairs(events) do
  local off = e[1]
  if off <= fence then
    fenced = fenced + 1
  else
    if off > maxOff then maxOff = off end
    local ts = e[4]
    local hour = ts - ts % HOUR
    local seenKey = seenKeys[hour]
    if seenKey == nil then seenKey = prefix .. 'seen:' .. fmt(hour); seenKeys[hour] = seenKey end
    if redis.call('SADD', seenKey, e[2]) == 0 then
      dups = dups + 1
    else
      applied = applied + 1
      touched[seenKey] = hour
      local post = e[3]
      local mask = e[5]
      deltas[post] = (deltas[post] or 0) + 1
      for k = 1, #W do
        local w = W[k]
        if band(mask, 2 ^ (k - 1)) == 0 then -- else: beyond that window's allowed lateness
          local start = ts - ts % w[2]
          if start ~= lastStart[k] then
            lastStart[k] = start
            lastId[k] = w[1] .. ':' .. fmt(start)
            wexpire[lastId[k]] = start + w[2] + w[3]
          end
          inc(wdeltas, lastId[k], post)
        end
        inc(pdeltas[k], ts - ts % w[4], post)
      end
      for q = 1, #Q do
        if band(mask, 2 ^ (15 + q)) == 0 then -- else: beyond that session spec's lateness
          inc(bdeltas[q], ts - ts % Q[q][2], post)
        end
      end
    end
  end
end

-- Dedup sets expire at the end of the horizon after their hour.
for key, hour in pairs(touched) do redis.call('PEXPIREAT', key, fmt(hour + HOUR + horizon)) end

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

local written = {}
for id, t in pairs(wdeltas) do
  local key = prefix .. 'top_k:' .. id
  for post, d in pairs(t) do
    redis.call('ZINCRBY', key, d, post)
    redis.call('SADD', KEYS[5], id .. '|' .. post)
  end
  redis.call('PEXPIREAT', key, fmt(wexpire[id]))
  written[#written + 1] = id
end

for k = 1, #W do
  local w = W[k]
  local range
  local cur = redis.call('HGET', KEYS[6], w[1])
  if cur then
    local sep = string.find(cur, ':', 1, true)
    range = { tonumber(string.sub(cur, 1, sep - 1)), tonumber(string.sub(cur, sep + 1)) }
  end
  for start, t in pairs(pdeltas[k]) do
    if range == nil or start >= range[1] then
      local key = prefix .. 'pane:' .. w[1] .. ':' .. fmt(start)
      local inRange = range ~= nil and start <= range[2]
      local trailing = prefix .. 'trailing:' .. w[1]
      for post, d in pairs(t) do
        redis.call('ZINCRBY', key, d, post)
        if inRange then redis.call('ZINCRBY', trailing, d, post) end
      end
      -- Subtracted and deleted once the watermark passes start + size; a pane never reached
      -- that way (a region gone quiet) expires after twice the size of wall-clock time.
      redis.call('PEXPIRE', key, fmt(2 * w[2] + w[4]))
    end
  end
end

local refused = 0
for q = 1, #Q do
  local s = Q[q]
  local sealed = tonumber(redis.call('HGET', KEYS[7], s[1]) or '-1')
  for start, t in pairs(bdeltas[q]) do
    if start >= sealed then
      local key = prefix .. 'bucket:' .. s[1] .. ':' .. fmt(start)
      for post, d in pairs(t) do redis.call('ZINCRBY', key, d, post) end
      -- Sealed (and deleted) once the session ends; a session longer than its ttl loses its oldest buckets.
      redis.call('PEXPIRE', key, fmt(s[3]))
      redis.call('ZADD', prefix .. 'buckets:' .. s[1], start, fmt(start))
    else
      for _, d in pairs(t) do refused = refused + d end
    end
  end
end

if maxOff > fence then redis.call('HSET', KEYS[1], partition, fmt(maxOff)) end
local reply = {'OK', applied, dups, fenced, fmt(maxOff), tostring(kthScore), refused}
for _, id in ipairs(written) do reply[#reply + 1] = id end
return reply
