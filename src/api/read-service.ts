/**
 * The API's reads: which Redis key answers a query, whether Redis's answer is the live
 * truth, and the fallbacks. An answer always says what it is:
 *
 * - `live`: from Redis, caught up;
 * - `recovering`: from Redis after a rebuild from the record, while the replay of what came
 *   after the record's checkpoints is still running (counts may be behind);
 * - `partial`: a trailing timeframe reaching back before the point Redis was rebuilt from
 *   (its panes are not in the record: events before `complete_from` are missing);
 * - `record`: from Cassandra's checkpoints, as of `as_of` (Redis lost its state or cannot
 *   answer); never an empty list presented as the live truth.
 */
import type { Redis } from 'ioredis';
import type { SessionSpec, SlidingSpec, WindowSpec, TopKMode } from '../config';
import { trailingPaneMs } from '../config';
import { withTimeout } from '../health';
import { parseRecovery, readRecovery, type Recovery } from '../store/positions';
import {
  ALL_TIME,
  EPOCH_KEY,
  REGIONS_KEY,
  globalMetaKey,
  globalTopKey,
  recoveryKey,
  regionBoundedKey,
  regionMetaKey,
  regionTopKey,
  regionTrailingKey,
  regionTrailingStateKey,
  regionWindowKey,
} from '../keys';
import { fromWithScores, sumTop, type RankedCount } from '../ranking';
import type { RegionRecord } from '../store/record';
import type { PostMeta, PostMetaStore } from '../store/posts';
import { SharedCache } from './cache';
import { rollPlan, rolledWindow, type RollPlan } from '../store/window-roll';
import { windowTopK } from '../store/window-sources';
import { HttpError } from './errors';
import { addressableSpecs, type AddressableSpec } from './params';

/** `region=global`: the merged Top-K of every region. */
export const GLOBAL = 'global';
export const VARIANTS = ['exact', 'bounded'] as const;
export type Variant = (typeof VARIANTS)[number];

export type AnswerStatus = 'live' | 'recovering' | 'partial' | 'record';

/** What an answer is: where it came from, how current it is. */
export interface Provenance {
  source: 'redis' | 'record';
  status: AnswerStatus;
  /** `record`: the checkpoint time the counts are from. */
  as_of?: Date | string | null;
  /** `recovering`: when Redis was rebuilt, the record's age, the partitions still replaying. */
  recovery?: { rebuilt_at: number; record_as_of: number | null; partitions_replaying: number };
  /** `partial`: event time from which the trailing timeframe is complete. */
  complete_from?: number;
  /** Why the answer is not live (record answers). */
  note?: string;
}

export interface TopPostsAnswer extends Provenance {
  region: string;
  timeframe?: string;
  variant?: Variant;
  window?: string;
  window_start?: number;
  window_end?: number | null;
  range?: { from: number; to: number; pane_ms: number } | null;
  merge?: { as_of: number; regions: number; plan: string; entries_moved: number; entries_naive: number };
  metadata: 'ok' | 'unavailable' | 'none';
  top_posts: { post_id: string; author: string | null; view_count: number; content: string | null }[];
}

export interface RankAnswer extends Provenance {
  region: string;
  timeframe: string;
  post_id: string;
  rank: number;
  view_count: number;
  neighbours: { rank: number; post_id: string; view_count: number }[];
}

export interface ReadDeps {
  /** The API's own Redis client: fails fast when Redis is unreachable (no offline queue). */
  redis: Redis;
  /** The topic the hot path consumes (its replay state after a rebuild). */
  topic: string;
  record?: RegionRecord;
  /** Rebuilds Redis from the record if it lost its state (shared by concurrent callers). */
  rebuild?: () => Promise<string>;
  readWindow?: (region: string, id: string) => Promise<RankedCount[]>;
  posts?: PostMetaStore;
  windows: readonly WindowSpec[];
  sliding?: readonly SlidingSpec[];
  sessions?: readonly SessionSpec[];
  mode: TopKMode;
  log: (s: string) => void;
}

