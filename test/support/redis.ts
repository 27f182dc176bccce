/** Test helpers over a real Redis. */
export { freeRedisDb } from '../../scripts/harness/redis-db';
import { Redis } from 'ioredis';
import { regionTopKey } from '../../src/keys';
import type { RegionRecord } from '../../src/store/record';
import { RebuildLock } from '../../src/store/rebuild-lock';

/** A flat [member, score, ...] list re-sorted by the documented rank order: count desc, then post_id desc. */
export function rankOrder(flat: string[]): string[] {
  const pairs: [string, number][] = [];
  for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i], Number(flat[i + 1])]);
  pairs.sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? 1 : x[0] > y[0] ? -1 : 0));
  return pairs.flatMap(([m, s]) => [m, String(s)]);
}

/** A region's whole exact leaderboard as post -> count. */
export async function leaderboard(redis: Redis, region: string): Promise<Record<string, number>> {
  const all = await redis.zrange(regionTopKey(region), 0, -1, 'WITHSCORES');
  const counts: Record<string, number> = {};
  for (let i = 0; i < all.length; i += 2) counts[all[i]] = Number(all[i + 1]);
  return counts;
}

/** Runs record.restoreAll under a rebuild lock of its own, as ensureEpoch does (the lock must be free). */
export async function restoreUnderLock(redis: Redis, record: RegionRecord): Promise<{ epoch: string; regions: string[] }> {
  const lock = await RebuildLock.tryAcquire(redis);
  if (!lock) throw new Error('the rebuild lock is held');
  try {
    return await record.restoreAll(lock);
  } finally {
    await lock.release();
  }
}
