-- One region's events of one or more partition batches, applied as ONE atomic step.
--
-- KEYS[1]  hash   region:{r}:offsets        partition -> last applied offset (the fence)
-- KEYS[2]  zset   region:{r}:top_k          exact all-time leaderboard
-- KEYS[3]  zset   region:{r}:top_k_bounded  at most K members, scored by their true totals
-- KEYS[4]  hash   region:{r}:meta           epoch: which incarnation of Redis state this is
-- KEYS[5]  set    region:{r}:dirty          key ids changed since the last checkpoint; per key id the
--                                           hash region:{r}:dirty:<id> post -> its count after the
--                                           last change (-1: no longer kept)
-- KEYS[6]  hash   region:{r}:trailing       spec -> "<lo>:<hi>", the pane starts its trailing key sums;
--                                           spec:next the same for the spare key, spec:job a move in progress;
--                                           spec:rolled the first pane not yet summed from its source's panes,
--                                           spec:roll a roll in progress (trailing.lua's roll)
-- KEYS[7]  hash   region:{r}:sealed         session spec -> bucket start below which sessions are sealed;
--                                           final:<tumbling spec> -> the start of its latest window
--                                           taking its FINAL snapshot (window-snapshots.ts)
-- The other keys share the region's hash tag (one Redis Cluster slot) and are named from
-- the prefix: seen, seen:slices, seen:<slice start>, top_k:<window id>, pane:<spec>:<start>, trailing:<spec>[:next],
-- buckets:<spec>, bucket:<spec>:<start>.
--
-- ARGV[1] header, JSON (named fields): epoch, prefix "region:{r}:", k (bounded size), mode
--         ("exact" | "bounded"), dedup_ms (ids are remembered for at least this, by
--         processing time), dedup_slices (eviction granularity), ahead (how far past the clock an
--         accepted event may be stamped), w [[name, size ms, ttl ms (with the grace), pane ms,
--         source spec of its panes (1-based; 0: none), pane ttl ms, source spec of its windows
--         (1-based; 0: written here; config.ts rollChain)], ...] tumbling specs,
--         s [[name, bucket ms, ttl ms], ...] session specs
-- ARGV[2] partitions, JSON [[partition, first offset, last offset], ...] of the events here
-- ARGV[3] event ids, JSON ["id", ...] (no id twice: the caller removes repeats first)
-- ARGV[4] the counts the events add, aggregated by the caller, JSON
--         {a: [n, post, ...], w: {window id: [n, post, ...]}, p: [{pane start: [n, post, ...]}
--         per tumbling spec], b: [{bucket start: [n, post, ...]} per session spec]}; a key's
--         list is 0 when it took every event of the flush (it adds exactly what `a` adds)
--
-- Nothing is written unless every event is new:
--   {'NOMETA'} / {'EPOCH', epoch}  Redis lost its state or was rebuilt: the caller rewinds;
--   {'FENCED', partition, fence, ...}  events at or below a partition's fence were applied
--                                      before (a redelivery): the caller drops them, retries;
--   {'DUPS', json [index, ...]}        event ids seen within the dedup horizon (a re-send):
--                                      the caller drops them (1-based), retries.
-- Else applies everything and returns {'OK', events applied, session events refused, entries
-- waiting for a checkpoint, microseconds its event step ran (dedup, fences), microseconds its
-- post step ran (the counts), window events refused, window ids written...}: the caller sizes
-- its next flush by those times (flush-budget.ts). A window at or before its spec's final mark takes nothing (its FINAL
-- snapshot is being or was taken: the events' batch was triaged against an older watermark);
-- those events count all-time and in the other keys, and as refused.
--
-- Counts are applied per key in bulk: ZMSCORE the posts, ZADD their new totals (one call per
-- thousand posts), and the same totals into the key's dirty hash (HSET) for windows and all-time.
-- Ties rank by count, then post_id (Redis orders equal scores by member bytes).

local H = cjson.decode(ARGV[1])
local epoch = redis.call('HGET', KEYS[4], 'epoch')
if not epoch then return {'NOMETA'} end
if epoch ~= H.epoch then return {'EPOCH', epoch} end

local prefix = H.prefix
local K = H.k
local bounded = H.mode == 'bounded'
local W, Q = H.w, H.s
local fmt = function(n) return string.format('%d', n) end
-- Counts go to Redis as strings made here, once per distinct value: a Lua number passed to
-- redis.call is formatted by Redis with "%.17g" at every call, which cost as much as the ZADD
-- and HSET themselves (a 1,000-member ZADD + HSET: 0.60 ms with numbers, 0.30 with strings).
local strs = {}
local function str(n)
  local s = strs[n]
  if not s then
    s = fmt(n)
    strs[n] = s
  end
  return s
end
local CHUNK = 1000 -- posts per bulk call (Lua's unpack stays far below its stack limit)

-- Fences: a partition's events here are in offset order, so the fenced ones are a prefix.
local parts = cjson.decode(ARGV[2])
local fenced = {}
local fences = {}
for i, p in ipairs(parts) do
  local fence = tonumber(redis.call('HGET', KEYS[1], p[1]) or '-1')
  fences[i] = fence
  if fence >= p[2] then
    fenced[#fenced + 1] = p[1]
    fenced[#fenced + 1] = fmt(fence)
  end
end
if #fenced > 0 then return {'FENCED', unpack(fenced)} end

-- Dedup by processing time. `seen` holds every remembered id; the ids also go, in arrival
-- order, into the list of their time slice (seen:<slice start ms>; slices of dedup_ms /
-- dedup_slices), indexed by slice end in the zset seen:slices. A slice whose end is a horizon
-- behind the clock is evicted (its ids removed from `seen`, a bounded number per flush), so
-- an id is remembered for at least dedup_ms and the ids stay within (slices + 1) / slices of
-- one horizon's worth. A changed horizon or an idle gap costs nothing: the index names the
-- lists that exist. Eviction runs before the check (housekeeping, written even when the flush
-- then returns DUPS).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local L = math.ceil(H.dedup_ms / H.dedup_slices)
local sliceStart = math.floor(now / L) * L
local seen = prefix .. 'seen'
local index = prefix .. 'seen:slices'
local ids = cjson.decode(ARGV[3])
local budget = 2 * #ids + CHUNK
while budget > 0 do
  local first = redis.call('ZRANGE', index, 0, 0, 'WITHSCORES')
  if #first == 0 or tonumber(first[2]) > now - H.dedup_ms then break end
  local gone = redis.call('LPOP', prefix .. 'seen:' .. first[1], math.min(budget, CHUNK))
  if gone then
    redis.call('SREM', seen, unpack(gone))
    budget = budget - #gone
  else
    redis.call('ZREM', index, first[1])
  end
end
local dups = {}
for base = 1, #ids, CHUNK do
  local a = redis.call('SMISMEMBER', seen, unpack(ids, base, math.min(#ids, base + CHUNK - 1)))
  for j = 1, #a do
    if a[j] == 1 then dups[#dups + 1] = base + j - 1 end
  end
end
if #dups > 0 then return {'DUPS', cjson.encode(dups)} end
if #ids > 0 then
  local list = prefix .. 'seen:' .. fmt(sliceStart)
  for base = 1, #ids, CHUNK do
    local last = math.min(#ids, base + CHUNK - 1)
    redis.call('SADD', seen, unpack(ids, base, last))
    redis.call('RPUSH', list, unpack(ids, base, last))
  end
  redis.call('ZADD', index, fmt(sliceStart + L), fmt(sliceStart))
  -- An idle region's ids go whole: the set outlives its last write by one horizon and a
  -- slice, the lists and their index by one more slice (none expires before it is evicted).
  redis.call('PEXPIRE', seen, fmt(H.dedup_ms + L))
  redis.call('PEXPIRE', list, fmt(H.dedup_ms + 2 * L))
  redis.call('PEXPIRE', index, fmt(H.dedup_ms + 2 * L))
end

for i, p in ipairs(parts) do
  if p[3] > fences[i] then redis.call('HSET', KEYS[1], p[1], fmt(p[3])) end
end

-- The event step ends here: the rest costs per post (flush-budget.ts learns the two apart).
local tPosts = redis.call('TIME')
local D = cjson.decode(ARGV[4])
-- A key's list sent as 0 took every event of the flush: it adds exactly what all-time adds,
-- and reads all-time's list itself (nothing rewrites a list).
local function listOf(x)
  if x ~= 0 then return x end
  return D.a
end
-- Entries newly waiting for a checkpoint (HSET counts the fields it adds).
local pending = 0

-- Per list, the posts of each chunk, built once: the keys that took every event share
-- all-time's list, so its posts are gathered once per flush, not once per key.
local postsOf = {}
local function chunkPosts(list, first, last)
  local byFirst = postsOf[list]
  if not byFirst then
    byFirst = {}
    postsOf[list] = byFirst
  end
  local posts = byFirst[first]
  if not posts then
    posts = {}
    local n = 0
    for j = first + 1, last, 2 do
      n = n + 1
      posts[n] = list[j]
    end
    byFirst[first] = posts
  end
  return posts
end

-- The scores in `key` (false where absent) of the posts of list[first..last], a [n, post, ...] list.
local function scoresOf(key, list, first, last)
  return redis.call('ZMSCORE', key, unpack(chunkPosts(list, first, last)))
end

-- Adds [n, post, ...] to `key` and, when `dirtyId` is given, records the totals in that key
-- id's dirty hash; with `totals`, also puts each post's new total there at its count's index.
-- One ZMSCORE, one ZADD and one HSET per CHUNK posts.
local function bulk(key, list, dirtyId, totals)
  local dirty = dirtyId and (prefix .. 'dirty:' .. dirtyId)
  for base = 1, #list, 2 * CHUNK do
    local last = math.min(#list, base + 2 * CHUNK - 1)
    local old = scoresOf(key, list, base, last)
    local zargs = {}
    local hargs = {}
    local i = 0
    for j = base, last, 2 do
      i = i + 1
      local total = (tonumber(old[i]) or 0) + list[j]
      if totals then totals[j] = total end
      local s = str(total)
      local post = list[j + 1]
      zargs[2 * i - 1] = s
      zargs[2 * i] = post
      if dirty then
        hargs[2 * i - 1] = post
        hargs[2 * i] = s
      end
    end
    redis.call('ZADD', key, unpack(zargs))
    if dirty then pending = pending + redis.call('HSET', dirty, unpack(hargs)) end
  end
  if dirty and #list > 0 then redis.call('SADD', KEYS[5], dirtyId) end
end

-- Space-Saving (bounded mode): adds [n, post, ...] to `key`, a leaderboard of at most K posts,
-- and records every change in the key id's dirty hash (-1: a post no longer kept). The posts
-- already kept go first, in bulk (their totals only grow, so none is evicted); then the new
-- ones in list order: each enters with its count while there is room, and once the key is
-- full replaces the lowest post (ZPOPMIN: lowest count, then lowest post_id) and starts from
-- that post's count - the same algorithm per post, in an order that needs two calls per new
-- post instead of seven. Dirty entries are written in one HSET per CHUNK pairs, in the order
-- they happened (a post kept and then evicted in the same flush ends at -1).
local function spaceSavingAll(key, list, dirtyId)
  local dirty = prefix .. 'dirty:' .. dirtyId
  local changes = {}
  local fresh = {}
  for base = 1, #list, 2 * CHUNK do
    local last = math.min(#list, base + 2 * CHUNK - 1)
    local old = scoresOf(key, list, base, last)
    local kept = {}
    local i = 0
    for j = base, last, 2 do
      i = i + 1
      if old[i] then
        local total = str(tonumber(old[i]) + list[j])
        kept[#kept + 1] = total
        kept[#kept + 1] = list[j + 1]
        changes[#changes + 1] = list[j + 1]
        changes[#changes + 1] = total
      else
        fresh[#fresh + 1] = list[j]
        fresh[#fresh + 1] = list[j + 1]
      end
    end
    if #kept > 0 then redis.call('ZADD', key, unpack(kept)) end
  end
  local card = redis.call('ZCARD', key)
  local j = 1
  local room = {}
  while j <= #fresh and card < K do
    local n = str(fresh[j])
    room[#room + 1] = n
    room[#room + 1] = fresh[j + 1]
    changes[#changes + 1] = fresh[j + 1]
    changes[#changes + 1] = n
    card = card + 1
    j = j + 2
  end
  for base = 1, #room, 2 * CHUNK do
    redis.call('ZADD', key, unpack(room, base, math.min(#room, base + 2 * CHUNK - 1)))
  end
  while j <= #fresh do
    local low = redis.call('ZPOPMIN', key, 1)
    local total = str(tonumber(low[2]) + fresh[j])
    redis.call('ZADD', key, total, fresh[j + 1])
    changes[#changes + 1] = low[1]
    changes[#changes + 1] = '-1'
    changes[#changes + 1] = fresh[j + 1]
    changes[#changes + 1] = total
    j = j + 2
  end
  for base = 1, #changes, 2 * CHUNK do
    pending = pending + redis.call('HSET', dirty, unpack(changes, base, math.min(#changes, base + 2 * CHUNK - 1)))
  end
  if #list > 0 then redis.call('SADD', KEYS[5], dirtyId) end
end

if bounded then
  -- The all-time key itself is the Space-Saving leaderboard.
  spaceSavingAll(KEYS[2], D.a, 'all')
else
  -- The bounded Top-K beside the exact key: every changed post whose total reaches the Kth
  -- (lowest) member's score takes its new total there (a member always does: totals only
  -- grow), then the set is cut back to its K highest (equal scores: the larger post_id stays,
  -- the documented rank order). A post below the Kth cannot be in it, nor enter it.
  local kth = -1
  if redis.call('ZCARD', KEYS[3]) >= K then
    local low = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    kth = tonumber(low[2])
  end
  local enter = {}
  local totals = {}
  bulk(KEYS[2], D.a, 'all', totals)
  for j = 1, #D.a, 2 do
    if totals[j] >= kth then
      enter[#enter + 1] = str(totals[j])
      enter[#enter + 1] = D.a[j + 1]
    end
  end
  for base = 1, #enter, 2 * CHUNK do
    redis.call('ZADD', KEYS[3], unpack(enter, base, math.min(#enter, base + 2 * CHUNK - 1)))
  end
  if #enter > 0 then redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(K + 1)) end
end

local written = {}
local spec = {}
local final = {}
local windowRefused = 0
-- Roll-ups (exact mode): a spec with a source (w[7], 1-based) takes the windows of that spec
-- (its children) once they are FINAL, added page by page (store/window-roll.lua), not per
-- flush. A child at or before its spec's final mark, or rolled already (KEYS[7] field
-- rolled:<child spec> = "<start>:<cursor>": every child before start is rolled, the child at
-- start up to rank cursor), takes nothing more: its events go straight to the windows of
-- its parents that hold it, each under its own final mark. A child written here is listed
-- in unrolled:<child spec> (a zset of starts) until it is rolled, and its key lives as long
-- as the longest of its parents' keys (a roll never finds it expired; the roll shortens it).
local parentsOf = {}
local rolledAt = {}
if next(D.w) ~= nil and #W > 0 then
  local fields = {}
  for k = 1, #W do
    spec[W[k][1]] = W[k]
    fields[k] = 'final:' .. W[k][1]
    local src = W[k][7] or 0
    if src > 0 then
      local child = W[src][1]
      if not parentsOf[child] then parentsOf[child] = {} end
      local ps = parentsOf[child]
      ps[#ps + 1] = W[k]
    end
  end
  local marks = redis.call('HMGET', KEYS[7], unpack(fields))
  for k = 1, #W do final[W[k][1]] = tonumber(marks[k]) end
  for child in pairs(parentsOf) do
    local at = redis.call('HGET', KEYS[7], 'rolled:' .. child)
    if at then
      local sep = string.find(at, ':', 1, true)
      rolledAt[child] = { tonumber(string.sub(at, 1, sep - 1)), tonumber(string.sub(at, sep + 1)) }
    end
  end
end
local through = {}
local throughIds = {}
for id, sent in pairs(D.w) do
  local list = listOf(sent)
  local sep = string.find(id, ':', 1, true)
  local name = string.sub(id, 1, sep - 1)
  local start = tonumber(string.sub(id, sep + 1))
  local parents = parentsOf[name]
  local at = rolledAt[name]
  local rolled = at and (start < at[1] or (start == at[1] and at[2] > 0))
  if (final[name] and start <= final[name]) or rolled then
    for j = 1, #list, 2 do windowRefused = windowRefused + list[j] end
    for _, p in ipairs(parents or {}) do
      local pid = p[1] .. ':' .. fmt(math.floor(start / p[2]) * p[2])
      if not through[pid] then
        through[pid] = {}
        throughIds[#throughIds + 1] = pid
      end
      local ls = through[pid]
      ls[#ls + 1] = list
    end
  else
    local key = prefix .. 'top_k:' .. id
    if bounded then spaceSavingAll(key, list, id) else bulk(key, list, id) end
    local w = spec[name]
    local expireAt = start + w[2] + w[3]
    for _, p in ipairs(parents or {}) do
      local ps = math.floor(start / p[2]) * p[2]
      if ps + p[2] + p[3] > expireAt then expireAt = ps + p[2] + p[3] end
      -- Changed for the global merge: the parents' sums too.
      written[#written + 1] = p[1] .. ':' .. fmt(ps)
    end
    if parents then redis.call('ZADD', prefix .. 'unrolled:' .. name, fmt(start), fmt(start)) end
    redis.call('PEXPIREAT', key, fmt(expireAt))
    written[#written + 1] = id
  end
end
-- What children past their mark passed on: into their parents' windows (refused by a FINAL one).
for _, pid in ipairs(throughIds) do
  local sep = string.find(pid, ':', 1, true)
  local name = string.sub(pid, 1, sep - 1)
  local start = tonumber(string.sub(pid, sep + 1))
  local ls = through[pid]
  if final[name] and start <= final[name] then
    for _, list in ipairs(ls) do
      for j = 1, #list, 2 do windowRefused = windowRefused + list[j] end
    end
  else
    local key = prefix .. 'top_k:' .. pid
    for _, list in ipairs(ls) do bulk(key, list, pid) end
    local w = spec[name]
    redis.call('PEXPIREAT', key, fmt(start + w[2] + w[3]))
    written[#written + 1] = pid
  end
end

-- Trailing panes (exact mode): a pane inside a trailing key's range [lo, hi] also adds to that
-- key: the live trailing:<spec>, and the spare trailing:<spec>:next (the range the live key had
-- before its last move; see trailing.lua). A later pane is added by the next move; a pane
-- below both ranges fell out of them and is not written. A write into a pane a move is
-- folding (at or below the move's last pane) cancels the move (the caller runs moves between
-- its own flushes: only another process during a rebalance gets here).
local function rangeOf(cur)
  if not cur then return nil end
  local sep = string.find(cur, ':', 1, true)
  return { tonumber(string.sub(cur, 1, sep - 1)), tonumber(string.sub(cur, sep + 1)) }
end
for k = 1, #W do
  local w = W[k]
  local panes = (D.p or {})[k] or {}
  if next(panes) ~= nil then
    local st = redis.call('HMGET', KEYS[6], w[1], w[1] .. ':next', w[1] .. ':job', w[1] .. ':rolled', w[1] .. ':roll')
    local live, spare, job = rangeOf(st[1]), rangeOf(st[2]), rangeOf(st[3])
    local floor = live and live[1]
    if spare and (floor == nil or spare[1] < floor) then floor = spare[1] end
    -- Roll-ups (a spec with a source, w[5]): its panes from `rolled` on are not written here but
    -- summed from the source spec's panes once the watermark passes them (trailing.lua's roll); a pane
    -- before it was written by flushes and is written on (a late event). The spec's first flush
    -- sets `rolled`: at its first pane, or, when the spec has ranges already (its panes were
    -- written by flushes before roll-ups existed), past any pane an accepted event can reach.
    local rolled = tonumber(st[4])
    if w[5] > 0 and not rolled then
      if live or spare then
        rolled = (math.floor((now + H.ahead) / w[4]) + 1) * w[4]
      else
        for startKey in pairs(panes) do
          local start = tonumber(startKey)
          if not rolled or start < rolled then rolled = start end
        end
      end
      redis.call('HSET', KEYS[6], w[1] .. ':rolled', fmt(rolled))
    end
    for startKey, sent in pairs(panes) do
      local start = tonumber(startKey)
      if rolled and start >= rolled then
        -- Summed later. A roll of this very pane under way (only another process's, during a
        -- rebalance: rolls run between the region's own flushes) may have read the source panes
        -- this flush writes: it starts again.
        if st[5] and start == rolled then
          redis.call('DEL', prefix .. 'pane:' .. w[1] .. ':' .. startKey)
          redis.call('HDEL', KEYS[6], w[1] .. ':roll')
          st[5] = false
        end
      elseif floor == nil or start >= floor then
        local list = listOf(sent)
        local key = prefix .. 'pane:' .. w[1] .. ':' .. startKey
        local into = {}
        if live and start >= live[1] and start <= live[2] then into[#into + 1] = prefix .. 'trailing:' .. w[1] end
        if spare and start >= spare[1] and start <= spare[2] then into[#into + 1] = prefix .. 'trailing:' .. w[1] .. ':next' end
        if job and start <= job[2] then
          redis.call('HDEL', KEYS[6], w[1] .. ':job')
          job = nil
        end
        bulk(key, list, nil)
        for i = 1, #into do bulk(into[i], list, nil) end
        -- Subtracted and deleted once the watermark passes start + size; a pane never reached
        -- that way (a region gone quiet) expires after w[6] of wall-clock time (twice the size,
        -- or longer for a source: until the panes summed from it are).
        redis.call('PEXPIRE', key, fmt(w[6]))
      end
    end
  end
end

local refused = 0
for q = 1, #Q do
  local s = Q[q]
  local sealed = tonumber(redis.call('HGET', KEYS[7], s[1]) or '-1')
  for startKey, sent in pairs((D.b or {})[q] or {}) do
    local start = tonumber(startKey)
    local list = listOf(sent)
    if start >= sealed then
      local key = prefix .. 'bucket:' .. s[1] .. ':' .. startKey
      bulk(key, list, nil)
      -- Sealed (and deleted) once the session ends; a session longer than its ttl loses its oldest buckets.
      redis.call('PEXPIRE', key, fmt(s[3]))
      redis.call('ZADD', prefix .. 'buckets:' .. s[1], start, startKey)
    else
      for j = 1, #list, 2 do refused = refused + list[j] end
    end
  end
end

-- How many entries wait for a checkpoint (the cut resets it): the caller slows down when the
-- record falls too far behind, so a checkpoint stays within one Cassandra batch.
local waiting = redis.call('HINCRBY', KEYS[4], 'dirty_entries', pending)
local t2 = redis.call('TIME')
local function since(a, b)
  return (tonumber(b[1]) - tonumber(a[1])) * 1000000 + tonumber(b[2]) - tonumber(a[2])
end
local reply = {'OK', #ids, refused, waiting, since(t, tPosts), since(tPosts, t2), windowRefused}
for _, id in ipairs(written) do reply[#reply + 1] = id end
return reply