type Reply<T> = [Error | null, T];

export class ReadService {
  readonly specs: AddressableSpec[];
  /** The specs rolled up from the finest one: their windows are read as a sum (store/window-sources.ts). */
  private readonly roll: RollPlan | null;
  private readonly records: SharedCache<Awaited<ReturnType<RegionRecord['readKey']>>>;

  constructor(private readonly deps: ReadDeps) {
    this.specs = addressableSpecs(deps.windows, deps.sliding ?? [], deps.sessions ?? []);
    this.roll = rollPlan(deps.windows, deps.mode);
    // Record reads are shared by concurrent requests and reused for a second.
    this.records = new SharedCache(1000);
  }

  /** Timeframes of a region: all-time, and each tumbling size as a trailing timeframe (exact mode). */
  get timeframes(): string[] {
    return this.deps.mode === 'bounded' ? [ALL_TIME] : [ALL_TIME, ...this.deps.windows.map((w) => w.name)];
  }

  /** The top `k` of one region over all time or a trailing timeframe. */
  async regionTop(region: string, timeframe: string, variant: Variant, k: number): Promise<TopPostsAnswer> {
    const bounded = this.deps.mode === 'bounded';
    // Bounded mode keeps its Space-Saving leaderboard in the all-time key (there is no exact one).
    const key =
      timeframe !== ALL_TIME ? regionTrailingKey(region, timeframe) : variant === 'bounded' && !bounded ? regionBoundedKey(region) : regionTopKey(region);
    let reply: Reply<unknown>[];
    try {
      reply = (await this.deps.redis
        .multi()
        .get(EPOCH_KEY)
        .hmget(regionMetaKey(region), 'epoch', 'restored_as_of')
        .zrevrange(key, 0, k - 1, 'WITHSCORES')
        .hget(regionTrailingStateKey(region), timeframe)
        .hgetall(recoveryKey(this.deps.topic))
        .exec())!;
    } catch (e) {
      return this.fromRecord(region, timeframe, variant, k, `Redis cannot answer (${(e as Error).message})`);
    }
    const failed = reply.find(([e]) => e);
    if (failed) return this.fromRecord(region, timeframe, variant, k, `Redis cannot answer (${failed[0]!.message})`);
    const [[, epoch], [, meta], [, flat], [, trailing], [, recoveryHash]] = reply as [
      Reply<string | null>,
      Reply<(string | null)[]>,
      Reply<string[]>,
      Reply<string | null>,
      Reply<Record<string, string>>,
    ];
    if (epoch === null) {
      this.startRebuild();
      return this.fromRecord(region, timeframe, variant, k, 'Redis lost its state; it is being rebuilt from the record');
    }
    // Under a live epoch the record holds nothing Redis lacks (a rebuild restores every
    // recorded region before it publishes the epoch): an unknown region costs no record read.
    const recovery = parseRecovery(recoveryHash);
    if (meta[0] !== epoch) {
      // While a replay runs, a region the record did not hold may not have been seen again yet.
      if (recovery) throw new HttpError(503, `region "${region}" is not in Redis yet: it is being rebuilt and replayed`, undefined, { 'retry-after': '2' });
      throw new HttpError(404, `unknown region "${region}": no events counted for it`, 'region');
    }
    let prov: Provenance = this.redisProvenance(recovery);
    let range: TopPostsAnswer['range'];
    if (timeframe !== ALL_TIME) {
      const spec = this.deps.windows.find((w) => w.name === timeframe)!;
      range = rangeOf(trailing, spec);
      const completeFrom = meta[1] === null ? null : Number(meta[1]);
      if (completeFrom !== null && (range === null || range.from < completeFrom)) prov = { ...prov, status: 'partial', complete_from: completeFrom };
    }
    return { region, timeframe, variant, ...prov, ...(range !== undefined ? { range } : {}), ...(await this.joinMeta(fromWithScores(flat))) };
  }

