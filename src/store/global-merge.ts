/**
 * The global merge over Redis: the regions' leaderboards of each key family changed since the
 * last merge are merged exactly (ranking/tput.ts) into `global:top_k[:<family>]`.
 */
import type { Redis } from 'ioredis';
import {
  GLOBAL_DIRTY_KEY,
  REGIONS_KEY,
  ROLL_VERSION_FIELD,
  globalMetaKey,
  globalTopKey,
  regionSealedKey,
  regionTopKey,
  regionTrailingKey,
  regionWindowKey,
} from '../keys';
import { fromWithScores as pairs } from '../ranking';
import { tput, type MergeStats, type RankSource } from '../ranking/tput';
import { SCAN_PAGE, noBeat, scanCounts, type Beat } from './scan-counts';
import { rolledWindow, type RollPlan } from './window-roll';
import { windowKeyExpireAt } from '../config';
import { rangesSource, windowSources, type RankRange } from './window-sources';

/**
 * The leaderboards `keys` (one per region) in Redis; each phase is one pipelined round trip.
 * `beat` is called before each round trip (the merge activity's heartbeat).
 */
export function redisSource(redis: Redis, keys: string[], beat: Beat = noBeat): RankSource {
  const each = async <T>(f: (p: ReturnType<Redis['pipeline']>, key: string, r: number) => void): Promise<T[]> => {
    beat();
    const p = redis.pipeline();
    keys.forEach((key, r) => f(p, key, r));
    const res = (await p.exec()) ?? [];
    return res.map(([err, v]) => {
      if (err) throw err;
      return v as T;
    });
  };
  return {
    regions: keys.length,
    top: async (k) => (await each<string[]>((p, key) => p.zrevrange(key, 0, k - 1, 'WITHSCORES'))).map(pairs),
    atLeast: async (k, min) => (await each<string[]>((p, key) => p.zrevrangebyscore(key, '+inf', String(min), 'WITHSCORES', 'LIMIT', k, -1))).map(pairs),
    counts: async (ask) => {
      const res = await each<(string | null)[]>((p, key, r) => (ask[r].length ? p.zmscore(key, ...ask[r]) : p.echo('')));
      return res.map((v, r) => (ask[r].length ? (v as (string | null)[]).map((c) => (c === null ? null : Number(c))) : []));
    },
    sizes: async () => (await each<number>((p, key) => p.zcard(key))).reduce((a, n) => a + n, 0),
    countAtLeast: async (min) => (await each<number>((p, key) => p.zcount(key, String(min), '+inf'))).reduce((a, n) => a + n, 0),
    leaderboard: (r) => scanCounts(redis, keys[r], SCAN_PAGE, beat),
  };
}

/** A key family's id as the merge and `global:dirty` name it: `all`, a window id, or `trailing:<spec>`. */
export function regionalKey(region: string, family: string): string {
  if (family === 'all') return regionTopKey(region);
  if (family.startsWith('trailing:')) return regionTrailingKey(region, family.slice('trailing:'.length));
  return regionWindowKey(region, family);
}

/**
 * When a global window key expires: with the last of its regional keys (all-time and
 * trailing keys never expire: undefined). 0 when no regional key is left.
 */
async function expiry(redis: Redis, family: string, keys: string[]): Promise<number | undefined> {
  if (family === 'all' || family.startsWith('trailing:')) return undefined;
  const p = redis.pipeline();
  for (const k of keys) p.call('PEXPIRETIME', k);
  const res = (await p.exec()) ?? [];
  // -2: no such key; -1: no expiry (a window key always has one once written)
  return Math.max(0, ...res.map(([, v]) => Number(v)));
}

export interface GlobalMergeReport {
  families: number;
  moved: number;
  naive: number;
  /** Per merged key family: its figures. */
  merged: Record<string, MergeStats>;
}

/**
 * Merges every key family changed since the last merge (the hot path marks them in
 * `global:dirty`) into `global:top_k[:<id>]`, with its figures in `global:meta`. `beat` is
 * called before each of its round trips to Redis (the activity's heartbeat).
 */
export async function mergeChanged(redis: Redis, k: number, now = Date.now(), beat: Beat = noBeat, roll: RollPlan | null = null): Promise<GlobalMergeReport> {
  const families = await redis.spop(GLOBAL_DIRTY_KEY, 100_000);
  const report: GlobalMergeReport = { families: 0, moved: 0, naive: 0, merged: {} };
  if (families.length === 0) return report;
  try {
    const regions = (await redis.smembers(REGIONS_KEY)).sort();
    for (const family of families) {
      const keys = regions.map((r) => regionalKey(r, family));
      // A rolled spec's window expires as its spec says (its key may not exist yet while its children hold its counts).
      const rolled = rolledWindow(roll, family);
      const expireAt = rolled ? windowKeyExpireAt(rolled.spec, rolled.start) : await expiry(redis, family, keys);
      if (expireAt !== undefined && expireAt <= now) continue; // expired meanwhile
      const { top, stats } = rolled ? await mergeRolled(redis, regions, family, roll!, k, beat) : await tput(redisSource(redis, keys, beat), k);
      const key = globalTopKey(family);
      const meta = globalMetaKey(family);
      const tx = redis.multi().del(key);
      if (top.length) tx.zadd(key, ...top.flatMap((e) => [e.view_count, e.post_id]));
      tx.set(meta, JSON.stringify({ at: now, k, regions: regions.length, ...stats }));
      if (expireAt !== undefined) tx.pexpireat(key, expireAt).pexpireat(meta, expireAt);
      await tx.exec();
      report.families++;
      report.moved += stats.moved;
      report.naive += stats.naive;
      if (Object.keys(report.merged).length < 20) report.merged[family] = stats; // bounded: it goes into workflow history
    }
  } catch (e) {
    await redis.sadd(GLOBAL_DIRTY_KEY, ...families); // merged again next time
    throw e;
  }
  return report;
}

/** Reads that saw a roll page run meanwhile (in any region) are merged again, at most this often. */
const MERGE_ATTEMPTS = 5;

/** The merge of a rolled spec's window: per region its key and its children not yet rolled in, all summed. */
async function mergeRolled(redis: Redis, regions: string[], family: string, roll: RollPlan, k: number, beat: Beat) {
  for (let attempt = 1; ; attempt++) {
    beat();
    const read = await Promise.all(regions.map((r) => windowSources(redis, r, family, roll)));
    const ranges: RankRange[] = read.flatMap((s) => s.sources.filter((x) => x.size > x.from));
    const merged = await tput(rangesSource(redis, ranges), k);
    beat();
    const after = await Promise.all(regions.map((r) => redis.hget(regionSealedKey(r), ROLL_VERSION_FIELD)));
    if (after.every((v, i) => v === read[i].version) || attempt >= MERGE_ATTEMPTS) return merged;
  }
}
