import { expect } from 'chai';
import { tput, type RankSource } from '../../src/ranking/tput';
import { byRank, topOfSums, type RankedCount } from '../../src/ranking';
import { prng } from '../../src/load/generator';

/** Regional leaderboards in memory, read the way the Redis source reads them. */
function memory(boards: Map<string, number>[]): RankSource {
  const sorted = boards.map((b) => [...b].map(([post_id, view_count]) => ({ post_id, view_count })).sort(byRank));
  return {
    regions: boards.length,
    top: async (k) => sorted.map((l) => l.slice(0, k)),
    atLeast: async (k, min) => sorted.map((l) => l.slice(k).filter((e) => e.view_count >= min)),
    counts: async (ask) => ask.map((posts, r) => posts.map((p) => boards[r].get(p) ?? null)),
    sizes: async () => boards.reduce((a, b) => a + b.size, 0),
    countAtLeast: async (min) => sorted.reduce((a, l) => a + l.filter((e) => e.view_count >= min).length, 0),
    leaderboard: async (r) => sorted[r],
  };
}

function truth(boards: Map<string, number>[], k: number): RankedCount[] {
  const sums = new Map<string, number>();
  for (const b of boards) for (const [p, c] of b) sums.set(p, (sums.get(p) ?? 0) + c);
  return [...sums]
    .map(([post_id, view_count]) => ({ post_id, view_count }))
    .sort(byRank)
    .slice(0, k);
}

describe('global merge (TPUT)', () => {
  it('finds a post ranked K+1 in every region that is first globally, which a merge of regional top-Ks misses', async () => {
    const K = 3;
    const R = 4;
    // Region r: its own K posts with 10 each, then "hidden" with 9; globally hidden has 36.
    const boards = Array.from({ length: R }, (_, r) => {
      const m = new Map<string, number>();
      for (let i = 0; i < K; i++) m.set(`r${r}-p${i}`, 10);
      m.set('hidden', 9);
      for (let i = 0; i < 200; i++) m.set(`r${r}-tail${i}`, 1 + (i % 2)); // the long tail
      return m;
    });
    const naive = truth(
      boards.map(
        (b) =>
          new Map(
            [...b]
              .map(([p, c]) => ({ post_id: p, view_count: c }))
              .sort(byRank)
              .slice(0, K)
              .map((e) => [e.post_id, e.view_count]),
          ),
      ),
      K,
    );
    expect(naive.map((e) => e.post_id)).not.to.include('hidden');
    const { top, stats } = await tput(memory(boards), K);
    expect(top[0]).to.deep.equal({ post_id: 'hidden', view_count: 36 });
    expect(top).to.deep.equal(truth(boards, K));
    expect(stats.naive).to.equal(R * (K + 1 + 200));
    expect(stats.plan).to.equal('tput');
    // The top Ks; then "hidden" (≥ τ/R) from each region; then the other regions' counts of the
    // regional leaders (their upper bounds reach τ); the long tail is never read.
    expect(stats.phases).to.deep.equal([R * K, R, R * K * (R - 1)]);
  });

  it('equals the exact global Top-K on random regional leaderboards (skewed, ties, missing posts, fewer than K posts), by either plan', async () => {
    const rnd = prng(7);
    const plans = new Set<string>();
    for (let trial = 0; trial < 300; trial++) {
      const R = 1 + Math.floor(rnd() * 8);
      const posts = 1 + Math.floor(rnd() * 300);
      const K = 1 + Math.floor(rnd() * 40);
      const boards = Array.from({ length: R }, () => {
        const m = new Map<string, number>();
        for (let p = 0; p < posts; p++) {
          if (rnd() < 0.3) continue;
          const c = Math.floor(1 + 200 / (1 + p * rnd()) + (rnd() < 0.5 ? 0 : rnd() * 10));
          m.set(`p${p}`, c);
        }
        return m;
      });
      const { top, stats } = await tput(memory(boards), K);
      expect(top, `trial ${trial} (R=${R}, K=${K}, posts=${posts})`).to.deep.equal(truth(boards, K));
      if (stats.plan === 'tput') expect(stats.moved).to.equal(stats.phases[0] + stats.phases[1] + stats.phases[2]);
      expect(stats.moved).to.be.at.most(2 * stats.naive); // never much worse than reading everything
      plans.add(stats.plan);
    }
    expect([...plans].sort()).to.deep.equal(['full', 'tput']);
  });

  it('reads a flat tail (a million-post burst: every count 1) whole, one region at a time, never through phase 2', async () => {
    const R = 8;
    const boards = Array.from({ length: R }, (_, r) => {
      const m = new Map<string, number>();
      for (let i = 0; i < 20_000; i++) m.set(`r${r}-p${i}`, 1);
      if (r < 3) m.set('shared', 1); // in three regions: 3 in all
      return m;
    });
    const src = memory(boards);
    const calls: string[] = [];
    const spy: RankSource = {
      ...src,
      atLeast: (k, min) => (calls.push('atLeast'), src.atLeast(k, min)),
      counts: (ask) => (calls.push('counts'), src.counts(ask)),
      leaderboard: (r) => (calls.push(`leaderboard ${r}`), src.leaderboard(r)),
    };
    const { top, stats } = await tput(spy, 10);
    expect(top).to.deep.equal(truth(boards, 10));
    expect(top[0]).to.deep.equal({ post_id: 'shared', view_count: 3 });
    expect(stats.plan).to.equal('full');
    // Phase 2 would have held every entry as a candidate with a row per region.
    expect(calls).to.deep.equal(Array.from({ length: R }, (_, r) => `leaderboard ${r}`));
  });

  it('selects the top k of many sums (ties by post_id, k beyond the size) like a full sort', () => {
    const rnd = prng(11);
    for (let trial = 0; trial < 40; trial++) {
      const sums = new Map<string, number>();
      const n = Math.floor(rnd() * 6000);
      for (let i = 0; i < n; i++) sums.set(`p${Math.floor(rnd() * 1e6)}`, 1 + Math.floor(rnd() * 20));
      const k = 1 + Math.floor(rnd() * 1500);
      const sorted = [...sums].map(([post_id, view_count]) => ({ post_id, view_count })).sort(byRank);
      expect(topOfSums(sums, k), `trial ${trial} (n=${n}, k=${k})`).to.deep.equal(sorted.slice(0, k));
    }
    expect(topOfSums(new Map([['a', 1]]), 0)).to.deep.equal([]);
  });
});
