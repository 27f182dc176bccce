/** Test helpers over a real Redis. */
import type { Redis } from 'ioredis';
import { REGIONS_KEY } from '../../src/keys';

/** Deletes every key of a region (all share the `region:{r}:` prefix) and unregisters it. */
export async function deleteRegionKeys(redis: Redis, region: string): Promise<void> {
  const pattern = `region:{${region.replace(/([*?[\]\\])/g, '\\$1')}}:*`;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    if (keys.length) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
  await redis.srem(REGIONS_KEY, region);
}

/** A flat [member, score, ...] list re-sorted by the documented rank order: count desc, then post_id desc. */
export function rankOrder(flat: string[]): string[] {
  const pairs: [string, number][] = [];
  for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i], Number(flat[i + 1])]);
  pairs.sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? 1 : x[0] > y[0] ? -1 : 0));
  return pairs.flatMap(([m, s]) => [m, String(s)]);
}
