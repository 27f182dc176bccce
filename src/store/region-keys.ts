/** A region's whole Redis state, by its key prefix. */
import type { Redis } from 'ioredis';
import { REGIONS_KEY, regionPrefix } from '../keys';

/** Deletes every Redis key of a region and unregisters it. */
export async function deleteRegion(redis: Redis, region: string): Promise<void> {
  const pattern = `${regionPrefix(region.replace(/([*?[\]\\])/g, '\\$1'))}*`;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    if (keys.length) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
  await redis.srem(REGIONS_KEY, region);
}