  /** The exact global merge of a timeframe. */
  async globalTop(timeframe: string, variant: Variant, k: number): Promise<TopPostsAnswer> {
    const family = timeframe === ALL_TIME ? ALL_TIME : `trailing:${timeframe}`;
    const [epoch, meta, flat] = (await this.redisRead((m) =>
      m
        .get(EPOCH_KEY)
        .get(globalMetaKey(family))
        .zrevrange(globalTopKey(family), 0, k - 1, 'WITHSCORES'),
    )) as [string | null, string | null, string[]];
    if (epoch === null) {
      this.startRebuild();
      throw new HttpError(503, 'Redis lost its state; the global merge is answered again once it is rebuilt', undefined, { 'retry-after': '2' });
    }
    if (meta === null)
      throw new HttpError(404, `no global merge of timeframe ${timeframe} yet (no events counted, or the merge workflow is not running)`, 'timeframe');
    const m = JSON.parse(meta) as { at: number; regions: number; plan: string; moved: number; naive: number };
    return {
      region: GLOBAL,
      timeframe,
      variant,
      ...this.redisProvenance(await this.recovery()),
      merge: { as_of: m.at, regions: m.regions, plan: m.plan, entries_moved: m.moved, entries_naive: m.naive },
      ...(await this.joinMeta(fromWithScores(flat))),
    };
  }

  /** One window's top k: its live key, or after its TTL the persisted snapshot (summed over regions for global). */
  async windowTop(region: string, w: { id: string; spec: AddressableSpec; start: number }, k: number): Promise<TopPostsAnswer> {
    const end0 = w.spec.sizeMs === undefined ? null : w.start + w.spec.sizeMs;
    if (region !== GLOBAL && rolledWindow(this.roll, w.id)) {
      // A rolled spec's window: its key plus its children not yet rolled in (exact top k of the sum).
      const [epoch] = (await this.redisRead((m) => m.get(EPOCH_KEY))) as [string | null];
      if (epoch !== null) {
        let sum: Awaited<ReturnType<typeof windowTopK>>;
        try {
          sum = await windowTopK(this.deps.redis, region, w.id, this.roll, k);
        } catch (e) {
          throw unavailable(e);
        }
        if (sum) {
          const head = { region, window: w.id, window_start: w.start, window_end: end0 };
          return { ...head, ...this.redisProvenance(await this.recovery()), ...(await this.joinMeta(sum.top)) };
        }
      }
    }
    const key = region === GLOBAL ? globalTopKey(w.id) : regionWindowKey(region, w.id);
    const [epoch, exists, flat] = (await this.redisRead((m) =>
      m
        .get(EPOCH_KEY)
        .exists(key)
        .zrevrange(key, 0, k - 1, 'WITHSCORES'),
    )) as [string | null, number, string[]];
    const end = w.spec.sizeMs === undefined ? null : w.start + w.spec.sizeMs; // a session's end is in its workflow
    const head = { region, window: w.id, window_start: w.start, window_end: end };
    if (epoch !== null && exists) return { ...head, ...this.redisProvenance(await this.recovery()), ...(await this.joinMeta(fromWithScores(flat))) };
    if (epoch === null) this.startRebuild();
    const read = this.deps.readWindow;
    if (!read) throw new HttpError(404, `window ${w.id} has no live key in region "${region}" and no snapshot store is configured`, 'window');
    const regions = region === GLOBAL ? await this.redisRead((m) => m.smembers(REGIONS_KEY)).then(([r]) => r as string[]) : [region];
    const snapshots = await withTimeout(Promise.all(regions.map((r) => read(r, w.id))), 5000, 'the window snapshots');
    const { top, posts } = sumTop(snapshots, k);
    if (posts === 0)
      throw new HttpError(404, `window ${w.id} of region "${region}" has no live key and no persisted snapshot (no events, or not closed yet)`, 'window');
    return { ...head, source: 'record', status: 'record', ...(await this.joinMeta(top)) };
  }

