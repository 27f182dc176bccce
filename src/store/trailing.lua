-- One region's trailing timeframes of one spec (trailing.ts): moves to a new watermark, in
-- bounded steps that readers never see half done, and the roll-ups of its panes.
--
-- Moves. Two keys per spec:
--   trailing:<spec>        the live key readers use: the sum of the panes [lo, hi] in field <spec>
--   trailing:<spec>:next   the spare: the sum of the panes [lo, hi] in field <spec>:next (the
--                          range the live key had before its last move), absent when unknown
-- A move brings the spare to the new range (adding the panes it lacks, subtracting the ones
-- that fell out), then swaps the two keys (RENAME: O(1)). A move of at most `budget` pane
-- members is done whole by the plan call; a larger one folds at most `budget` members per
-- step call. The region's flushes add late events to each key whose range holds the event's
-- pane (region-flush.lua), so both stay exact between moves. The caller runs a move between
-- the region's flushes; a flush that still writes a pane the move is folding (another
-- process during a rebalance) cancels the move (field <spec>:job removed): the spare is then
-- rebuilt from its panes by the next move.
--
-- Roll-ups. A spec with a source (config.ts: paneChain) has its panes summed from the
-- source's: from <spec>:rolled on, flushes write an event only into its source's pane, not
-- into this spec's (region-flush.lua); a roll sums the pane at `rolled` from the source panes
-- inside it, then moves `rolled` on by one pane, up to the target (the first pane the
-- watermark has not passed), at most `budget` members (and source panes visited) per call;
-- <spec>:roll "<source pane>:<rank>" says where a stepped roll goes on. The caller runs a roll
-- between the region's flushes; a flush into the pane being summed (another process during a
-- rebalance) deletes what was summed of it and the cursor, so the next call sums that pane
-- again from the start.
--
-- KEYS[1] hash region:{r}:trailing
-- ARGV[1] op: 'plan' | 'step' | 'swap' | 'roll'   ARGV[2] the region's key prefix
-- ARGV[3] spec name   ARGV[4] pane ms
-- plan: ARGV[5] size ms, ARGV[6] watermark ms, ARGV[7] budget (members)
--   -> {} when the live key already covers the watermark's range; {'MOVED'} when the move
--      was small enough to be done here; else {job, add from, add to, sub from, sub to, the
--      spare's first pane or ''} (pane starts; an empty range has from > to)
-- step: ARGV[5] job, ARGV[6] sign (1 adds the panes, -1 subtracts them), ARGV[7] pane,
--   ARGV[8] offset (rank) in it, ARGV[9] the range's last pane, ARGV[10] budget (members
--   folded in this call) -> {'DONE'} | {'MORE', pane, offset} | {'CANCELLED'}
-- swap: ARGV[5] job, ARGV[6] the spare's first pane before the move (or '')
--   -> {'OK'} | {'CANCELLED'}
-- roll: ARGV[5] source spec, ARGV[6] source pane ms, ARGV[7] target (a pane start),
--   ARGV[8] budget, ARGV[9] a summed pane's expiry after its last write, ms (as
--   region-flush.lua sets it)
--   -> {'DONE', rolled} when every pane before the target is summed (or the source's own
--      roll-ups have not reached it: rolled says how far it got); {'DONE', ''} when the spec
--      has no roll-ups yet (no flush set `rolled`); {'MORE'} when the budget ran out first.

