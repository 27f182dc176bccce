/**
 * The Express API. Queries read Redis; `POST /events` only validates and produces to
 * Kafka (counting is the hot path's job). Every bad parameter is a 400 naming it; an
 * unknown region is a 404.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Redis } from 'ioredis';
import type { Producer } from 'kafkajs';
import {
  ALL_TIME,
  EPOCH_KEY,
  REGIONS_KEY,
  globalMetaKey,
  globalTopKey,
  regionBoundedKey,
  regionTopKey,
  regionTrailingKey,
  regionTrailingStateKey,
  regionWindowKey,
} from '../keys';
import { fromWithScores as pairs, sumTop, type RankedCount, type RegionRecord } from '../activities/record';
import { trailingPaneMs, type SessionSpec, type SlidingSpec, type WindowSpec } from '../config';
import { validateObject } from '../events';
import { withTimeout, type Probe } from '../health';
import type { PostMeta, PostMetaStore } from '../store/posts';

export const VARIANTS = ['exact', 'bounded'] as const;
/** `region=global`: the merged Top-K of every region. */
export const GLOBAL = 'global';

export interface ApiDeps {
  redis: Redis;
  /** Probes every dependency (GET /healthz). */
  probe: () => Promise<Probe[]>;
  /** Prometheus exposition of the metrics (GET /metrics). */
  metrics?: () => Promise<{ contentType: string; body: string }>;
  /** Produces accepted events (POST /events). */
  producer?: Producer;
  topic?: string;
  /** Post metadata joined into answers; without it author and content are null. */
  posts?: PostMetaStore;
  /** The Cassandra record: answers when Redis has lost a region's keys. */
  record?: RegionRecord;
  /** Rebuilds Redis from the record if it lost its state (shared by concurrent callers). */
  rebuild?: () => Promise<string>;
  /** Drops Redis state and rebuilds it from the record (POST /admin/rebuild). */
  forceRebuild?: () => Promise<{ epoch: string; dropped: number; restored: number }>;
  /** Bearer token of the /admin endpoints; undefined = they refuse. */
  adminToken?: string;
  /** Asks a window workflow to rebuild its Redis key from its persisted snapshot. */
  recomputeWindow?: (workflowId: string) => Promise<{ posts: number; events: number }>;
  /** A window's persisted snapshot (`<spec>:<start>`): answers for windows whose Redis key expired. */
  readWindow?: (region: string, id: string) => Promise<RankedCount[]>;
  /** The tumbling window specs: each name is a trailing timeframe, and windows are addressed by `<name>:<start>`. */
  windows: readonly WindowSpec[];
  /** Sliding window specs (`<size>@<slide>`): windows addressed by `<name>:<start>`, starts on the slide grid. */
  sliding?: readonly SlidingSpec[];
  /** Session window specs (`gap<duration>`): sessions addressed by `<name>:<start>`, starts on the bucket grid. */
  sessions?: readonly SessionSpec[];
  /** Entries of each global key (`region=global` answers k up to this). */
  globalK: number;
  /** `bounded` (HH_TOPK_MODE): leaderboards hold Space-Saving estimates of boundedK posts; no trailing timeframes. */
  mode?: 'exact' | 'bounded';
  /**
   * How long a GET /top-posts answer is reused (ms); concurrent identical requests always
   * share one read. 0 = no reuse beyond that.
   */
  cacheMs?: number;
  maxK: number;
  boundedK: number;
  maxPostEvents: number;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param?: string,
  ) {
    super(message);
  }
}

const bad = (param: string, message: string) => new HttpError(400, message, param);

function one(req: Request, name: string): string | undefined {
  const v = req.query[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw bad(name, `${name} must be given once, as a plain value`);
  return v;
}

function parseK(req: Request, max: number): number {
  const raw = one(req, 'k');
  if (raw === undefined) return 10;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > max) throw bad('k', `k must be an integer in 1..${max}, got "${raw.slice(0, 20)}"`);
  return Number(raw);
}

function parseEnum<T extends string>(req: Request, name: string, allowed: readonly T[], fallback: T): T {
  const raw = one(req, name);
  if (raw === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(raw)) throw bad(name, `${name} must be one of ${allowed.join(', ')}; got "${raw.slice(0, 40)}"`);
  return raw as T;
}

