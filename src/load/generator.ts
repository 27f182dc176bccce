/**
 * The deterministic load generator: for a seed, the same events (ids, regions, posts) in
 * the same order. Posts are Zipf-distributed per region; each region's popularity order
 * is rotated, so regions have different (overlapping) heavy hitters.
 */
import type { ViewEvent } from '../events';

export interface LoadOptions {
  events: number;
  regions: number;
  posts: number;
  /** Zipf exponent s: P(rank r) ∝ 1 / r^s. */
  zipf: number;
  seed: number;
  /** Prefix of region and post ids (tests use a unique one); default: none. */
  prefix?: string;
}

const NAMES = ['NA', 'EU', 'APAC', 'LATAM', 'MEA', 'SA', 'OC', 'AF'];

export function regionNames(n: number, prefix = ''): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${n <= NAMES.length ? NAMES[i] : `R${i}`}`);
}

export const postId = (i: number, prefix = ''): string => `${prefix}post-${i}`;

const WORDS = ['sunset', 'remix', 'live', 'tour', 'cover', 'acoustic', 'night', 'city', 'dance', 'summer', 'rain', 'road', 'echo', 'gold', 'river', 'neon'];
const ARTISTS = 500;

/** Deterministic metadata of post `i` (what the load generator writes to the posts table). */
export function postMetadata(i: number, prefix = '', seed = 0) {
  const rand = prng(i * 7919 + seed);
  const title = Array.from({ length: 3 }, () => WORDS[Math.floor(rand() * WORDS.length)]).join(' ');
  return {
    post_id: postId(i, prefix),
    author: `Artist${1 + Math.floor(rand() * ARTISTS)}`,
    content: `Post ${i}: ${title}`,
    created_at: new Date(Date.UTC(2026, 0, 1) + Math.floor(rand() * 300) * 86_400_000),
    metadata: { kind: rand() < 0.5 ? 'song' : 'video' },
  };
}

/** mulberry32: a small, fast, well-distributed 32-bit PRNG. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Inverse-CDF sampler of ranks 0..n-1 with P(r) ∝ 1/(r+1)^s. */
export function zipfSampler(n: number, s: number, rand: () => number): () => number {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let r = 0; r < n; r++) cdf[r] = sum += 1 / Math.pow(r + 1, s);
  return () => {
    const u = rand() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

/** The events for `opts`, stamped with `now()` as event time. */
export function* generateEvents(opts: LoadOptions, now: () => number = Date.now): Generator<ViewEvent> {
  const rand = prng(opts.seed);
  const rank = zipfSampler(opts.posts, opts.zipf, rand);
  const regions = regionNames(opts.regions, opts.prefix);
  const stride = Math.max(1, Math.floor(opts.posts / opts.regions));
  for (let i = 0; i < opts.events; i++) {
    const r = Math.floor(rand() * regions.length);
    const post = (rank() + r * stride) % opts.posts;
    yield { event_id: `${opts.prefix ?? ''}${opts.seed}-${i}`, post_id: postId(post, opts.prefix), region_id: regions[r], timestamp: now() };
  }
}

/** Exact counts per region and post: the ground truth of a generated stream. */
export type Truth = Record<string, Record<string, number>>;

export function addToTruth(truth: Truth, e: ViewEvent): void {
  const m = (truth[e.region_id] ??= {});
  m[e.post_id] = (m[e.post_id] ?? 0) + 1;
}

/** Adds one truth into another (several streams into one topic). */
export function mergeTruth(into: Truth, add: Truth): void {
  for (const [r, posts] of Object.entries(add)) {
    const m = (into[r] ??= {});
    for (const [p, n] of Object.entries(posts)) m[p] = (m[p] ?? 0) + n;
  }
}

/** The top k of a truth map in the documented rank order: count desc, then post_id desc. */
export function truthTopK(counts: Record<string, number>, k: number): { post_id: string; view_count: number }[] {
  return Object.entries(counts)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? 1 : a[0] > b[0] ? -1 : 0))
    .slice(0, k)
    .map(([post_id, view_count]) => ({ post_id, view_count }));
}
