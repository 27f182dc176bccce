-- Begins a checkpoint of one region: a consistent cut of everything changed since the last
-- committed checkpoint, in O(keys changed), not O(entries). Every flush records the
-- absolute count of each entry it changed (per key id, a hash post -> count), atomically with
-- the offsets it applied, so the entries and the offsets taken here agree exactly; the caller
-- then reads the entries at its own pace (HSCAN), without holding Redis.
--
-- KEYS[1] set    region:{r}:dirty         key ids with changes (`all`, window ids)
-- KEYS[2] set    region:{r}:inflight      key ids of a checkpoint not yet committed
-- KEYS[3] hash   region:{r}:offsets       partition -> fence
-- KEYS[4] string region:{r}:inflight-cut  the token naming the cut being read
-- KEYS[5] hash   region:{r}:meta          dirty_entries: entries waiting (reset here)
-- ARGV[1] a token naming this cut   ARGV[2] the region's key prefix "region:{r}:"
-- Per key id the entries are region:{r}:dirty:<id>, moved to region:{r}:inflight:<id>.
-- Returns {time ms, {partition, offset, ...}, {key id, entries, ...}}: the caller's read is
-- whole only if the token is still there afterwards and every hash had its size (Redis may
-- lose them mid-read: FLUSHDB, a restart).
local prefix = ARGV[2]
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local src = prefix .. 'dirty:' .. id
  local dst = prefix .. 'inflight:' .. id
  if redis.call('EXISTS', src) == 1 then
    if redis.call('EXISTS', dst) == 1 then
      -- A checkpoint that did not commit holds this key id: merge (newer counts win).
      local flat = redis.call('HGETALL', src)
      for i = 1, #flat, 2 do redis.call('HSET', dst, flat[i], flat[i + 1]) end
      redis.call('DEL', src)
    else
      redis.call('RENAME', src, dst)
    end
    redis.call('SADD', KEYS[2], id)
  end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[5], 'dirty_entries', 0)
local sizes = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  sizes[#sizes + 1] = id
  sizes[#sizes + 1] = redis.call('HLEN', prefix .. 'inflight:' .. id)
end
if #sizes == 0 then return {'0', redis.call('HGETALL', KEYS[3]), {}} end
redis.call('SET', KEYS[4], ARGV[1])
local t = redis.call('TIME')
local ms = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
return {ms, redis.call('HGETALL', KEYS[3]), sizes}
