/**
 * Window snapshots (the store the window activities call): the window lifecycle persists a
 * window's Redis key to Cassandra's
 * `views_by_region_and_window` (absolute counts: persisting again overwrites, never adds),
 * restores the key from there (recompute), and deletes it when the window expires.
 */
import { types, type Client } from 'cassandra-driver';
import type { Redis } from 'ioredis';
import { GLOBAL_DIRTY_KEY, parseWindowId, regionWindowKey, windowId } from '../keys';
import { byRank, fromWithScores, type RankedCount } from '../ranking';

export interface WindowSnapshot {
  posts: number;
  events: number;
  top: RankedCount[];
}

export type WindowStore = ReturnType<typeof windowStore>;

export function windowStore(redis: Redis, cassandra: Client, keyspace: string) {
  const table = `${keyspace}.views_by_region_and_window`;
  /** A window's persisted snapshot (`id` = `<spec>:<start ms>`), unordered; empty if never persisted. */
  const readWindow = async (region: string, id: string): Promise<RankedCount[]> => {
    const parsed = parseWindowId(id);
    if (!parsed) throw new Error(`not a window id: "${id}"`);
    const rows: RankedCount[] = [];
    let pageState: string | undefined;
    do {
      const rs = await cassandra.execute(
        `SELECT post_id, count FROM ${table} WHERE region_id = ? AND window_spec = ? AND window_start = ?`,
        [region, parsed.spec, new Date(parsed.start)],
        { prepare: true, fetchSize: 5000, pageState },
      );
      for (const row of rs.rows) rows.push({ post_id: row.get('post_id') as string, view_count: Number(row.get('count')) });
      pageState = rs.pageState ?? undefined;
    } while (pageState);
    return rows;
  };
  return {
    /** Writes the window's current counts to Cassandra; returns its size and top 10. */
    async persistWindow(region: string, spec: string, start: number): Promise<WindowSnapshot> {
      const rows = fromWithScores(await redis.zrange(regionWindowKey(region, windowId(spec, start)), 0, -1, 'WITHSCORES'));
      const insert = `INSERT INTO ${table} (region_id, window_spec, window_start, post_id, count) VALUES (?, ?, ?, ?, ?)`;
      const at = new Date(start);
      // One partition per window: batches of 500 rows stay within it.
      for (let i = 0; i < rows.length; i += 500) {
        await cassandra.batch(
          rows.slice(i, i + 500).map((r) => ({ query: insert, params: [region, spec, at, r.post_id, types.Long.fromNumber(r.view_count)] })),
          { prepare: true, logged: false },
        );
      }
      return { posts: rows.length, events: rows.reduce((a, r) => a + r.view_count, 0), top: rows.sort(byRank).slice(0, 10) };
    },

    readWindow,

    /** Rebuilds the window's Redis key from its persisted snapshot (recompute). */
    async restoreWindow(region: string, id: string, expireAt: number): Promise<WindowSnapshot> {
      const rows = await readWindow(region, id);
      const key = regionWindowKey(region, id);
      const tx = redis.multi().del(key);
      for (let j = 0; j < rows.length; j += 5000) tx.zadd(key, ...rows.slice(j, j + 5000).flatMap((r) => [r.view_count, r.post_id]));
      if (rows.length) tx.pexpireat(key, expireAt);
      await tx.exec();
      return { posts: rows.length, events: rows.reduce((a, r) => a + r.view_count, 0), top: rows.sort(byRank).slice(0, 10) };
    },

    /**
     * Sums a sliding window's panes (the `pane` spec's windows from start to start + size)
     * into its key; marks it for the global merge.
     */
    async assembleSliding(region: string, id: string, pane: string, start: number, sizeMs: number, slideMs: number, expireAt: number): Promise<number> {
      const panes: string[] = [];
      for (let p = start; p < start + sizeMs; p += slideMs) panes.push(regionWindowKey(region, windowId(pane, p)));
      const key = regionWindowKey(region, id);
      const [[, n]] = (await redis
        .multi()
        .zunionstore(key, panes.length, ...panes)
        .pexpireat(key, expireAt)
        .sadd(GLOBAL_DIRTY_KEY, id)
        .exec()) as [[null, number]];
      return n;
    },

    /** The window's TTL passed: its Redis key goes (the flush set the same expiry; this makes it certain). */
    async expireWindow(region: string, id: string): Promise<void> {
      await redis.del(regionWindowKey(region, id));
    },
  };
}
