/**
 * Window snapshots (the store the window activities call): the window lifecycle persists a
 * window's Redis key to Cassandra's
 * `views_by_region_and_window` (absolute counts: persisting again overwrites, never adds),
 * restores the key from there (recompute), and deletes it when the window expires.
 */
import { types, type Client } from 'cassandra-driver';
import type { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import {
  GLOBAL_DIRTY_KEY,
  globalMetaKey,
  globalTopKey,
  parseWindowId,
  regionAssemblyKey,
  regionSealedKey,
  regionUnrolledKey,
  regionWindowKey,
  ROLL_VERSION_FIELD,
  windowFinalField,
  windowId,
} from '../keys';
import { byRank, type RankedCount } from '../ranking';
import { SCAN_PAGE, noBeat, scanPages, type Beat } from './scan-counts';
import { scripted } from './scripts';
import { WINDOW_KEY_GRACE_MS } from '../config';
import { rollChildren, rolledWindow, type RollPlan } from './window-roll';
import { readRange, windowSources } from './window-sources';

/** Panes with more members than this in all are summed in pages, not by one ZUNIONSTORE. */
export const SLIDING_STEP_MEMBERS = 5000;
/**
 * Members per sliding-assemble.lua step or convert call. Summing 1,000,000 posts on an idle
 * Redis, a call of 1,000 took 3-4 ms at the median and up to 15; in the bench's 1,000,000-post
 * phase, beside the flushes and the checkpoints, one took 54 ms (over the 50 that count as a
 * stall). Calls of 500 took half as long (median 1.5-1.7 ms, at most 8 idle).
 */
export const ASSEMBLY_PAGE = 500;
/** An assembly's keys vanish this long after its last step (an attempt that died). */
const ASSEMBLY_TTL_MS = 600_000;

export interface WindowSnapshot {
  posts: number;
  events: number;
  top: RankedCount[];
}

export type WindowStore = ReturnType<typeof windowStore>;

/** A snapshot's rows as ZADD arguments, 5,000 members a command. */
function zaddChunks(rows: RankedCount[]): (string | number)[][] {
  const out: (string | number)[][] = [];
  for (let j = 0; j < rows.length; j += 5000) out.push(rows.slice(j, j + 5000).flatMap((r) => [r.view_count, r.post_id]));
  return out;
}

/** How often a closing snapshot of a rolled spec's window is read again after a roll page ran during it. */
const SUM_ATTEMPTS = 5;

/**
 * `roll`: the specs rolled up from the finest one (window-roll.ts): their windows are their key
 * plus their children not yet rolled, and their children are rolled before they are expired
 * or their parents made FINAL. Null or absent: nothing is rolled.
 */
export function windowStore(redis: Redis, cassandra: Client, keyspace: string, roll: RollPlan | null = null) {
  const table = `${keyspace}.views_by_region_and_window`;
  /** A window's persisted snapshot (`id` = `<spec>:<start ms>`), unordered; empty if never persisted. */
  const readWindow = async (region: string, id: string, beat: Beat = noBeat): Promise<RankedCount[]> => {
    const parsed = parseWindowId(id);
    if (!parsed) throw new Error(`not a window id: "${id}"`);
    const rows: RankedCount[] = [];
    let pageState: string | undefined;
    do {
      beat();
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
  const insert = `INSERT INTO ${table} (region_id, window_spec, window_start, post_id, count) VALUES (?, ?, ?, ?, ?)`;
  /** Snapshot rows written as they come (batches of 500 rows, one partition per window); returns the snapshot's figures. */
  const snapshotWriter = (region: string, spec: string, start: number) => {
    const at = new Date(start);
    const snap: WindowSnapshot = { posts: 0, events: 0, top: [] };
    const pending: RankedCount[] = [];
    const write = (rows: RankedCount[]) =>
      cassandra.batch(
        rows.map((r) => ({ query: insert, params: [region, spec, at, r.post_id, types.Long.fromNumber(r.view_count)] })),
        { prepare: true, logged: false },
      );
    return {
      add: async (rows: RankedCount[]) => {
        for (const r of rows) {
          snap.posts++;
          snap.events += r.view_count;
          pending.push(r);
        }
        snap.top = [...snap.top, ...rows].sort(byRank).slice(0, 10);
        while (pending.length >= 500) await write(pending.splice(0, 500));
      },
      done: async () => {
        if (pending.length) await write(pending);
        return snap;
      },
    };
  };
  /**
   * One read of the window's key into its snapshot rows, in pages (the final persist reads a
   * window nobody writes any more, past its lateness; the closing one may see a late event's
   * count at any moment of the read); `unique`: repeats dropped. Its posts and events count
   * each row read.
   */
  const copyWindow = async (region: string, spec: string, start: number, key: string, unique: boolean, beat: Beat): Promise<WindowSnapshot> => {
    const out = snapshotWriter(region, spec, start);
    for await (const rows of scanPages(redis, key, SCAN_PAGE, unique)) {
      beat();
      await out.add(rows);
    }
    return out.done();
  };
  /** The window's key copied whole (read again dropping repeats when it changed or repeated during the read). */
  const copyWhole = async (region: string, spec: string, start: number, key: string, beat: Beat): Promise<WindowSnapshot> => {
    const before = await redis.zcard(key);
    const first = await copyWindow(region, spec, start, key, false, beat);
    if (before === first.posts && (await redis.zcard(key)) === before) return first;
    return copyWindow(region, spec, start, key, true, beat);
  };
  /**
   * A rolled spec's window copied as the sum of its key and its children not yet rolled: the
   * children (a few minutes of counts) are held, the key is read in pages as copyWindow does
   * (again dropping repeats when it changed or repeated during the read). Read again when a
   * roll page ran meanwhile (it moves counts from a child into the key).
   */
  const copySum = async (region: string, spec: string, start: number, beat: Beat): Promise<WindowSnapshot> => {
    const id = windowId(spec, start);
    for (let attempt = 1; ; attempt++) {
      const { sources, version } = await windowSources(redis, region, id, roll);
      const [own, ...children] = sources;
      const extra = new Map<string, number>();
      for (const c of children) {
        beat();
        for (const e of await readRange(redis, c)) extra.set(e.post_id, (extra.get(e.post_id) ?? 0) + e.view_count);
      }
      const copy = async (unique: boolean) => {
        const out = snapshotWriter(region, spec, start);
        const inKey = new Set<string>();
        let rows = 0;
        for await (const page of scanPages(redis, own.key, SCAN_PAGE, unique)) {
          beat();
          rows += page.length;
          await out.add(
            page.map((e) => {
              const more = extra.get(e.post_id);
              if (more === undefined) return e;
              inKey.add(e.post_id);
              return { post_id: e.post_id, view_count: e.view_count + more };
            }),
          );
        }
        await out.add([...extra].filter(([post]) => !inKey.has(post)).map(([post_id, view_count]) => ({ post_id, view_count })));
        return { snap: await out.done(), rows };
      };
      const first = await copy(false);
      const snap = first.rows === own.size && (await redis.zcard(own.key)) === own.size ? first.snap : (await copy(true)).snap;
      const again = (await redis.hget(regionSealedKey(region), ROLL_VERSION_FIELD)) !== version;
      if (!again || attempt >= SUM_ATTEMPTS) return snap;
    }
  };

  return {
    /**
     * Writes the window's current counts to Cassandra as they are read, a page at a time;
     * returns its size and top 10. Nothing of the whole window is held: the read keeps no
     * post ids to drop ZSCAN's repeats, it counts them instead. ZSCAN returns every member
     * present for the whole read at least once, members are never removed from a window's
     * key, so when the key's size is the same before and after the read and equals the rows
     * read, every post came exactly once. Otherwise (a post added meanwhile, or Redis
     * resizing the set returned one twice) it reads again dropping repeats, holding the
     * window's post ids for that read only; writing a post twice overwrites it.
     *
     * `final`: the FINAL snapshot. The window (and every earlier one of its spec) is first
     * marked final in Redis, so a flush refuses to write to it from then on
     * (region-flush.lua): an event triaged against a watermark from before the one that made
     * the window final (its batch was triaged while an earlier one was in flight) would
     * otherwise be counted in the key after this read, and the key and its FINAL snapshot
     * would differ.
     */
    async persistWindow(region: string, spec: string, start: number, beat: Beat = noBeat, final = false): Promise<WindowSnapshot> {
      const key = regionWindowKey(region, windowId(spec, start));
      const parent = rolledWindow(roll, windowId(spec, start));
      if (roll && parent) {
        const child = roll.child;
        const lastChild = parent.children[1] + 1 - child.sizeMs;
        if (!final) {
          // Closing: what is FINAL of it is rolled in; the snapshot sums the key and the rest.
          await rollChildren(redis, region, roll, lastChild, beat);
          return copySum(region, spec, start, beat);
        }
        // Every child is past its lateness (the parent's is at least as long): each is made
        // FINAL (no more writes), then rolled in, and only then the parent (flushes send a
        // FINAL child's events straight to it until its own mark).
        await scripted(redis).hhRaise(regionSealedKey(region), windowFinalField(child.name), lastChild);
        await rollChildren(redis, region, roll, lastChild, beat);
      }
      if (final) await scripted(redis).hhRaise(regionSealedKey(region), windowFinalField(spec), start);
      const snap = await copyWhole(region, spec, start, key, beat);
      // A FINAL child is rolled into its parents at once (they take no more of it from flushes).
      if (final && roll && spec === roll.child.name) await rollChildren(redis, region, roll, start, beat);
      return snap;
    },

    readWindow,

    /** Rebuilds the window's Redis key from its persisted snapshot (recompute); it expires as the flush would have it (`expireAt` = the window's TTL, plus the grace). */
    async restoreWindow(region: string, id: string, expireAt: number, beat: Beat = noBeat): Promise<WindowSnapshot> {
      const parent = rolledWindow(roll, id);
      if (roll && parent) {
        // Its snapshot sums its children: restored beside children not yet rolled, they would count twice.
        const left = await redis.zcount(regionUnrolledKey(region, roll.child.name), ...parent.children);
        if (left > 0)
          throw new Error(`window ${id} of region "${region}" still has ${left} window(s) of ${roll.child.name} to roll in: recompute it once it is FINAL`);
      }
      const rows = await readWindow(region, id, beat);
      const key = regionWindowKey(region, id);
      const tx = redis.multi().del(key);
      for (const args of zaddChunks(rows)) tx.zadd(key, ...args);
      if (rows.length) tx.pexpireat(key, expireAt + WINDOW_KEY_GRACE_MS);
      await tx.exec();
      return { posts: rows.length, events: rows.reduce((a, r) => a + r.view_count, 0), top: rows.sort(byRank).slice(0, 10) };
    },

    /**
     * Sums a sliding window's panes (the `pane` spec's windows from start to start + size)
     * into its key; marks it for the global merge. Panes of at most SLIDING_STEP_MEMBERS
     * members in all are summed by one ZUNIONSTORE; larger ones page by page into a private
     * key that then replaces the window's key in one step (sliding-assemble.lua), so Redis is
     * never held for the whole sum and readers see the old sum or the new one. A pane whose
     * key expired is read from its persisted snapshot.
     */
    async assembleSliding(
      region: string,
      id: string,
      pane: string,
      start: number,
      sizeMs: number,
      slideMs: number,
      expireAt: number,
      beat: Beat = noBeat,
    ): Promise<number> {
      const paneIds: string[] = [];
      for (let p = start; p < start + sizeMs; p += slideMs) paneIds.push(windowId(pane, p));
      const panes = paneIds.map((p) => regionWindowKey(region, p));
      const key = regionWindowKey(region, id);
      const sizes = (await redis.pipeline(panes.map((p) => ['zcard', p])).exec())!.map(([err, n]) => {
        if (err) throw err;
        return n as number;
      });
      // Like a tumbling window's key: the TTL plus the grace (the workflow's expireWindow ends it
      // on time). A sum made even later (its workflow held up past both) still lives until the
      // workflow persists and expires it: a past expiry would delete it at once, and the record
      // would get an empty snapshot.
      const until = Math.max(expireAt + WINDOW_KEY_GRACE_MS, Date.now() + ASSEMBLY_TTL_MS);
      const marker = regionAssemblyKey(region, id, randomUUID());
      // A pane whose key is gone may have expired before this ran (the workflow was held up
      // past the pane's TTL): its persisted snapshot is summed instead, from a private copy.
      const copies: string[] = [];
      for (let i = 0; i < panes.length; i++) {
        if (sizes[i] > 0) continue;
        const rows = await readWindow(region, paneIds[i], beat);
        if (rows.length === 0) continue; // no events in it (or not persisted: then none expired either)
        const copy = `${marker}:pane:${i}`;
        // A MULTI per 5,000 members, not one for the whole copy (Redis is not held for it), each
        // with the expiry: a process killed while sending leaves no copy that never expires.
        const done = await Promise.all(
          zaddChunks(rows).map((args) =>
            redis
              .multi()
              .zadd(copy, ...args)
              .pexpire(copy, ASSEMBLY_TTL_MS)
              .exec(),
          ),
        );
        for (const [err] of done.flatMap((res) => res ?? [])) if (err) throw err;
        copies.push(copy);
        panes[i] = copy;
        sizes[i] = rows.length;
      }
      try {
        if (sizes.reduce((a, n) => a + n, 0) <= SLIDING_STEP_MEMBERS) {
          const [[, n]] = (await redis
            .multi()
            .zunionstore(key, panes.length, ...panes)
            .pexpireat(key, until)
            .sadd(GLOBAL_DIRTY_KEY, id)
            .exec()) as [[null, number]];
          return n;
        }
        const s = scripted(redis);
        const counts = `${marker}:counts`;
        const sum = `${marker}:sum`;
        await redis.set(marker, '1', 'PX', ASSEMBLY_TTL_MS);
        for (let i = 0; i < panes.length; i++) {
          let cursor = '0';
          do {
            beat();
            cursor = String(await s.hhSlidingAssemble(marker, counts, `${marker}:seen:${i}`, panes[i], 'step', cursor, ASSEMBLY_PAGE, ASSEMBLY_TTL_MS));
          } while (cursor !== '0');
        }
        let cursor = '0';
        do {
          beat();
          cursor = String(await s.hhSlidingAssemble(marker, counts, sum, sum, 'convert', cursor, ASSEMBLY_PAGE, ASSEMBLY_TTL_MS));
        } while (cursor !== '0');
        return Number(await s.hhSlidingAssemble(marker, sum, key, GLOBAL_DIRTY_KEY, 'finish', until, id));
      } finally {
        if (copies.length) await redis.del(...copies);
      }
    },

    /**
     * The window's TTL passed: its Redis key goes, and the global merge of the window (every
     * region's window of this id has the same TTL). The keys' own expiry is later (the grace,
     * WINDOW_KEY_GRACE_MS, for a workflow held up past the TTL): this is what ends them on time.
     */
    async expireWindow(region: string, id: string): Promise<void> {
      // A child goes only once its counts are in its parents (its workflow rolled it at FINAL;
      // this covers one whose roll did not finish).
      const w = parseWindowId(id);
      if (w && roll && w.spec === roll.child.name) await rollChildren(redis, region, roll, w.start);
      // One DEL per key: they are in different hash slots.
      const res = await redis.pipeline().del(regionWindowKey(region, id)).del(globalTopKey(id)).del(globalMetaKey(id)).exec();
      for (const [err] of res ?? []) if (err) throw err;
    },
  };
}
