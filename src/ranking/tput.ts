/**
 * The global merge: the exact global Top-K of a key family (all-time, a window, a trailing
 * timeframe) from the regions' exact leaderboards, with the threshold protocol TPUT
 * (Cao & Wang, 2004) so that only a small part of each leaderboard is read:
 *
 *   1. each region's top K; partial sums (0 where a region did not list a post);
 *      τ = the K-th largest partial sum (a lower bound of the global K-th count);
 *   2. each region's further posts with a count ≥ τ/R (a post below τ/R in every region
 *      sums to less than τ, so it cannot be in the global top K); a candidate whose upper
 *      bound (its known counts + τ/R for each region that did not list it) is below the
 *      new K-th partial sum is pruned;
 *   3. the exact counts of the surviving candidates in the regions that did not list them.
 *
 * Every merge counts the entries it moved beside what merging full leaderboards would
 * move (the sum of the leaderboards' sizes). Pure: the leaderboards come through a RankSource
 * (Redis in store/global-merge.ts, lists in the unit tests).
 */
import { addCounts, byRank, topOfSums, type RankedCount } from './index';

/** Reads of the R regional leaderboards of one key family. */
export interface RankSource {
  readonly regions: number;
  /** Per region: its top `k` (highest first). */
  top(k: number): Promise<RankedCount[][]>;
  /** Per region: entries ranked below the top `k` with a count ≥ `min`. */
  atLeast(k: number, min: number): Promise<RankedCount[][]>;
  /** Per region (`ask[r]` = posts to look up there): their counts, null where absent. */
  counts(ask: string[][]): Promise<(number | null)[][]>;
  /** Entries of all R leaderboards (what a merge of full leaderboards would move). */
  sizes(): Promise<number>;
  /** Entries of all R leaderboards with a count ≥ `min` (counted, not read). */
  countAtLeast(min: number): Promise<number>;
  /** Region r's whole leaderboard. */
  leaderboard(r: number): Promise<RankedCount[]>;
}

/**
 * The exact top `k` of whole leaderboards: every entry read once, one region at a time into
 * one map of sums (memory: the distinct posts, not R lists of objects).
 */
async function fullMerge(src: RankSource, k: number, naive: number): Promise<{ top: RankedCount[]; stats: MergeStats }> {
  const sums = new Map<string, number>();
  for (let r = 0; r < src.regions; r++) addCounts(sums, await src.leaderboard(r));
  return { top: topOfSums(sums, k), stats: { plan: 'full', moved: naive, naive, phases: [naive, 0, 0], candidates: sums.size, threshold: 0 } };
}

export interface MergeStats {
  /** `tput`, or `full` when reading the whole leaderboards moves fewer entries (small ones, many regions). */
  plan: 'tput' | 'full';
  /** Entries read from the regions, all phases. */
  moved: number;
  /** Entries a merge of the full regional leaderboards would read. */
  naive: number;
  phases: [number, number, number];
  candidates: number;
  threshold: number;
}

/** The exact global top `k` through TPUT. Ties rank like Redis: count, then post_id descending. */
export async function tput(src: RankSource, k: number): Promise<{ top: RankedCount[]; stats: MergeStats }> {
  const R = src.regions;
  const naive = await src.sizes();
  // Phase 1 alone reads up to R·K entries: small leaderboards are cheaper read whole.
  if (naive <= 2 * R * k) return fullMerge(src, k, naive);
  const known = new Map<string, (number | undefined)[]>();
  const note = (r: number, e: RankedCount) => {
    let row = known.get(e.post_id);
    if (!row) known.set(e.post_id, (row = new Array<number | undefined>(R)));
    row[r] = e.view_count;
  };
  const partial = (row: (number | undefined)[]) => row.reduce<number>((a, v) => a + (v ?? 0), 0);
  const kth = () => {
    const sums = [...known.values()].map(partial).sort((a, b) => b - a);
    return sums.length >= k ? sums[k - 1] : 0;
  };

  const first = await src.top(k);
  first.forEach((list, r) => list.forEach((e) => note(r, e)));
  const tau1 = kth();
  const min = tau1 / R;
  // A flat tail (small top counts, many ties) puts most entries at or above τ/R: phase 2
  // would read them all into candidates and phase 3 ask the other regions for each. When
  // phase 2 alone would read more than half of what is left, read the leaderboards whole.
  const read1 = first.reduce((a, l) => a + l.length, 0);
  if ((await src.countAtLeast(min)) - read1 > (naive - read1) / 2) {
    const full = await fullMerge(src, k, naive);
    return { top: full.top, stats: { ...full.stats, moved: read1 + naive } };
  }

  const second = await src.atLeast(k, min);
  second.forEach((list, r) => list.forEach((e) => note(r, e)));
  const tau2 = kth();
  // A region that did not list a post holds it below `min` (everything ≥ min was read).
  for (const [post, row] of known) {
    let upper = 0;
    for (let r = 0; r < R; r++) upper += row[r] ?? min;
    if (upper < tau2) known.delete(post);
  }

  const ask: string[][] = Array.from({ length: R }, () => []);
  for (const [post, row] of known) for (let r = 0; r < R; r++) if (row[r] === undefined) ask[r].push(post);
  const entries = (lists: unknown[][]) => lists.reduce((a, l) => a + l.length, 0);
  const phases: [number, number, number] = [entries(first), entries(second), entries(ask)];
  // Phase 3 would read more than the rest of the leaderboards: read them whole instead.
  if (phases[2] > naive - phases[0] - phases[1]) {
    const full = await fullMerge(src, k, naive);
    return { top: full.top, stats: { ...full.stats, moved: phases[0] + phases[1] + naive } };
  }
  const third = await src.counts(ask);
  third.forEach((list, r) => list.forEach((c, i) => (known.get(ask[r][i])![r] = c ?? 0)));

  const top = [...known]
    .map(([post_id, row]) => ({ post_id, view_count: partial(row) }))
    .sort(byRank)
    .slice(0, k);
  return { top, stats: { plan: 'tput', moved: phases[0] + phases[1] + phases[2], naive, phases, candidates: known.size, threshold: tau1 } };
}
