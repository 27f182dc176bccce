/** A region's whole Redis state, by its key prefix. */
import type { Redis } from 'ioredis';
import { REGIONS_KEY, regionPrefix } from '../keys';
import type { RebuildLock } from './rebuild-lock';

/** Deletes every Redis key of a region and unregisters it, as writes of the rebuild holding `lock`. */
export async function deleteRegion(redis: Redis, region: string, lock: RebuildLock): Promise<void> {
  const pattern = `${regionPrefix(region.replace(/([*?[\]\\])/g, '\\$1'))}*`;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    await lock.write(keys.map((k) => ['DEL', k]));
    cursor = next;
  } while (cursor !== '0');
  await lock.write([['SREM', REGIONS_KEY, region]]);
}