local op = ARGV[1]
local prefix = ARGV[2]
local name = ARGV[3]
local P = tonumber(ARGV[4])
local live = prefix .. 'trailing:' .. name
local spare = live .. ':next'
local CHUNK = 1000 -- members per bulk call (Lua's unpack stays far below its stack limit)
local function fmt(n) return string.format('%d', n) end
local function paneOf(p) return prefix .. 'pane:' .. name .. ':' .. fmt(p) end
local function range(field)
  local cur = redis.call('HGET', KEYS[1], field)
  if not cur then return nil end
  local sep = string.find(cur, ':', 1, true)
  return tonumber(string.sub(cur, 1, sep - 1)), tonumber(string.sub(cur, sep + 1))
end

-- Folds the panes `key(p)` for p = p, p + step, ..., last (from rank `offset` of the first)
-- into `dest` with `sign` (a member whose sum drops to 0 is removed), at most `budget`
-- members; returns where to go on (pane, offset) and the budget left, the pane nil when done.
local function fold(key, dest, sign, p, offset, last, step, budget)
  while p <= last do
    if budget <= 0 then return p, offset, 0 end
    local n = math.min(CHUNK, budget)
    local flat = redis.call('ZRANGE', key(p), offset, offset + n - 1, 'WITHSCORES')
    if #flat > 0 then
      local posts = {}
      for j = 1, #flat, 2 do posts[#posts + 1] = flat[j] end
      local old = redis.call('ZMSCORE', dest, unpack(posts))
      local keep, gone = {}, {}
      for j = 1, #posts do
        local v = (tonumber(old[j]) or 0) + sign * tonumber(flat[2 * j])
        if v > 0 then
          keep[#keep + 1] = v
          keep[#keep + 1] = posts[j]
        else
          gone[#gone + 1] = posts[j]
        end
      end
      if #keep > 0 then redis.call('ZADD', dest, unpack(keep)) end
      if #gone > 0 then redis.call('ZREM', dest, unpack(gone)) end
    end
    budget = budget - math.max(1, #flat / 2) -- an empty pane costs a call, not a chunk
    if #flat < 2 * n then
      p = p + step
      offset = 0
    else
      offset = offset + n
    end
  end
  return nil, 0, budget
end

-- Sums the spec's panes from `rolled` up to the target from the source's panes (see Roll-ups).
local function roll(source, Q, target, budget, ttl)
  local rolledField, cursorField = name .. ':rolled', name .. ':roll'
  local R = tonumber(redis.call('HGET', KEYS[1], rolledField))
  if not R then return {'DONE', ''} end
  -- A source with roll-ups of its own holds whole panes only before its own `rolled`.
  local sourceRolled = tonumber(redis.call('HGET', KEYS[1], source .. ':rolled'))
  if sourceRolled and sourceRolled < target then target = math.floor(sourceRolled / P) * P end
  if R >= target then return {'DONE', fmt(R)} end
  local function sourceOf(q) return prefix .. 'pane:' .. source .. ':' .. fmt(q) end
  local child, offset = R, 0
  local cursor = redis.call('HGET', KEYS[1], cursorField)
  if cursor then
    local sep = string.find(cursor, ':', 1, true)
    child, offset = tonumber(string.sub(cursor, 1, sep - 1)), tonumber(string.sub(cursor, sep + 1))
  end
  while R < target do
    local dest = paneOf(R)
    local at, off, left = fold(sourceOf, dest, 1, child, offset, R + P - Q, Q, budget)
    if at then
      redis.call('HSET', KEYS[1], cursorField, fmt(at) .. ':' .. fmt(off))
      return {'MORE'}
    end
    budget = left
    redis.call('PEXPIRE', dest, ttl)
    R = R + P
    child, offset = R, 0
    redis.call('HSET', KEYS[1], rolledField, fmt(R))
    redis.call('HDEL', KEYS[1], cursorField)
  end
  return {'DONE', fmt(R)}
end

-- The spare now sums the job's range: it becomes the live key and the live key the spare.
local function swap(job, spareFrom)
  local sep = string.find(job, ':', 1, true)
  local lo2 = tonumber(string.sub(job, 1, sep - 1))
  local lo, hi = range(name)
  local tmp = live .. ':swap'
  if redis.call('EXISTS', live) == 1 then redis.call('RENAME', live, tmp) end
  if redis.call('EXISTS', spare) == 1 then redis.call('RENAME', spare, live) end
  if redis.call('EXISTS', tmp) == 1 then redis.call('RENAME', tmp, spare) end
  redis.call('HSET', KEYS[1], name, job)
  if lo then
    redis.call('HSET', KEYS[1], name .. ':next', fmt(lo) .. ':' .. fmt(hi))
  else
    redis.call('UNLINK', spare) -- nothing was live: the spare is unknown until the next move rebuilds it
  end
  redis.call('HDEL', KEYS[1], name .. ':job')
  -- Panes below both ranges are no longer needed (a quiet region's others expire).
  local keepFrom = lo and math.min(lo, lo2) or lo2
  if spareFrom then
    for p = spareFrom, keepFrom - P, P do redis.call('UNLINK', paneOf(p)) end
  end
end

if op == 'plan' then
  local size, wm, budget = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
  local hi2 = math.floor(wm / P) * P - P
  local lo2 = hi2 - size + P
  local lo, hi = range(name)
  if hi and hi2 <= hi then return {} end -- never moves back
  local job = fmt(lo2) .. ':' .. fmt(hi2)
  local nlo, nhi = range(name .. ':next')
  local addFrom, addTo, subFrom, subTo = lo2, hi2, 1, 0
  if nlo and lo2 <= nhi then
    addFrom, subFrom, subTo = nhi + P, nlo, lo2 - P
  else
    redis.call('UNLINK', spare) -- unknown or too far behind: rebuilt from the new range's panes
  end
  -- Small enough (the usual move: a pane or two of each side): done here, in one call.
  local members = 0
  for p = addFrom, addTo, P do
    if members > budget then break end
    members = members + redis.call('ZCARD', paneOf(p))
  end
  for p = subFrom, subTo, P do
    if members > budget then break end
    members = members + redis.call('ZCARD', paneOf(p))
  end
  if members <= budget then
    fold(paneOf, spare, 1, addFrom, 0, addTo, P, math.huge)
    fold(paneOf, spare, -1, subFrom, 0, subTo, P, math.huge)
    swap(job, nlo)
    return {'MOVED'}
  end
  redis.call('HSET', KEYS[1], name .. ':job', job)
  redis.call('HDEL', KEYS[1], name .. ':next') -- in flux until the swap
  return {job, fmt(addFrom), fmt(addTo), fmt(subFrom), fmt(subTo), nlo and fmt(nlo) or ''}
end

if op == 'roll' then
  return roll(ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9])
end

local job = ARGV[5]
if redis.call('HGET', KEYS[1], name .. ':job') ~= job then
  redis.call('UNLINK', spare)
  return {'CANCELLED'}
end

if op == 'step' then
  local p, offset = fold(paneOf, spare, tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), P, tonumber(ARGV[10]))
  if p == nil then return {'DONE'} end
  return {'MORE', fmt(p), fmt(offset)}
end

swap(job, ARGV[6] ~= '' and tonumber(ARGV[6]) or nil)
return {'OK'}