  /** A post's rank (1-based), count and its neighbours by rank. */
  async rank(region: string, postId: string, timeframe: string, around: number): Promise<RankAnswer> {
    const family = timeframe === ALL_TIME ? ALL_TIME : `trailing:${timeframe}`;
    const key = region === GLOBAL ? globalTopKey(family) : timeframe === ALL_TIME ? regionTopKey(region) : regionTrailingKey(region, timeframe);
    let reply: Reply<unknown>[];
    try {
      reply = (await this.deps.redis.multi().get(EPOCH_KEY).hget(regionMetaKey(region), 'epoch').zrevrank(key, postId).zscore(key, postId).exec())!;
    } catch (e) {
      if (region === GLOBAL || timeframe !== ALL_TIME) throw unavailable(e);
      return this.rankFromRecord(region, postId, around, `Redis cannot answer (${(e as Error).message})`);
    }
    const [[, epoch], [, metaEpoch], [, rank], [, score]] = reply as [Reply<string | null>, Reply<string | null>, Reply<number | null>, Reply<string | null>];
    if (epoch === null) {
      this.startRebuild();
      if (region === GLOBAL || timeframe !== ALL_TIME)
        throw new HttpError(503, 'Redis lost its state; it is being rebuilt from the record', undefined, { 'retry-after': '2' });
      return this.rankFromRecord(region, postId, around, 'Redis lost its state; it is being rebuilt from the record');
    }
    if (region !== GLOBAL && metaEpoch !== epoch) {
      if (await this.recovery())
        throw new HttpError(503, `region "${region}" is not in Redis yet: it is being rebuilt and replayed`, undefined, { 'retry-after': '2' });
      throw new HttpError(404, `unknown region "${region}": no events counted for it`, 'region');
    }
    if (rank === null || score === null) {
      throw new HttpError(
        404,
        region === GLOBAL
          ? `post "${postId}" is not in the global top of timeframe ${timeframe}`
          : `post "${postId}" has no counted views in region "${region}" (timeframe ${timeframe})`,
        'post_id',
      );
    }
    const from = Math.max(0, rank - around);
    const [flat] = (await this.redisRead((m) => m.zrevrange(key, from, rank + around, 'WITHSCORES'))) as [string[]];
    return {
      region,
      timeframe,
      ...this.redisProvenance(await this.recovery()),
      post_id: postId,
      rank: rank + 1,
      view_count: Number(score),
      neighbours: fromWithScores(flat).map((p, i) => ({ rank: from + i + 1, ...p })),
    };
  }

  /** The replay in progress after a rebuild, if any. */
  async recovery(): Promise<Recovery | null> {
    try {
      return await readRecovery(this.deps.redis, this.deps.topic);
    } catch (e) {
      throw unavailable(e);
    }
  }

  private redisProvenance(recovery: Recovery | null): Provenance {
    if (!recovery) return { source: 'redis', status: 'live' };
    return {
      source: 'redis',
      status: 'recovering',
      recovery: { rebuilt_at: recovery.at, record_as_of: recovery.as_of, partitions_replaying: recovery.partitions.length },
    };
  }

  /** Redis is not the live truth for this region right now: the record's checkpoints, saying so. */
  private async fromRecord(region: string, timeframe: string, variant: Variant, k: number, why: string): Promise<TopPostsAnswer> {
    if (timeframe !== ALL_TIME || variant === 'bounded') {
      throw new HttpError(503, `${why}; timeframe ${timeframe} (variant ${variant}) is answered again once Redis caught up`, undefined, { 'retry-after': '2' });
    }
    const rec = await this.recorded(region, why);
    return {
      region,
      timeframe,
      variant,
      source: 'record',
      status: 'record',
      as_of: rec.checkpointAt,
      note: why,
      ...(await this.joinMeta(rec.top.slice(0, k))),
    };
  }

