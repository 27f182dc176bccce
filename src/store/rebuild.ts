/**
 * Rebuilding Redis from the record: when Redis lost its state (its epoch is gone), one
 * process restores every recorded region under a new epoch (RegionRecord.restoreAll);
 * the admin rebuild drops every region first. Both run under the rebuild lock, and every
 * write of theirs goes through it (rebuild-lock.ts).
 */
import type { Redis } from 'ioredis';
import { EPOCH_KEY, REGIONS_KEY } from '../keys';
import type { RegionRecord } from './record';
import { RebuildLock, REBUILD_LOCK_MS } from './rebuild-lock';
import { deleteRegion } from './region-keys';

/**
 * The current epoch, rebuilding Redis from the record first when the epoch is gone.
 * One process rebuilds (lock); the others wait for the epoch to appear. A rebuild whose
 * Redis was lost on the way (its lock with it) starts over.
 */
export async function ensureEpoch(redis: Redis, record: RegionRecord, log: (s: string) => void, signal?: AbortSignal): Promise<string> {
  for (;;) {
    const epoch = await redis.get(EPOCH_KEY);
    if (epoch !== null) return epoch;
    if (signal?.aborted) throw new Error('stopped while waiting for the Redis rebuild');
    const lock = await RebuildLock.tryAcquire(redis);
    if (lock) {
      try {
        // Another rebuild may have finished between the read above and taking the lock.
        const published = await redis.get(EPOCH_KEY);
        if (published !== null) return published;
        const t0 = Date.now();
        log('Redis has no epoch: rebuilding it from Cassandra');
        const { epoch: e, regions } = await record.restoreAll(lock);
        log(`rebuilt ${regions.length} region(s) from Cassandra in ${Date.now() - t0} ms; epoch ${e}`);
        return e;
      } catch (err) {
        log(`rebuild failed (will retry): ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 2000));
      } finally {
        await lock.release();
      }
    } else {
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/**
 * The admin rebuild: under the rebuild lock, drop the epoch and every region's keys, then
 * restore from the record. Ingest members see the new epoch and rewind.
 */
export async function forceRebuild(
  redis: Redis,
  record: RegionRecord,
  log: (s: string) => void,
): Promise<{ epoch: string; dropped: number; restored: number }> {
  const t0 = Date.now();
  let lock: RebuildLock | null;
  while ((lock = await RebuildLock.tryAcquire(redis)) === null) {
    if (Date.now() - t0 > REBUILD_LOCK_MS) throw new Error('another rebuild holds the lock');
    await new Promise((r) => setTimeout(r, 250));
  }
  try {
    await lock.write([['DEL', EPOCH_KEY]]);
    const regions = await redis.smembers(REGIONS_KEY);
    for (const r of regions) await deleteRegion(redis, r, lock);
    const { epoch, regions: restored } = await record.restoreAll(lock);
    log(`admin rebuild: dropped ${regions.length} region(s), restored ${restored.length} from Cassandra; epoch ${epoch}`);
    return { epoch, dropped: regions.length, restored: restored.length };
  } finally {
    await lock.release();
  }
}
