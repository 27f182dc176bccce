/**
 * Roll-ups of the coarser tumbling windows (config.ts rollChain): a window of the finest spec
 * (a child), once FINAL, is added page by page into the window of each rolled spec that holds
 * it (window-roll.lua). Flushes write a rolled spec's window only with what is too late for
 * its child. Rolls run where a child's count is final: at its FINAL persist, before its key
 * is expired, and before a parent's FINAL persist (window-snapshots.ts).
 */
import type { Redis } from 'ioredis';
import { rollChain, type TopKMode, type WindowSpec } from '../config';
import { GLOBAL_DIRTY_KEY, WINDOW_KEY_GRACE_MS, parseWindowId, regionDirtyKey, regionMetaKey, regionPrefix, regionSealedKey, regionUnrolledKey } from '../keys';
import { scripted } from './scripts';
import { noBeat, type Beat } from './scan-counts';

/**
 * Members a roll page reads from its child (each is written into every parent: 3 specs by
 * default). Rolling a minute of 125,000 posts on an idle Redis (a scratch run), a page of
 * 1,000 held Redis 6.7 ms at the median and 15.3 at most, 500: 3.3 / 11.9, 250: 1.7 / 6.7
 * (the whole roll 973, 1,081 and 1,207 ms); in the bench's 1,000,000-post phase, beside the
 * flushes and the checkpoints, pages of 1,000 took up to 71 ms (over the 50 that count as
 * a stall).
 */
export const ROLL_PAGE = 250;

/** The finest spec and the specs rolled up from it, or null when nothing is rolled. */
export interface RollPlan {
  child: WindowSpec;
  parents: WindowSpec[];
}

export function rollPlan(windows: readonly WindowSpec[], mode: TopKMode = 'exact'): RollPlan | null {
  const chain = rollChain(windows, mode);
  const parents = windows.filter((_, k) => chain[k] >= 0);
  if (parents.length === 0) return null;
  return { child: windows[chain.find((c) => c >= 0)!], parents };
}

/**
 * The rolled spec of window `id` and the starts of its children ([from, to], inclusive), or
 * undefined when the window is not of a rolled spec.
 */
export function rolledWindow(plan: RollPlan | null, id: string): { spec: WindowSpec; start: number; children: [number, number] } | undefined {
  const w = parseWindowId(id);
  const spec = w && plan?.parents.find((p) => p.name === w.spec);
  return w && spec ? { spec, start: w.start, children: [w.start, w.start + spec.sizeMs - 1] } : undefined;
}

export interface RollReport {
  pages: number;
  /** Child members added into the parents. */
  members: number;
  /** Events a parent marked FINAL by hand refused. */
  refused: number;
}

/**
 * Rolls the region's FINAL children up to (and including) the one starting at `upto`, page by
 * page, oldest first. Stops early when the region's state belongs to another epoch (a
 * rebuild: the rebuilt state carries its own progress). `beat` is called before each page.
 */
export async function rollChildren(
  redis: Redis,
  region: string,
  plan: RollPlan,
  upto: number,
  beat: Beat = noBeat,
  page = ROLL_PAGE,
  /** At most this many pages (tests look between pages). */
  maxPages = Infinity,
): Promise<RollReport> {
  const report: RollReport = { pages: 0, members: 0, refused: 0 };
  // The region's state as it is now: a rebuild meanwhile (a new epoch) stops the roll.
  const epoch = await redis.hget(regionMetaKey(region), 'epoch');
  if (epoch === null) return report;
  const spec = (w: WindowSpec) => [w.name, w.sizeMs, w.ttlMs + WINDOW_KEY_GRACE_MS];
  const header = JSON.stringify({ epoch, prefix: regionPrefix(region), child: spec(plan.child), parents: plan.parents.map(spec), page, upto });
  const s = scripted(redis);
  while (report.pages < maxPages) {
    beat();
    const reply = await s.hhWindowRoll(
      regionSealedKey(region),
      regionUnrolledKey(region, plan.child.name),
      regionDirtyKey(region),
      regionMetaKey(region),
      header,
    );
    if (reply[0] !== 'OK') return report;
    const [, , , , refused, members, ...ids] = reply;
    report.pages++;
    report.refused += Number(refused);
    report.members += Number(members);
    // The global merge takes the parents again (their counts moved from the child).
    if (ids.length) await redis.sadd(GLOBAL_DIRTY_KEY, ...ids.map(String));
  }
  return report;
}
