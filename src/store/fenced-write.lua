-- A rebuild's writes, applied only while its lock still holds its token. Redis losing its
-- state (a crash, FLUSHDB) takes the lock with it, and a lock left to expire is another's to
-- take: either way the rebuild that held it writes nothing more, so it never mixes its
-- writes with those of the rebuild that took over, nor publishes an epoch over what it lost.
--
-- KEYS[1]     string hh:rebuild-lock   the lock
-- KEYS[2..n]  the key each command writes, in order (one per command)
-- ARGV[1]     the rebuild's token
-- ARGV[2]     ms the lock lives from now on (a rebuild that makes progress keeps its lock)
-- ARGV[3..]   per command: its name, its argument count, its arguments after the key
--
-- Returns 1 when every command ran, 0 (nothing written) when the lock is not the caller's.
-- Used only by the rebuild, which writes keys of every region: like the epoch's own scripts,
-- it needs the one Redis (it is not confined to one Cluster slot).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local a = 3
for k = 2, #KEYS do
  local n = tonumber(ARGV[a + 1])
  redis.call(ARGV[a], KEYS[k], unpack(ARGV, a + 2, a + 1 + n))
  a = a + 2 + n
end
return 1