function parseRegion(req: Request): string {
  const raw = one(req, 'region');
  if (raw === undefined || raw.length === 0) throw bad('region', 'region is required (e.g. region=NA)');
  if (Buffer.byteLength(raw) > 128) throw bad('region', 'region must be at most 128 bytes');
  return raw;
}


/**
 * Serialized answers by request key: requests that arrive while one is being computed share
 * it (no added staleness), and a computed answer is reused for `ttlMs`. Failures are not kept.
 */
export class AnswerCache {
  private readonly entries = new Map<string, { at: number; body: Promise<string> }>();

  constructor(private readonly ttlMs: number) {}

  get(key: string, compute: () => Promise<string>): Promise<string> {
    const now = performance.now();
    const hit = this.entries.get(key);
    if (hit && (hit.at === Infinity || now - hit.at < this.ttlMs)) return hit.body;
    const entry = { at: Infinity, body: compute() };
    this.entries.set(key, entry);
    entry.body.then(
      () => (this.ttlMs > 0 ? (entry.at = performance.now()) : this.entries.delete(key)),
      () => this.entries.delete(key),
    );
    if (this.entries.size > 10_000) this.entries.delete(this.entries.keys().next().value as string);
    return entry.body;
  }
}

/** Record reads shared by concurrent requests and reused for a second. */
function recordReader(record: RegionRecord) {
  const cache = new Map<string, { at: number; value: Promise<{ top: RankedCount[]; checkpointAt: Date | null } | null> }>();
  return (region: string) => {
    const hit = cache.get(region);
    if (hit && Date.now() - hit.at < 1000) return hit.value;
    const value = record.readKey(region, ALL_TIME);
    value.catch(() => cache.delete(region));
    cache.set(region, { at: Date.now(), value });
    if (cache.size > 10_000) cache.delete(cache.keys().next().value as string);
    return value;
  };
}

