-- Sums one region's trailing panes of one spec from the panes of its source spec (config.ts:
-- paneChain), in bounded steps. From `rolled` on, flushes write an event only into its
-- source's pane, not into this spec's (region-flush.lua); a roll sums the pane at `rolled` from
-- the source panes inside it, then moves `rolled` on by one pane, up to the target (the first
-- pane the watermark has not passed). The caller runs a roll between the region's flushes; a
-- flush into the pane being summed (another process during a rebalance) deletes what was
-- summed of it and the cursor, so the next call sums that pane again from the start.
--
-- KEYS[1] hash region:{r}:trailing: <spec>:rolled (pane start), <spec>:roll "<source pane>:<rank>"
-- ARGV[1] the region's key prefix   ARGV[2] spec   ARGV[3] pane ms
-- ARGV[4] source spec   ARGV[5] source pane ms   ARGV[6] target (a pane start)
-- ARGV[7] budget: members folded, and source panes visited, per call
-- ARGV[8] a summed pane's expiry after its last write, ms (as region-flush.lua sets it)
-- -> {'DONE', rolled} when every pane before the target is summed (or the source's own roll-ups
--    have not reached it: rolled says how far it got); {'DONE', ''} when the spec has no
--    roll-ups yet (no flush set `rolled`); {'MORE'} when the budget ran out first.

local prefix, name, P = ARGV[1], ARGV[2], tonumber(ARGV[3])
local source, Q = ARGV[4], tonumber(ARGV[5])
local target, budget, ttl = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local CHUNK = 1000 -- members per bulk call (Lua's unpack stays far below its stack limit)
local function fmt(n) return string.format('%d', n) end

local rolledField, cursorField = name .. ':rolled', name .. ':roll'
local R = tonumber(redis.call('HGET', KEYS[1], rolledField))
if not R then return {'DONE', ''} end
-- A source with roll-ups of its own holds whole panes only before its own `rolled`.
local sourceRolled = tonumber(redis.call('HGET', KEYS[1], source .. ':rolled'))
if sourceRolled and sourceRolled < target then target = math.floor(sourceRolled / P) * P end
if R >= target then return {'DONE', fmt(R)} end

local child, offset = R, 0
local cursor = redis.call('HGET', KEYS[1], cursorField)
if cursor then
  local sep = string.find(cursor, ':', 1, true)
  child, offset = tonumber(string.sub(cursor, 1, sep - 1)), tonumber(string.sub(cursor, sep + 1))
end
while R < target do
  local dest = prefix .. 'pane:' .. name .. ':' .. fmt(R)
  while child < R + P do
    if budget <= 0 then
      redis.call('HSET', KEYS[1], cursorField, fmt(child) .. ':' .. fmt(offset))
      return {'MORE'}
    end
    local n = math.min(CHUNK, budget)
    local flat = redis.call('ZRANGE', prefix .. 'pane:' .. source .. ':' .. fmt(child), offset, offset + n - 1, 'WITHSCORES')
    local got = #flat / 2
    if got > 0 then
      local posts = {}
      for j = 1, #flat, 2 do posts[#posts + 1] = flat[j] end
      local old = redis.call('ZMSCORE', dest, unpack(posts))
      local args = {}
      for j = 1, got do
        args[2 * j - 1] = (tonumber(old[j]) or 0) + tonumber(flat[2 * j])
        args[2 * j] = posts[j]
      end
      redis.call('ZADD', dest, unpack(args))
    end
    budget = budget - math.max(got, 1)
    if got < n then
      child, offset = child + Q, 0
    else
      offset = offset + n
    end
  end
  redis.call('PEXPIRE', dest, ttl)
  R = R + P
  child, offset = R, 0
  redis.call('HSET', KEYS[1], rolledField, fmt(R))
  redis.call('HDEL', KEYS[1], cursorField)
end
return {'DONE', fmt(R)}
