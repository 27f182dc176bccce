/** Test helpers over a real Redis. */
import { Redis } from 'ioredis';
import { cfg } from '../helpers';
import { regionTopKey } from '../../src/keys';

/** An empty logical Redis database for a runtime under test (its own epoch, regions, keys). */
export async function freeRedisDb(): Promise<number> {
  for (const db of [9, 10, 11, 12, 13, 14, 15, 8, 7, 6, 5]) {
    const r = new Redis({ host: cfg.host, port: cfg.redis.port, db });
    const size = await r.dbsize();
    r.disconnect();
    if (size === 0) return db;
  }
  throw new Error('no empty Redis database among 5..15 for an end-to-end test');
}

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
