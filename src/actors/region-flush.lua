-- One region's part of one Kafka partition batch, applied as ONE atomic step.
--
-- KEYS[1]  hash   region:{r}:offsets      partition -> last applied offset (the fence)
-- KEYS[2]  zset   region:{r}:top_k        exact all-time leaderboard
-- KEYS[3]  zset   region:{r}:top_k_bounded  at most K members, scored by their true totals
-- KEYS[4]  hash   region:{r}:meta         epoch: which incarnation of Redis state this is
-- KEYS[5]  hash   region:{r}:dirty        "<key id>|<post>" -> its count after the last change
--                                          since the last checkpoint (-1: no longer kept)
-- KEYS[6]  hash   region:{r}:trailing     spec -> "<lo>:<hi>", the pane starts its trailing key sums
-- KEYS[7]  hash   region:{r}:sealed       session spec -> bucket start below which sessions are sealed
-- The other keys the events need share the region's hash tag (same slot) and are named
-- here from ARGV[4]: seen:<hour>, top_k:<spec>:<start>, pane:<spec>:<start>,
-- trailing:<spec>, buckets:<spec>, bucket:<spec>:<start>.
--
-- ARGV[1] partition  ARGV[2] K  ARGV[3] epoch  ARGV[4] key prefix "region:{r}:"
-- ARGV[5] dedup horizon ms
-- ARGV[6] specs, JSON {"w": [[name, size, ttl, pane], ...], "s": [[name, bucket, ttl], ...]}
-- ARGV[7] the batch, JSON {"e": events, "a": {post: n}, "w": {window id: {post: n}},
--         "p": [{pane start: {post: n}} per window spec], "b": [{bucket start: {post: n}} per
--         session spec]}: events = [[offset, event_id, post_id, timestamp, late mask], ...]
--         in offset order (late mask bit k-1: beyond window spec k's lateness; bit 15+q:
--         beyond session spec q's), and the counts the caller aggregated from ALL of them;
--         the script takes back what a fenced or duplicate event contributed.
-- ARGV[8] mode: "exact", or "bounded": the all-time key (KEYS[2]) and each window key keep
--         at most K posts with Space-Saving counts (a new post replaces the lowest and
--         starts from its count), no panes or session buckets are written.
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
-- Returns {'OK', applied, duplicates, fenced, fence, session events refused, window ids
-- written...}.

local epoch = redis.call('HGET', KEYS[4], 'epoch')
if not epoch then return {'NOMETA'} end
if epoch ~= ARGV[3] then return {'EPOCH', epoch} end

local partition = ARGV[1]
local K = tonumber(ARGV[2])
local prefix = ARGV[4]
local horizon = tonumber(ARGV[5])
local specs = cjson.decode(ARGV[6])
local batch = cjson.decode(ARGV[7])
local W, Q = specs.w, specs.s
local events = batch.e
local bounded = ARGV[8] == 'bounded'

-- Space-Saving: adds d to post in a key of at most K members; returns the post it evicted.
local function spaceSaving(key, post, d)
  if redis.call('ZSCORE', key, post) then
    redis.call('ZINCRBY', key, d, post)
    return nil
  end
  if redis.call('ZCARD', key) < K then
    redis.call('ZADD', key, d, post)
    return nil
  end
  local low = redis.call('ZPOPMIN', key, 1)
  redis.call('ZADD', key, tonumber(low[2]) + d, post)
  return low[1]
end
local HOUR = 3600000
local fmt = function(n) return string.format('%d', n) end
local band = bit.band

local fence = tonumber(redis.call('HGET', KEYS[1], partition) or '-1')
local maxOff = fence
local applied, dups, fenced = 0, 0, 0
local deltas = batch.a
local wdeltas = batch.w
local pdeltas = batch.p
local bdeltas = batch.b
local seenKeys = {}   -- hour -> key
local touched = {}    -- key -> hour

-- An event not applied (fenced or duplicate): take its contribution out of the aggregates.
local function takeBack(e)
  local post, ts, mask = e[3], e[4], e[5]
  deltas[post] = deltas[post] - 1
  for k = 1, #W do
    local w = W[k]
    if band(mask, 2 ^ (k - 1)) == 0 then
      local id = w[1] .. ':' .. fmt(ts - ts % w[2])
      wdeltas[id][post] = wdeltas[id][post] - 1
    end
    if not bounded then -- bounded mode writes no panes
      local p = pdeltas[k][fmt(ts - ts % w[4])]
      p[post] = p[post] - 1
    end
  end
  for q = 1, #Q do
    if band(mask, 2 ^ (15 + q)) == 0 then
      local b = bdeltas[q][fmt(ts - ts % Q[q][2])]
      b[post] = b[post] - 1
    end
  end
end

for _, e in ipairs(events) do
  local off = e[1]
  if off <= fence then
    fenced = fenced + 1
    takeBack(e)
  else
    if off > maxOff then maxOff = off end
    local ts = e[4]
    local hour = ts - ts % HOUR
    local seenKey = seenKeys[hour]
    if seenKey == nil then seenKey = prefix .. 'seen:' .. fmt(hour); seenKeys[hour] = seenKey end
    if redis.call('SADD', seenKey, e[2]) == 0 then
      dups = dups + 1
      takeBack(e)
    else
      applied = applied + 1
      touched[seenKey] = hour
    end
  end
end

-- Dedup sets expire at the end of the horizon after their hour.
for key, hour in pairs(touched) do redis.call('PEXPIREAT', key, fmt(hour + HOUR + horizon)) end

if bounded then
  -- The all-time key itself is the Space-Saving leaderboard.
  for post, d in pairs(deltas) do
    if d > 0 then
      local evicted = spaceSaving(KEYS[2], post, d)
      redis.call('HSET', KEYS[5], 'all|' .. post, redis.call('ZSCORE', KEYS[2], post))
      if evicted then redis.call('HSET', KEYS[5], 'all|' .. evicted, '-1') end
    end
  end
else
  -- Bounded Top-K beside the exact key: the Kth (lowest) member is read once and refreshed
  -- only after a change.
  local card = redis.call('ZCARD', KEYS[3])
  local kthScore, kthMember = -1, ''
  local function refreshKth()
    local low = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    if low[1] then kthMember = low[1]; kthScore = tonumber(low[2]) else kthMember = ''; kthScore = -1 end
  end
  refreshKth()
  for post, d in pairs(deltas) do
    if d > 0 then
      local total = tonumber(redis.call('ZINCRBY', KEYS[2], d, post))
      redis.call('HSET', KEYS[5], 'all|' .. post, fmt(total))
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
  end
end

local written = {}
local wsize = {}
for k = 1, #W do wsize[W[k][1]] = W[k] end
for id, t in pairs(wdeltas) do
  local key = prefix .. 'top_k:' .. id
  local any = false
  for post, d in pairs(t) do
    if d > 0 then
      if bounded then
        local evicted = spaceSaving(key, post, d)
        if evicted then redis.call('HSET', KEYS[5], id .. '|' .. evicted, '-1') end
        redis.call('HSET', KEYS[5], id .. '|' .. post, redis.call('ZSCORE', key, post))
      else
        redis.call('HSET', KEYS[5], id .. '|' .. post, redis.call('ZINCRBY', key, d, post))
      end
      any = true
    end
  end
  if any then
    local sep = string.find(id, ':', 1, true)
    local w = wsize[string.sub(id, 1, sep - 1)]
    redis.call('PEXPIREAT', key, fmt(tonumber(string.sub(id, sep + 1)) + w[2] + w[3]))
    written[#written + 1] = id
  end
end

for k = 1, #W do
  local w = W[k]
  local range
  local cur = redis.call('HGET', KEYS[6], w[1])
  if cur then
    local sep = string.find(cur, ':', 1, true)
    range = { tonumber(string.sub(cur, 1, sep - 1)), tonumber(string.sub(cur, sep + 1)) }
  end
  for startKey, t in pairs(pdeltas[k]) do
    local start = tonumber(startKey)
    if range == nil or start >= range[1] then
      local key = prefix .. 'pane:' .. w[1] .. ':' .. startKey
      local inRange = range ~= nil and start <= range[2]
      local trailing = prefix .. 'trailing:' .. w[1]
      for post, d in pairs(t) do
        if d > 0 then
          redis.call('ZINCRBY', key, d, post)
          if inRange then redis.call('ZINCRBY', trailing, d, post) end
        end
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
  for startKey, t in pairs(bdeltas[q]) do
    local start = tonumber(startKey)
    if start >= sealed then
      local key = prefix .. 'bucket:' .. s[1] .. ':' .. startKey
      local any = false
      for post, d in pairs(t) do
        if d > 0 then redis.call('ZINCRBY', key, d, post); any = true end
      end
      if any then
        -- Sealed (and deleted) once the session ends; a session longer than its ttl loses its oldest buckets.
        redis.call('PEXPIRE', key, fmt(s[3]))
        redis.call('ZADD', prefix .. 'buckets:' .. s[1], start, startKey)
      end
    else
      for _, d in pairs(t) do refused = refused + d end
    end
  end
end

if maxOff > fence then redis.call('HSET', KEYS[1], partition, fmt(maxOff)) end
local reply = {'OK', applied, dups, fenced, fmt(maxOff), refused}
for _, id in ipairs(written) do reply[#reply + 1] = id end
return reply