  private async rankFromRecord(region: string, postId: string, around: number, why: string): Promise<RankAnswer> {
    const rec = await this.recorded(region, why);
    const i = rec.top.findIndex((p) => p.post_id === postId);
    if (i < 0) throw new HttpError(404, `post "${postId}" has no counted views in region "${region}"`, 'post_id');
    const from = Math.max(0, i - around);
    return {
      region,
      timeframe: ALL_TIME,
      source: 'record',
      status: 'record',
      as_of: rec.checkpointAt,
      note: why,
      post_id: postId,
      rank: i + 1,
      view_count: rec.top[i].view_count,
      neighbours: rec.top.slice(from, i + around + 1).map((p, j) => ({ rank: from + j + 1, ...p })),
    };
  }

  private async recorded(region: string, why: string) {
    const record = this.deps.record;
    if (!record) throw new HttpError(503, `${why}, and this process has no record to answer from`, undefined, { 'retry-after': '2' });
    let rec;
    try {
      rec = await withTimeout(
        this.records.get(region, () => record.readKey(region, ALL_TIME)),
        5000,
        'the Cassandra record',
      );
    } catch (e) {
      throw new HttpError(503, `${why}, and the record cannot answer either (${(e as Error).message})`, undefined, { 'retry-after': '2' });
    }
    // Redis cannot say, and the record has no checkpoint of it: unknown now, not "never counted".
    if (!rec) throw new HttpError(503, `${why}, and the record holds no checkpoint of region "${region}"`, undefined, { 'retry-after': '2' });
    return rec;
  }

  private startRebuild(): void {
    this.deps.rebuild?.().catch((e: Error) => this.deps.log(`rebuild started by the API failed (the ingest retries it): ${e.message}`));
  }

  /** A MULTI of reads; a failure (Redis unreachable) is a 503. */
  private async redisRead(build: (m: ReturnType<Redis['multi']>) => ReturnType<Redis['multi']>): Promise<unknown[]> {
    try {
      const res = (await build(this.deps.redis.multi()).exec())!;
      const failed = res.find(([e]) => e);
      if (failed) throw failed[0];
      return res.map(([, v]) => v);
    } catch (e) {
      throw unavailable(e);
    }
  }

  /** Author and content joined in (null where unknown; all null while Cassandra cannot answer). */
  private async joinMeta(ranked: RankedCount[]): Promise<Pick<TopPostsAnswer, 'metadata' | 'top_posts'>> {
    let meta: Map<string, PostMeta | null> | undefined;
    let metadata: TopPostsAnswer['metadata'] = 'none';
    if (this.deps.posts && ranked.length) {
      try {
        meta = await withTimeout(this.deps.posts.get(ranked.map((p) => p.post_id)), 1000, 'post metadata');
        metadata = 'ok';
      } catch {
        metadata = 'unavailable';
      }
    }
    const top_posts = ranked.map((p) => {
      const m = meta?.get(p.post_id);
      return { post_id: p.post_id, author: m?.author ?? null, view_count: p.view_count, content: m?.content ?? null };
    });
    return { metadata, top_posts };
  }
}

function unavailable(e: unknown): HttpError {
  return new HttpError(503, `Redis cannot answer: ${(e as Error).message}`, undefined, { 'retry-after': '1' });
}

/** The trailing range a region's key holds: [from, to) of event time. */
function rangeOf(state: string | null, spec: WindowSpec): { from: number; to: number; pane_ms: number } | null {
  if (!state) return null;
  const [lo, hi] = state.split(':').map(Number);
  const pane = trailingPaneMs(spec.sizeMs);
  return { from: lo, to: hi + pane, pane_ms: pane };
}
