-- Seals one region's session windows of one spec, as ONE atomic step: walks the unsealed
-- buckets in event-time order, groups them into runs (a bucket joins the run when the idle
-- time since the run's last bucket ended is below the gap), and seals each run whose end is
-- a gap plus the allowed lateness behind the watermark: its buckets are summed into the
-- session's key region:{r}:top_k:<spec>:<start> and deleted, and the sealed mark moves past
-- it (the flush then refuses to write below the mark). Runs after the first unsealable one
-- end later, so the walk stops there.
--
-- KEYS[1] zset region:{r}:buckets:<spec>  (unsealed bucket starts)
-- KEYS[2] hash region:{r}:sealed          (spec -> sealed mark)
-- KEYS[3] zset region:{r}:sessions:<spec> (sealed sessions "start:end", by start)
-- ARGV[1] spec name  ARGV[2] gap ms  ARGV[3] bucket ms  ARGV[4] lateness ms  ARGV[5] ttl ms
-- ARGV[6] watermark  ARGV[7] the region's key prefix "region:{r}:"
-- ARGV[8] the start of the last session the caller already took (-1: none)
-- Returns {start, end, posts, ...} of every sealed session after ARGV[8]: a caller that
-- failed before recording the previous answer gets it again.

local name = ARGV[1]
local G = tonumber(ARGV[2])
local B = tonumber(ARGV[3])
local L = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local wm = tonumber(ARGV[6])
local prefix = ARGV[7]
local after = tonumber(ARGV[8])
local fmt = function(n) return string.format('%d', n) end

redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', after)
local idx = redis.call('ZRANGE', KEYS[1], 0, -1)
local i = 1
while i <= #idx do
  local s = tonumber(idx[i])
  local last, j = s, i
  while j < #idx and tonumber(idx[j + 1]) - (last + B) < G do
    j = j + 1
    last = tonumber(idx[j])
  end
  local e = last + B
  if e + G + L > wm then break end
  local dest = prefix .. 'top_k:' .. name .. ':' .. fmt(s)
  local chunk = {}
  for m = i, j do
    chunk[#chunk + 1] = prefix .. 'bucket:' .. name .. ':' .. idx[m]
    if #chunk == 500 or m == j then
      redis.call('ZUNIONSTORE', dest, #chunk + 1, dest, unpack(chunk))
      redis.call('DEL', unpack(chunk))
      redis.call('ZREM', KEYS[1], unpack(idx, m - #chunk + 1, m))
      chunk = {}
    end
  end
  redis.call('PEXPIREAT', dest, e + ttl)
  redis.call('HSET', KEYS[2], name, fmt(e + G))
  redis.call('ZADD', KEYS[3], s, fmt(s) .. ':' .. fmt(e))
  i = j + 1
end

local out = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. ARGV[8], '+inf')) do
  local sep = string.find(m, ':', 1, true)
  local s = string.sub(m, 1, sep - 1)
  out[#out + 1] = s
  out[#out + 1] = string.sub(m, sep + 1)
  out[#out + 1] = redis.call('ZCARD', prefix .. 'top_k:' .. name .. ':' .. s)
end
return out
