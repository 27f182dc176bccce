-- Moves one region's trailing timeframe of one spec to a new watermark in bounded steps that
-- readers never see half done. Two keys per spec:
--   trailing:<spec>        the live key readers use: the sum of the panes [lo, hi] in field <spec>
--   trailing:<spec>:next   the spare: the sum of the panes [lo, hi] in field <spec>:next (the
--                          range the live key had before its last move), absent when unknown
-- A move brings the spare to the new range (adding the panes it lacks, subtracting the ones
-- that fell out, at most ARGV budget members per call), then swaps the two keys (RENAME: O(1)).
-- The region's flushes add late events to each key whose range holds the event's pane
-- (region-flush.lua), so both stay exact between moves. The caller runs a move between the
-- region's flushes; a flush that still writes a pane the move is folding (another process
-- during a rebalance) cancels the move (field <spec>:job removed): the spare is then rebuilt
-- from its panes by the next move.
--
-- KEYS[1] hash region:{r}:trailing
-- ARGV[1] op: 'plan' | 'step' | 'swap'   ARGV[2] the region's key prefix   ARGV[3] spec name
-- plan: ARGV[4] size ms, ARGV[5] pane ms, ARGV[6] watermark ms
--   -> {} when the live key already covers the watermark's range, else
--      {job, add from, add to, sub from, sub to, the spare's first pane or ''} (pane starts;
--      an empty range has from > to)
-- step: ARGV[4] pane ms, ARGV[5] job, ARGV[6] sign (1 adds the panes, -1 subtracts them),
--   ARGV[7] pane, ARGV[8] offset (rank) in it, ARGV[9] the range's last pane, ARGV[10] budget
--   (members folded in this call) -> {'DONE'} | {'MORE', pane, offset} | {'CANCELLED'}
-- swap: ARGV[4] pane ms, ARGV[5] job, ARGV[6] the spare's first pane before the move (or '')
--   -> {'OK'} | {'CANCELLED'}

local op = ARGV[1]
local prefix = ARGV[2]
local name = ARGV[3]
local live = prefix .. 'trailing:' .. name
local spare = live .. ':next'
local function paneOf(p) return prefix .. 'pane:' .. name .. ':' .. string.format('%d', p) end
local function range(field)
  local cur = redis.call('HGET', KEYS[1], field)
  if not cur then return nil end
  local sep = string.find(cur, ':', 1, true)
  return tonumber(string.sub(cur, 1, sep - 1)), tonumber(string.sub(cur, sep + 1))
end

if op == 'plan' then
  local size, P, wm = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
  local hi2 = math.floor(wm / P) * P - P
  local lo2 = hi2 - size + P
  local lo, hi = range(name)
  if hi and hi2 <= hi then return {} end -- never moves back
  local job = string.format('%d:%d', lo2, hi2)
  local nlo, nhi = range(name .. ':next')
  redis.call('HSET', KEYS[1], name .. ':job', job)
  redis.call('HDEL', KEYS[1], name .. ':next') -- in flux until the swap
  if nlo and lo2 <= nhi then
    return {job, string.format('%d', nhi + P), string.format('%d', hi2), string.format('%d', nlo), string.format('%d', lo2 - P), string.format('%d', nlo)}
  end
  redis.call('UNLINK', spare) -- unknown or too far behind: rebuilt from the new range's panes
  return {job, string.format('%d', lo2), string.format('%d', hi2), '1', '0', nlo and string.format('%d', nlo) or ''}
end

local P = tonumber(ARGV[4])
local job = ARGV[5]
if redis.call('HGET', KEYS[1], name .. ':job') ~= job then
  redis.call('UNLINK', spare)
  return {'CANCELLED'}
end

if op == 'step' then
  local sign, p, offset, last, budget = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
  local CHUNK = 1000 -- members per bulk call (Lua's unpack stays far below its stack limit)
  while p <= last do
    if budget <= 0 then return {'MORE', string.format('%d', p), string.format('%d', offset)} end
    local n = math.min(CHUNK, budget)
    local flat = redis.call('ZRANGE', paneOf(p), offset, offset + n - 1, 'WITHSCORES')
    if #flat > 0 then
      local posts = {}
      for j = 1, #flat, 2 do posts[#posts + 1] = flat[j] end
      local old = redis.call('ZMSCORE', spare, unpack(posts))
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
      if #keep > 0 then redis.call('ZADD', spare, unpack(keep)) end
      if #gone > 0 then redis.call('ZREM', spare, unpack(gone)) end
    end
    budget = budget - n
    if #flat < 2 * n then
      p = p + P
      offset = 0
    else
      offset = offset + n
    end
  end
  return {'DONE'}
end

-- swap: the spare now sums the job's range; it becomes the live key and the live key the spare.
local sep = string.find(job, ':', 1, true)
local lo2 = tonumber(string.sub(job, 1, sep - 1))
local lo, hi = range(name)
local tmp = live .. ':swap'
if redis.call('EXISTS', live) == 1 then redis.call('RENAME', live, tmp) end
if redis.call('EXISTS', spare) == 1 then redis.call('RENAME', spare, live) end
if redis.call('EXISTS', tmp) == 1 then redis.call('RENAME', tmp, spare) end
redis.call('HSET', KEYS[1], name, job)
if lo then
  redis.call('HSET', KEYS[1], name .. ':next', string.format('%d:%d', lo, hi))
else
  redis.call('UNLINK', spare) -- nothing was live: the spare is unknown until the next move rebuilds it
end
redis.call('HDEL', KEYS[1], name .. ':job')
-- Panes below both ranges are no longer needed (a quiet region's others expire).
local keepFrom = lo and math.min(lo, lo2) or lo2
if ARGV[6] ~= '' then
  for p = tonumber(ARGV[6]), keepFrom - P, P do redis.call('UNLINK', paneOf(p)) end
end
return {'OK'}
