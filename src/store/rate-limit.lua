-- One client's rate limit, decided in ONE atomic step on the server's clock.
--
-- KEYS[1]  the client's limiter state (a hash for the token bucket, a counter per fixed
--          window — the window's index is appended — or a zset of accepted request times
--          for the sliding window)
-- ARGV[1]  algorithm: token-bucket | fixed-window | sliding-window
-- ARGV[2]  rate: tokens added per second (token bucket); requests per window (windows)
-- ARGV[3]  burst: bucket capacity (token bucket); the window in ms (windows)
-- ARGV[4]  a unique request id (the sliding window logs its requests as <id>:1, <id>:2, ...)
-- ARGV[5]  cost: how many requests this call counts (default 1). More than one is a batch of
--          requests the caller already let through: as many as still fit are counted, and the
--          call is allowed only when all of them fit (so the caller's next requests wait).
--
-- Returns {allowed 1|0, remaining, ms until the limit resets, ms to wait before a retry (0 if allowed)}.
--   token bucket: tokens refill continuously at `rate`/s up to `burst`; a request takes one.
--   fixed window: at most `rate` requests in each aligned window [i*w, (i+1)*w).
--   sliding window: at most `rate` accepted requests in any (now - w, now] (a log of them).

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local algo = ARGV[1]
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local cost = tonumber(ARGV[5]) or 1

if algo == 'token-bucket' then
  local s = redis.call('HMGET', KEYS[1], 'tokens', 'at')
  local tokens = tonumber(s[1]) or burst
  local at = tonumber(s[2]) or now
  if now > at then tokens = math.min(burst, tokens + (now - at) * rate / 1000) end
  local taken = math.min(cost, math.floor(tokens))
  tokens = tokens - taken
  local allowed = 0
  local retry = 0
  if taken == cost then
    allowed = 1
  else
    retry = math.ceil((1 - tokens) * 1000 / rate)
  end
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', string.format('%d', now))
  local full = math.ceil((burst - tokens) * 1000 / rate)
  redis.call('PEXPIRE', KEYS[1], full + 1000)
  return {allowed, math.floor(tokens), full, retry}
end

local w = burst
if algo == 'fixed-window' then
  local i = math.floor(now / w)
  local key = KEYS[1] .. ':' .. string.format('%d', i)
  local reset = (i + 1) * w - now
  local n = tonumber(redis.call('GET', key) or '0')
  if n >= rate then return {0, 0, reset, reset} end
  local taken = math.min(cost, rate - n)
  n = redis.call('INCRBY', key, taken)
  if n == taken then redis.call('PEXPIRE', key, w + 1000) end
  if taken < cost then return {0, rate - n, reset, reset} end
  return {1, rate - n, reset, 0}
end

if algo == 'sliding-window' then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - w)
  local n = redis.call('ZCARD', KEYS[1])
  if n >= rate then
    -- The oldest accepted request leaves the window first: then one more fits.
    local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
    local retry = oldest + w - now
    return {0, 0, retry, retry}
  end
  local taken = math.min(cost, rate - n)
  local add = {}
  for i = 1, taken do
    add[2 * i - 1] = now
    add[2 * i] = ARGV[4] .. ':' .. i
  end
  redis.call('ZADD', KEYS[1], unpack(add))
  redis.call('PEXPIRE', KEYS[1], w + 1000)
  local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
  if taken < cost then return {0, rate - n - taken, oldest + w - now, oldest + w - now} end
  return {1, rate - n - taken, oldest + w - now, 0}
end

return redis.error_reply('unknown rate-limit algorithm ' .. tostring(algo))
