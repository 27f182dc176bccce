/**
 * Trailing timeframes (`timeframe=5m`): per region and tumbling spec, the sum of the panes
 * the watermark has passed, back over the spec's size, moved by trailing.lua: a spare
 * key is brought to the new range, then swapped in. A move of at most `budget` pane members
 * (the usual one) is one script call; a larger one folds at most `budget` members per call,
 * so no call holds Redis for long however large a pane is. Before the moves, the panes of a
 * spec with a source (config.ts: paneChain) that the watermark passed are summed from the
 * source's panes (trailing.lua's roll), in calls of the same bound: flushes write only the finest.
 */
import type { Redis } from 'ioredis';
import { paneChain, trailingPaneMs, type WindowSpec } from '../config';
import { GLOBAL_DIRTY_KEY, regionPrefix, regionTrailingStateKey } from '../keys';
import { scripted } from './scripts';

/**
 * Pane members folded per script call: about 1-2 ms of Redis per thousand on an idle machine,
 * several times that beside a burst of new posts (a step of 5,000 took 60 ms in one bench run
 * of the 1,000,000-post phase, a roll 31 in another: over or near the 50 ms that count as a stall).
 */
export const TRAILING_STEP_MEMBERS = 2500;

export interface TrailingOptions {
  /** Runs one spec's move between the region's flushes (its actor); default: at once. */
  serialize?: <T>(fn: () => Promise<T>) => Promise<T>;
  /** Pane members folded per script call. @default TRAILING_STEP_MEMBERS */
  budget?: number;
  /** Called between two script calls of a move (tests). */
  onStep?: () => Promise<void>;
}

/**
 * Moves the region's trailing timeframes to `watermark` (adds the panes it entered,
 * subtracts the ones that fell out), marks the changed ones for the global merge, and
 * returns their spec names. A move cancelled by a concurrent write into a pane it folds
 * is left to the next call (the live key stays as it was, exact for its range).
 */
export async function advanceTrailing(
  redis: Redis,
  region: string,
  windows: readonly WindowSpec[],
  watermark: number,
  opts: TrailingOptions = {},
): Promise<string[]> {
  const serialize = opts.serialize ?? (<T>(fn: () => Promise<T>) => fn());
  const wm = Math.floor(watermark);
  // Only the specs whose range the watermark moves, or whose panes are due to be summed, take a turn between the region's flushes.
  const state = windows.length ? await redis.hmget(regionTrailingStateKey(region), ...windows.flatMap((w) => [w.name, `${w.name}:rolled`])) : [];
  const ranges = windows.map((_, i) => state[2 * i]);
  // Roll-ups first, finest panes first (a spec's source has finer panes), and before any move
  // deletes a source's pane. A spec whose panes could not all be summed (a source lagging)
  // leaves every move to the next call.
  const chain = paneChain(windows);
  const rolls = windows
    .map((w, k) => ({ w, k, P: trailingPaneMs(w.sizeMs), rolled: state[2 * k + 1] }))
    .filter(({ k, P, rolled }) => chain[k].source >= 0 && rolled !== null && Number(rolled) < Math.floor(wm / P) * P)
    .sort((a, b) => a.P - b.P);
  for (const { w, k } of rolls) {
    if (!(await serialize(() => rollSpec(redis, region, w, windows[chain[k].source], chain[k].ttlMs, wm, opts)))) return [];
  }
  const changed: string[] = [];
  for (const [i, w] of windows.entries()) {
    const P = trailingPaneMs(w.sizeMs);
    const hi = ranges[i] === null ? undefined : Number(ranges[i]!.split(':')[1]);
    if (hi !== undefined && Math.floor(wm / P) * P - P <= hi) continue;
    if (await serialize(() => moveSpec(redis, region, w, wm, opts))) changed.push(w.name);
  }
  if (changed.length) await redis.sadd(GLOBAL_DIRTY_KEY, ...changed.map((n) => `trailing:${n}`));
  return changed;
}

/** One spec's move; true when its live key now covers the watermark's range. */
async function moveSpec(redis: Redis, region: string, w: WindowSpec, watermark: number, opts: TrailingOptions): Promise<boolean> {
  const s = scripted(redis);
  const state = regionTrailingStateKey(region);
  const prefix = regionPrefix(region);
  const P = trailingPaneMs(w.sizeMs);
  const budget = opts.budget ?? TRAILING_STEP_MEMBERS;
  const plan = await s.hhTrailing(state, 'plan', prefix, w.name, P, w.sizeMs, watermark, budget);
  if (plan.length === 0) return false;
  if (plan[0] === 'MOVED') return true;
  const [job, addFrom, addTo, subFrom, subTo, spareFrom] = plan;
  for (const [sign, from, to] of [
    [1, addFrom, addTo],
    [-1, subFrom, subTo],
  ] as const) {
    let pane = from;
    let offset = '0';
    for (;;) {
      await opts.onStep?.();
      const r = await s.hhTrailing(state, 'step', prefix, w.name, P, job, sign, pane, offset, to, budget);
      if (r[0] === 'CANCELLED') return false;
      if (r[0] === 'DONE') break;
      [, pane, offset] = r;
    }
  }
  await opts.onStep?.();
  const r = await s.hhTrailing(state, 'swap', prefix, w.name, P, job, spareFrom);
  return r[0] === 'OK';
}

/**
 * Sums a spec's panes the watermark passed from its source's panes (trailing.lua's roll), in calls
 * of at most `budget` members; true when every pane before the watermark's is summed.
 */
async function rollSpec(
  redis: Redis,
  region: string,
  w: WindowSpec,
  source: WindowSpec,
  ttlMs: number,
  watermark: number,
  opts: TrailingOptions,
): Promise<boolean> {
  const s = scripted(redis);
  const P = trailingPaneMs(w.sizeMs);
  const target = Math.floor(watermark / P) * P;
  for (;;) {
    await opts.onStep?.();
    const r = await s.hhTrailing(
      regionTrailingStateKey(region),
      'roll',
      regionPrefix(region),
      w.name,
      P,
      source.name,
      trailingPaneMs(source.sizeMs),
      target,
      opts.budget ?? TRAILING_STEP_MEMBERS,
      ttlMs,
    );
    if (r[0] === 'DONE') return r[1] === '' || Number(r[1]) >= target;
  }
}
