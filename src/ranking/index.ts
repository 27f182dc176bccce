/** Ranked counts and the documented rank order, shared by the API, the merge and the record. */

export interface RankedCount {
  post_id: string;
  view_count: number;
}

/** Count desc, then post_id desc (byte order): Redis's own order for equal scores in ZREVRANGE. */
export function byRank(a: RankedCount, b: RankedCount): number {
  return b.view_count - a.view_count || (a.post_id < b.post_id ? 1 : a.post_id > b.post_id ? -1 : 0);
}

/** A `WITHSCORES` reply ([member, score, ...]) as ranked counts, in the reply's order. */
export function fromWithScores(flat: string[]): RankedCount[] {
  const out: RankedCount[] = [];
  for (let i = 0; i < flat.length; i += 2) out.push({ post_id: flat[i], view_count: Number(flat[i + 1]) });
  return out;
}

/** Adds a list's counts into post -> sum. */
export function addCounts(sums: Map<string, number>, list: Iterable<RankedCount>): void {
  for (const e of list) sums.set(e.post_id, (sums.get(e.post_id) ?? 0) + e.view_count);
}

/**
 * The top `k` of post -> count, in rank order, without materializing or sorting them all
 * (a million posts would be a million objects): candidates are cut back to k whenever
 * they reach 2k + 1024, and anything below the k-th kept count is skipped.
 */
export function topOfSums(sums: Map<string, number>, k: number): RankedCount[] {
  if (k <= 0) return [];
  const best: RankedCount[] = [];
  let floor = -Infinity;
  for (const [post_id, view_count] of sums) {
    if (view_count < floor) continue;
    best.push({ post_id, view_count });
    if (best.length >= 2 * k + 1024) {
      best.sort(byRank);
      best.length = k;
      floor = best[k - 1].view_count;
    }
  }
  return best.sort(byRank).slice(0, k);
}

/** The top `k` of the summed counts of several lists (whole leaderboards or snapshots). */
export function sumTop(lists: Iterable<RankedCount[]>, k: number): { top: RankedCount[]; posts: number } {
  const sums = new Map<string, number>();
  for (const list of lists) addCounts(sums, list);
  return { top: topOfSums(sums, k), posts: sums.size };
}