export function createApp(deps: ApiDeps): express.Express {
  const app = express();
  const fromRecord = deps.record ? recordReader(deps.record) : undefined;

  /** Redis lost this region: answer from the record (and start the rebuild once), or 404. */
  const recorded = async (region: string) => {
    const rec = fromRecord ? await withTimeout(fromRecord(region), 5000, 'the Cassandra record') : null;
    if (!rec) throw new HttpError(404, `unknown region "${region}": no events counted for it`);
    if (deps.rebuild && (await deps.redis.exists(EPOCH_KEY)) === 0) void deps.rebuild().catch(() => undefined);
    return rec;
  };

  const joinMeta = async (ranked: RankedCount[]) => {
    let meta: Map<string, PostMeta | null> | undefined;
    let metadata = 'none';
    if (deps.posts && ranked.length) {
      try {
        meta = await withTimeout(deps.posts.get(ranked.map((p) => p.post_id)), 1000, 'post metadata');
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
  };
  app.disable('x-powered-by');
  app.disable('etag');

  app.get('/healthz', async (_req, res) => {
    const probes = await deps.probe();
    const ok = probes.every((p) => p.up);
    // Answers come from Redis: without it the API is down; without another server, degraded.
    const redisUp = probes.find((p) => p.service === 'redis')?.up ?? false;
    res.status(redisUp ? 200 : 503).json({
      status: ok ? 'ok' : redisUp ? 'degraded' : 'down',
      dependencies: Object.fromEntries(probes.map((p) => [p.service, { up: p.up, version: p.version ?? null, error: p.error ?? null, ms: p.ms }])),
    });
  });

  const bounded = deps.mode === 'bounded';
  const timeframes = bounded ? ['all'] : ['all', ...deps.windows.map((w) => w.name)];
  // In bounded mode every answer says its counts are estimates.
  const estimated = bounded ? { estimated: true } : {};
  const answers = new AnswerCache(deps.cacheMs ?? 0);
  const specOf = (name: string) => deps.windows.find((w) => w.name === name)!;

  /** Every addressable spec: its start grid, and its size (sessions have none: each its own length). */
  const allSpecs: { name: string; grid: number; sizeMs?: number }[] = [
    ...deps.windows.map((w) => ({ name: w.name, grid: w.sizeMs, sizeMs: w.sizeMs })),
    ...(deps.sliding ?? []).map((w) => ({ name: w.name, grid: w.slideMs, sizeMs: w.sizeMs })),
    ...(deps.sessions ?? []).map((w) => ({ name: w.name, grid: w.bucketMs })),
  ];
  /** `window=<spec>:<start ms>`: a configured spec and a start on its grid (the slide of a sliding spec, the bucket of a session spec). */
  const parseWindow = (raw: string) => {
    const m = /^([^:]+):(\d{1,15})$/.exec(raw);
    const spec = m ? allSpecs.find((w) => w.name === m[1]) : undefined;
    if (!m || !spec) throw bad('window', `window must be <spec>:<start ms> with spec one of ${allSpecs.map((w) => w.name).join(', ')}; got "${raw.slice(0, 60)}"`);
    if (Number(m[2]) % spec.grid !== 0) throw bad('window', `window start ${m[2]} is not on the ${spec.name} grid (a multiple of ${spec.grid} ms)`);
    return { id: raw, spec, start: Number(m[2]) };
  };

  /** The trailing range a region's key holds: [from, to) of event time. */
  const rangeOf = (state: string | null, spec: WindowSpec) => {
    if (!state) return null;
    const [lo, hi] = state.split(':').map(Number);
    return { from: lo, to: hi + trailingPaneMs(spec.sizeMs), pane_ms: trailingPaneMs(spec.sizeMs) };
  };

  /** One window's top k: its live key, or after its TTL the persisted snapshot (summed over regions for global). */
  const windowTop = async (region: string, id: string, k: number) => {
    const key = region === GLOBAL ? globalTopKey(id) : regionWindowKey(region, id);
    const [[, exists], [, flat]] = (await deps.redis.multi().exists(key).zrevrange(key, 0, k - 1, 'WITHSCORES').exec()) as [[null, number], [null, string[]]];
    if (exists) return { source: 'redis', top: pairs(flat) };
    if (!deps.readWindow) throw new HttpError(404, `window ${id} has no live key in region "${region}" and no snapshot store is configured`);
    const regions = region === GLOBAL ? await deps.redis.smembers(REGIONS_KEY) : [region];
    const readWindow = deps.readWindow;
    const snapshots = await withTimeout(Promise.all(regions.map((r) => readWindow(r, id))), 5000, 'the window snapshots');
    const { top, posts } = sumTop(snapshots, k);
    if (posts === 0) throw new HttpError(404, `window ${id} of region "${region}" has no live key and no persisted snapshot (no events, or not closed yet)`);
    return { source: 'record', top };
  };

  /**
   * Top-K of a region or of all regions (`region=global`), over `timeframe` (all, or a
   * trailing timeframe) or one `window`. Ties rank by count, then post_id descending (byte order).
   */
  app.get('/top-posts', async (req, res) => {
    const region = parseRegion(req);
    const rawWindow = one(req, 'window');
    if (rawWindow !== undefined && one(req, 'timeframe') !== undefined) throw bad('window', 'give either window or timeframe, not both');
    const timeframe = parseEnum(req, 'timeframe', timeframes, 'all');
    const variant = parseEnum(req, 'variant', VARIANTS, 'exact');
    if (variant === 'bounded' && (region === GLOBAL || timeframe !== 'all' || rawWindow !== undefined)) {
      throw bad('variant', "variant=bounded exists for a region's all-time timeframe only");
    }
    const maxK = region === GLOBAL ? Math.min(deps.maxK, deps.globalK) : variant === 'bounded' || bounded ? Math.min(deps.maxK, deps.boundedK) : deps.maxK;
    const k = parseK(req, maxK);
    const body = await answers.get([region, rawWindow ?? '', timeframe, variant, k].join('\u0000'), async () =>
      JSON.stringify({ ...(await topPosts(region, rawWindow, timeframe, variant, k)), ...estimated }),
    );
    res.type('application/json').send(body);
  });

  /** The answer of GET /top-posts for valid parameters. */
  const topPosts = async (region: string, rawWindow: string | undefined, timeframe: string, variant: string, k: number): Promise<object> => {
    if (rawWindow !== undefined) {
      const w = parseWindow(rawWindow);
      const { source, top } = await windowTop(region, w.id, k);
      const end = w.spec.sizeMs === undefined ? null : w.start + w.spec.sizeMs; // a session's end is in its workflow
      return { region, window: w.id, window_start: w.start, window_end: end, source, ...(await joinMeta(top)) };
    }

    if (region === GLOBAL) {
      const family = timeframe === 'all' ? 'all' : `trailing:${timeframe}`;
      const [[, meta], [, flat]] = (await deps.redis
        .multi()
        .get(globalMetaKey(family))
        .zrevrange(globalTopKey(family), 0, k - 1, 'WITHSCORES')
        .exec()) as [[null, string | null], [null, string[]]];
      if (meta === null) throw new HttpError(404, `no global merge of timeframe ${timeframe} yet (no events counted, or the merge workflow is not running)`);
      const m = JSON.parse(meta) as { at: number; regions: number; plan: string; moved: number; naive: number };
      return {
        region,
        timeframe,
        variant,
        source: 'redis',
        merge: { as_of: m.at, regions: m.regions, plan: m.plan, entries_moved: m.moved, entries_naive: m.naive },
        ...(await joinMeta(pairs(flat))),
      };
    }

    // Bounded mode keeps its Space-Saving leaderboard in the all-time key (there is no exact one).
    const key = timeframe !== 'all' ? regionTrailingKey(region, timeframe) : variant === 'bounded' && !bounded ? regionBoundedKey(region) : regionTopKey(region);
    const [[, known], [, flat], [, state]] = (await deps.redis
      .multi()
      .sismember(REGIONS_KEY, region)
      .zrevrange(key, 0, k - 1, 'WITHSCORES')
      .hget(regionTrailingStateKey(region), timeframe)
      .exec()) as [[null, number], [null, string[]], [null, string | null]];
    // author and content come from the metadata store, never invented: null where unknown,
    // and all null (with metadata: "unavailable") while Cassandra cannot answer.
    if (known) {
      const range = timeframe === 'all' ? undefined : { range: rangeOf(state, specOf(timeframe)) };
      return { region, timeframe, variant, source: 'redis', ...range, ...(await joinMeta(pairs(flat))) };
    }
    const rec = await recorded(region);
    if (timeframe !== 'all') throw new HttpError(503, `region "${region}" is being rebuilt from the record; timeframe ${timeframe} is answered again once the replay caught up`);
    return { region, timeframe, variant, source: 'record', as_of: rec.checkpointAt, ...(await joinMeta(rec.top.slice(0, k))) };
  };

  /** A post's rank (1-based), count and its neighbours by rank. */
  app.get('/posts/:post_id/rank', async (req, res) => {
    const postId = req.params.post_id as string;
    if (postId.length === 0 || Buffer.byteLength(postId) > 128) throw bad('post_id', 'post_id must be 1..128 bytes');
    const region = parseRegion(req);
    const timeframe = parseEnum(req, 'timeframe', timeframes, 'all');
    const nb = one(req, 'neighbours');
    if (nb !== undefined && (!/^\d+$/.test(nb) || Number(nb) > 50)) throw bad('neighbours', 'neighbours must be an integer in 0..50');
    const around = nb === undefined ? 2 : Number(nb);
    if (region !== GLOBAL && !(await deps.redis.sismember(REGIONS_KEY, region))) {
      if (timeframe !== 'all') throw new HttpError(404, `unknown region "${region}" (or being rebuilt): no live ${timeframe} timeframe`);
      const rec = await recorded(region);
      const i = rec.top.findIndex((p) => p.post_id === postId);
      if (i < 0) throw new HttpError(404, `post "${postId}" has no counted views in region "${region}"`);
      const from = Math.max(0, i - around);
      return res.json({
        region,
        timeframe,
        source: 'record',
        as_of: rec.checkpointAt,
        post_id: postId,
        rank: i + 1,
        view_count: rec.top[i].view_count,
        neighbours: rec.top.slice(from, i + around + 1).map((p, j) => ({ rank: from + j + 1, ...p })),
      });
    }
    const family = timeframe === 'all' ? 'all' : `trailing:${timeframe}`;
    const key = region === GLOBAL ? globalTopKey(family) : timeframe === 'all' ? regionTopKey(region) : regionTrailingKey(region, timeframe);
    const [[, rank], [, score]] = (await deps.redis.multi().zrevrank(key, postId).zscore(key, postId).exec()) as [
      [null, number | null],
      [null, string | null],
    ];
    if (rank === null || score === null) {
      throw new HttpError(404, region === GLOBAL ? `post "${postId}" is not in the global top ${deps.globalK} of timeframe ${timeframe}` : `post "${postId}" has no counted views in region "${region}" (timeframe ${timeframe})`);
    }
    const from = Math.max(0, rank - around);
    const window = pairs(await deps.redis.zrevrange(key, from, rank + around, 'WITHSCORES'));
    res.json({
      region,
      timeframe,
      source: 'redis',
      post_id: postId,
      rank: rank + 1,
      view_count: Number(score),
      neighbours: window.map((p, i) => ({ rank: from + i + 1, ...p })),
    });
  });

  app.post('/events', express.json({ limit: '20mb' }), async (req, res) => {
    if (!deps.producer || !deps.topic) throw new HttpError(503, 'ingest through the API is not enabled on this process');
    const body: unknown = req.body;
    if (!Array.isArray(body)) throw bad('body', 'body must be a JSON array of events');
    if (body.length === 0) throw bad('body', 'body must contain at least one event');
    if (body.length > deps.maxPostEvents) throw bad('body', `at most ${deps.maxPostEvents} events per request`);
    const rejected: { index: number; reason: string }[] = [];
    const messages = [];
    for (let i = 0; i < body.length; i++) {
      const v = validateObject(body[i]);
      if (!v.ok) rejected.push({ index: i, reason: v.reason });
      else messages.push({ key: v.event.region_id, value: JSON.stringify(v.event) });
    }
    if (messages.length) await deps.producer.send({ topic: deps.topic, acks: -1, messages });
    res.status(rejected.length ? 400 : 202).json({ accepted: messages.length, rejected });
  });

  const admin = (req: Request) => {
    if (!deps.adminToken) throw new HttpError(403, 'admin endpoints are disabled: set HH_ADMIN_TOKEN');
    if (req.get('authorization') !== `Bearer ${deps.adminToken}`) throw new HttpError(401, 'admin endpoints need "Authorization: Bearer <HH_ADMIN_TOKEN>"');
  };

  /** Recompute one window (id `window:<region>:<spec>:<start ms>`) from its persisted snapshot. */
  app.post('/admin/windows/:window_id/recompute', async (req, res) => {
    admin(req);
    const id = req.params.window_id as string;
    if (!/^window:.+:[^:]+:\d+$/.test(id)) throw bad('window_id', 'window_id must be a window workflow id: window:<region>:<spec>:<start ms>');
    if (!deps.recomputeWindow) throw new HttpError(503, 'recompute is not available on this process');
    try {
      res.json({ window_id: id, ...(await deps.recomputeWindow(id)) });
    } catch (e) {
      const name = (e as Error).name;
      if (name === 'WorkflowNotFoundError') throw new HttpError(404, `no running window workflow ${id} (unknown, or expired)`);
      throw e;
    }
  });

  /** Rebuild Redis from the record: drop every region's keys and the epoch, then restore. */
  app.post('/admin/rebuild', async (req, res) => {
    admin(req);
    if (!deps.forceRebuild) throw new HttpError(503, 'rebuild is not available on this process');
    const t0 = Date.now();
    res.json({ ...(await deps.forceRebuild()), ms: Date.now() - t0 });
  });

  app.get('/metrics', async (_req, res) => {
    if (!deps.metrics) throw new HttpError(404, 'metrics are not enabled on this process');
    const m = await deps.metrics();
    res.type(m.contentType).send(m.body);
  });

  app.use((_req, _res, next) => next(new HttpError(404, 'no such endpoint')));

  app.use((err: Error & { type?: string; status?: number }, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    if (err instanceof HttpError) return res.status(err.status).json({ error: err.message, ...(err.param ? { param: err.param } : {}) });
    if (err.type === 'entity.parse.failed') return res.status(400).json({ error: `body is not valid JSON: ${err.message}`, param: 'body' });
    if (err.type === 'entity.too.large') return res.status(413).json({ error: 'body too large', param: 'body' });
    process.stderr.write(`api error: ${err.stack ?? err.message}\n`);
    res.status(500).json({ error: 'internal error' });
  });
  return app;
}
