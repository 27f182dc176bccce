/** A logical Redis database of its own for a runtime under test (its own epoch, regions, keys). */
import { opsRedis } from '../../src/clients';
import { loadConfig } from '../../src/config';

/** The first empty database among 5..15 (0 is `npm start`'s). */
export async function freeRedisDb(): Promise<number> {
  const cfg = loadConfig();
  for (const db of [9, 10, 11, 12, 13, 14, 15, 8, 7, 6, 5]) {
    const r = opsRedis(cfg, db);
    const size = await r.dbsize();
    r.disconnect();
    if (size === 0) return db;
  }
  throw new Error('no empty Redis database among 5..15 for an end-to-end run');
}
