/**
 * Rebuilding Redis from the record: when Redis lost its state (its epoch is gone), one
 * process restores every recorded region under a new epoch (RegionRecord.restoreAll);
 * the admin rebuild drops every region first.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { EPOCH_KEY, REBUILD_LOCK_KEY, REGIONS_KEY } from '../keys';
import type { RegionRecord } from './record';
import { deleteRegion } from './region-keys';
import { scripted } from './scripts';

/**
 * The current epoch, rebuilding Redis from the record first when the epoch is gone.
 * One process rebuilds (lock); the others wait for the epoch to appear.
 */
export async function ensureEpoch(redis: Redis, record: RegionRecord, log: (s: string) => void, signal?: AbortSignal): Promise<string> {
  for (;;) {
    const epoch = await redis.get(EPOCH_KEY);
    if (epoch !== null) return epoch;
    if (signal?.aborted) throw new Error('stopped while waiting for the Redis rebuild');
    const token = randomUUID();
    if ((await redis.set(REBUILD_LOCK_KEY, token, 'PX', 300_000, 'NX')) !== null) {
      try {
        const t0 = Date.now();
        log('Redis has no epoch: rebuilding it from Cassandra');
        const { epoch: e, regions } = await record.restoreAll();
        log(`rebuilt ${regions.length} region(s) from Cassandra in ${Date.now() - t0} ms; epoch ${e}`);
        return e;
      } catch (err) {
        log(`rebuild failed (will retry): ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 2000));
      } finally {
        await scripted(redis).hhRelease(REBUILD_LOCK_KEY, token);
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
  const token = randomUUID();
  const t0 = Date.now();
  while ((await redis.set(REBUILD_LOCK_KEY, token, 'PX', 300_000, 'NX')) === null) {
    if (Date.now() - t0 > 300_000) throw new Error('another rebuild holds the lock');
    await new Promise((r) => setTimeout(r, 250));
  }
  try {
    await redis.del(EPOCH_KEY);
    const regions = await redis.smembers(REGIONS_KEY);
    for (const r of regions) await deleteRegion(redis, r);
    const { epoch, regions: restored } = await record.restoreAll();
    log(`admin rebuild: dropped ${regions.length} region(s), restored ${restored.length} from Cassandra; epoch ${epoch}`);
    return { epoch, dropped: regions.length, restored: restored.length };
  } finally {
    await scripted(redis).hhRelease(REBUILD_LOCK_KEY, token);
  }
}
