/**
 * Where a window's counts are in Redis. A window of a spec rolled up from the finest one
 * (config.ts rollChain) is its own key plus its children not yet rolled into it: the
 * children written and not yet rolled, each from the first rank a roll has not taken
 * (window-roll.lua). Its top k is the exact top k of that sum (ranking/tput.ts), read again
 * when a roll page ran meanwhile (it moves counts from a child into the key).
 */
import type { Redis } from 'ioredis';
import type { RankedCount } from '../ranking';
import { fromWithScores as pairs } from '../ranking';
import { tput, type RankSource } from '../ranking/tput';
import { regionSealedKey, regionUnrolledKey, regionWindowKey, rolledField, ROLL_VERSION_FIELD, windowId } from '../keys';
import { rolledWindow, type RollPlan } from './window-roll';

/** A sorted set, from rank `from` up (the ranks below were rolled into the window's own key). */
export interface RankRange {
  key: string;
  from: number;
  /** The key's size when the sources were read. */
  size: number;
  /** The member at rank from - 1 (score, member): what a roll took ends there. */
  last?: { score: number; member: string };
}

export interface WindowSources {
  sources: RankRange[];
  /** The roll pages counted when the sources were read (null: none ever ran, or not a rolled window). */
  version: string | null;
}

/** The sources of window `id` of `region`: its key, and for a rolled spec's window its children not yet rolled. */
export async function windowSources(redis: Redis, region: string, id: string, plan: RollPlan | null): Promise<WindowSources> {
  const key = regionWindowKey(region, id);
  const w = rolledWindow(plan, id);
  if (!w || !plan) return { sources: [{ key, from: 0, size: await redis.zcard(key) }], version: null };
  const child = plan.child;
  const [[e1, starts], [e2, at], [e3, version], [e4, size]] = (await redis
    .multi()
    .zrangebyscore(regionUnrolledKey(region, child.name), ...w.children)
    .hget(regionSealedKey(region), rolledField(child.name))
    .hget(regionSealedKey(region), ROLL_VERSION_FIELD)
    .zcard(key)
    .exec())! as [[Error | null, string[]], [Error | null, string | null], [Error | null, string | null], [Error | null, number]];
  const err = e1 ?? e2 ?? e3 ?? e4;
  if (err) throw err;
  const [atStart, atCursor] = at ? at.split(':').map(Number) : [NaN, 0];
  const sources: RankRange[] = [{ key, from: 0, size }];
  const children = starts.map((s) => ({ key: regionWindowKey(region, windowId(child.name, Number(s))), from: Number(s) === atStart ? atCursor : 0 }));
  if (children.length) {
    const p = redis.pipeline();
    for (const c of children) {
      p.zcard(c.key);
      if (c.from > 0) p.zrange(c.key, c.from - 1, c.from - 1, 'WITHSCORES');
    }
    const res = (await p.exec())!.map(([e, v]) => {
      if (e) throw e;
      return v;
    });
    let i = 0;
    for (const c of children) {
      const range: RankRange = { ...c, size: res[i++] as number };
      if (c.from > 0) {
        const [member, score] = res[i++] as string[];
        if (member !== undefined) range.last = { score: Number(score), member };
      }
      sources.push(range);
    }
  }
  return { sources, version };
}

/** What is left of a range: its top (size - from) ranks. */
const left = (r: RankRange) => Math.max(0, r.size - r.from);

/** Whether (score, member) ranks at or below a range's last rolled member (Redis: score, then member bytes). */
function rolledAway(r: RankRange, score: number, member: string): boolean {
  if (!r.last) return false;
  if (score !== r.last.score) return score < r.last.score;
  return Buffer.compare(Buffer.from(member), Buffer.from(r.last.member)) <= 0;
}

/** The ranges as one leaderboard per range (a RankSource for TPUT: it sums them). */
export function rangesSource(redis: Redis, ranges: RankRange[]): RankSource {
  const each = async <T>(f: (p: ReturnType<Redis['pipeline']>, r: RankRange) => void): Promise<T[]> => {
    const p = redis.pipeline();
    for (const r of ranges) f(p, r);
    return (await p.exec())!.map(([e, v]) => {
      if (e) throw e;
      return v as T;
    });
  };
  return {
    regions: ranges.length,
    top: async (k) =>
      // An empty range reads nothing (ZREVRANGE 0 -1 would read the whole key).
      (await each<string[]>((p, r) => (left(r) ? p.zrevrange(r.key, 0, Math.min(k, left(r)) - 1, 'WITHSCORES') : p.echo('')))).map((flat, i) =>
        left(ranges[i]) ? pairs(flat as string[]) : [],
      ),
    atLeast: async (k, min) =>
      (await each<string[]>((p, r) => (left(r) > k ? p.zrevrangebyscore(r.key, '+inf', String(min), 'WITHSCORES', 'LIMIT', k, left(r) - k) : p.echo('')))).map(
        (flat, i) => (left(ranges[i]) > k ? pairs(flat as string[]) : []),
      ),
    counts: async (ask) => {
      const res = await each<(string | null)[]>((p, r) => {
        const i = ranges.indexOf(r);
        if (ask[i].length) p.zmscore(r.key, ...ask[i]);
        else p.echo('');
      });
      return res.map((v, i) =>
        ask[i].length ? (v as (string | null)[]).map((c, j) => (c === null || rolledAway(ranges[i], Number(c), ask[i][j]) ? null : Number(c))) : [],
      );
    },
    sizes: async () => ranges.reduce((a, r) => a + left(r), 0),
    countAtLeast: async (min) => (await each<number>((p, r) => p.zcount(r.key, String(min), '+inf'))).reduce((a, n, i) => a + Math.min(n, left(ranges[i])), 0),
    leaderboard: async (i) => readRange(redis, ranges[i]),
  };
}

/** Every member of a range (its top size - from ranks), a page at a time. */
export async function readRange(redis: Redis, r: RankRange, page = 5000): Promise<RankedCount[]> {
  const out: RankedCount[] = [];
  for (let at = r.from; at < r.size; at += page) out.push(...pairs(await redis.zrange(r.key, at, Math.min(r.size, at + page) - 1, 'WITHSCORES')));
  return out;
}

/** Reads that saw a roll page run meanwhile are read again, at most this often. */
const READ_ATTEMPTS = 5;

/**
 * The exact top k of window `id` of `region`: for a rolled spec's window, of its key and its
 * children not yet rolled. Null when it has no sources holding counts.
 */
export async function windowTopK(redis: Redis, region: string, id: string, plan: RollPlan | null, k: number): Promise<{ top: RankedCount[] } | null> {
  for (let attempt = 1; ; attempt++) {
    const { sources, version } = await windowSources(redis, region, id, plan);
    const live = sources.filter((r) => left(r) > 0);
    if (live.length === 0) return null;
    if (live.length === 1 && live[0].from === 0) return { top: pairs(await redis.zrevrange(live[0].key, 0, k - 1, 'WITHSCORES')) };
    const { top } = await tput(rangesSource(redis, live), k);
    if (version === (await redis.hget(regionSealedKey(region), ROLL_VERSION_FIELD)) || attempt >= READ_ATTEMPTS) return { top };
  }
}
