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

/** The top `k` of the summed counts of several lists (whole leaderboards or snapshots). */
export function sumTop(lists: Iterable<RankedCount[]>, k: number): { top: RankedCount[]; posts: number } {
  const sums = new Map<string, number>();
  for (const list of lists) for (const e of list) sums.set(e.post_id, (sums.get(e.post_id) ?? 0) + e.view_count);
  return {
    top: [...sums]
      .map(([post_id, view_count]) => ({ post_id, view_count }))
      .sort(byRank)
      .slice(0, k),
    posts: sums.size,
  };
}
