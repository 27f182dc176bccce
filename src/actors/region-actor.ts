/**
 * Region actors: one per region in each worker process. An actor's mailbox runs one flush
 * at a time, so a region's state in Redis is only ever changed by one step at a time from
 * this process; each flush is ONE atomic Redis script call (region-flush.lua): offset
 * fences, dedup by event_id, exact and bounded Top-K, windows, panes, session buckets.
 *
 * Batches queue up while a flush runs, and the next flush takes all of them (several
 * partitions' batches at once): under load a hot post is written once per flush, not once
 * per batch, at no added latency when idle. A flush is bounded by the time its script may
 * hold Redis (flush-budget.ts: sized from what the last flushes took) and by FLUSH_LIMITS;
 * a batch larger than that is applied in several flushes, in order.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ChainableCommander, Redis } from 'ioredis';
import {
  EVENT_MAX_AHEAD_DEFAULT,
  FLUSH_DEFAULTS,
  paneChain,
  rollChain,
  parseDuration,
  trailingPaneMs,
  WINDOW_KEY_GRACE_MS,
  type SessionSpec,
  type WindowSpec,
  type TopKMode,
} from '../config';
import type { ViewEvent } from '../events';
import type { Metrics } from '../metrics';
import { FlushBudget } from './flush-budget';
import {
  EPOCH_KEY,
  GLOBAL_DIRTY_KEY,
  REGIONS_KEY,
  regionBoundedKey,
  regionSealedKey,
  regionDirtyKey,
  regionMetaKey,
  regionOffsetsKey,
  regionTopKey,
  regionTrailingStateKey,
  regionPrefix,
  lateMaskBit,
  sessionLateBit,
  windowId,
} from '../keys';

const SCRIPT = fs.readFileSync(path.join(__dirname, 'region-flush.lua'), 'utf8');

export interface OffsetEvent {
  /** The record's Kafka offset (int64 as a decimal string). */
  offset: string;
  event: ViewEvent;
  /**
   * Bit k set: the event is beyond the allowed lateness of window spec k (not added to that
   * window); bit SESSION_BIT0 + q: beyond session spec q's (keys.ts: lateMaskBit, sessionLateBit).
   */
  lateMask?: number;
}

export interface FlushResult {
  applied: number;
  duplicates: number;
  fenced: number;
  /** The partition's fence after the batch: its last offset, once applied. */
  fence: string;
  /** Events not added to a session because it was sealed meanwhile (still counted everywhere else). */
  sessionRefused: number;
  /** Events not added to a tumbling window because it turned FINAL meanwhile (still counted everywhere else). */
  windowRefused: number;
}

export interface ActorOptions {
  windows: readonly WindowSpec[];
  sessions?: readonly SessionSpec[];
  /** `bounded`: Space-Saving leaderboards of boundedK posts, no panes or session buckets (config HH_TOPK_MODE). */
  mode?: TopKMode;
  boundedK: number;
  /** Event ids are remembered (by processing time) for at least this long: a re-send within it is not counted again. */
  dedupHorizonMs: number;
  /** The horizon is evicted in this many time slices (memory within (slices + 1) / slices of a horizon's ids). @default 20 */
  dedupSlices?: number;
  /** The most one flush takes. @default FLUSH_LIMITS.maxEvents, FLUSH_LIMITS.maxPosts */
  flushMaxEvents?: number;
  flushMaxPosts?: number;
  /**
   * How long one flush script may hold Redis, in ms: the actor sizes each flush from what the
   * last ones took (0: only the fixed limits). @default FLUSH_LIMITS.targetMs
   */
  flushTargetMs?: number;
  /** Entries waiting for a checkpoint above which flushes wait. @default FLUSH_LIMITS.maxWaitingEntries */
  maxWaitingEntries?: number;
  /** Events stamped later than the clock plus this are dead-lettered (config HH_EVENT_MAX_AHEAD). @default EVENT_MAX_AHEAD_DEFAULT */
  maxAheadMs?: number;
}

/** The most one flush takes. */
export const FLUSH_LIMITS = {
  ...FLUSH_DEFAULTS,
  /**
   * Entries waiting for a checkpoint above which the actor waits (until a checkpoint has
   * taken them): the record never falls further behind than one Cassandra batch can carry,
   * and Redis's pending changes stay bounded. Ingest slows to what the record absorbs.
   */
  maxWaitingEntries: 200_000,
} as const;

type FlushReply =
  ['OK', number, number, number, number, number, number, ...string[]] | ['NOMETA'] | ['EPOCH', string] | ['FENCED', ...string[]] | ['DUPS', string];
type FlushRedis = Redis & {
  hhRegionFlush(numKeys: number, ...args: (string | number)[]): Promise<FlushReply>;
};

/** Redis no longer holds the state (FLUSHALL, restart without persistence): rebuild first. */
export class RedisStateLost extends Error {
  constructor(region: string) {
    super(`Redis lost the state of region ${region} (no epoch): it must be rebuilt from Cassandra`);
    this.name = 'RedisStateLost';
  }
}

/** Redis state was rebuilt under a new epoch: rewind Kafka to the checkpoints, then go on. */
export class EpochChanged extends Error {
  constructor(readonly epoch: string) {
    super(`Redis state is now at epoch ${epoch}`);
    this.name = 'EpochChanged';
  }
}

/** Registers the flush script on a client (EVALSHA, loading it on first use). */
export function withFlushScript(redis: Redis): FlushRedis {
  if (!('hhRegionFlush' in redis)) redis.defineCommand('hhRegionFlush', { lua: SCRIPT });
  return redis as FlushRedis;
}

/** One event waiting in an actor, with its batch's partition and its fate. */
interface Pending {
  partition: number;
  offset: number;
  event: ViewEvent;
  lateMask: number;
  item: Item;
}

/** One submitted batch's events of this region. */
interface Item {
  partition: number;
  epoch: string;
  events: Pending[];
  /** Events not yet taken into a flush. */
  cursor: number;
  /** Events whose flush finished. */
  done: number;
  result: FlushResult;
  resolve: (r: FlushResult) => void;
  reject: (e: unknown) => void;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

export class RegionActor {
  private readonly queue: Item[] = [];
  private running = false;
  private idleWaiters: (() => void)[] = [];
  /** The header's constant part (JSON), built once. */
  private readonly headerTail: string;
  /** Per tumbling spec: the spec it is rolled up from, or -1 (config.ts: rollChain). */
  private readonly rolled: number[];
  /** Event-time granularity at which events are first aggregated: every window, pane and bucket is a multiple of it. */
  private readonly grain: number;

  constructor(
    readonly region: string,
    private readonly redis: FlushRedis,
    private readonly opts: ActorOptions,
    /** How much the next flush may take: learned from the flush scripts' own running times, shared by a process's actors. */
    readonly budget: FlushBudget,
    private readonly metrics?: Metrics,
    private readonly log?: (s: string) => void,
    /** Told when this region waits for a checkpoint (so one can run at once). */
    private readonly onPressure?: (region: string) => void,
  ) {
    const { windows, sessions = [] } = opts;
    const chain = paneChain(windows);
    this.rolled = rollChain(windows, opts.mode ?? 'exact');
    this.headerTail = JSON.stringify({
      prefix: regionPrefix(region),
      k: opts.boundedK,
      mode: opts.mode ?? 'exact',
      dedup_ms: opts.dedupHorizonMs,
      dedup_slices: opts.dedupSlices ?? 20,
      // Events stamped later than the clock plus this are dead-lettered (the first flush under pane roll-ups starts them past it).
      ahead: opts.maxAheadMs ?? parseDuration(EVENT_MAX_AHEAD_DEFAULT)!,
      // A window key's expiry: its TTL after its end, plus the grace for a workflow held up past it; the pane's
      // size, the spec its panes are summed from (1-based; 0: written here) and a pane's expiry (config.ts: paneChain).
      // The last: the spec its windows are rolled up from (1-based; 0: written here; config.ts: rollChain).
      w: windows.map((w, k) => [
        w.name,
        w.sizeMs,
        w.ttlMs + WINDOW_KEY_GRACE_MS,
        trailingPaneMs(w.sizeMs),
        chain[k].source + 1,
        chain[k].ttlMs,
        this.rolled[k] + 1,
      ]),
      s: sessions.map((sp) => [sp.name, sp.bucketMs, sp.ttlMs + sp.gapMs + sp.latenessMs]),
    }).slice(1);
    this.grain = [...windows.flatMap((w) => [w.sizeMs, trailingPaneMs(w.sizeMs)]), ...sessions.map((s) => s.bucketMs)].reduce(gcd, 0) || 1000;
  }

  /**
   * Queues one partition batch's events of this region; resolves once Redis applied them
   * under `epoch`. Rejects with RedisStateLost or EpochChanged (nothing applied) when the
   * Redis state is not that epoch's; after any failure every batch queued behind it is
   * rejected too (a later batch must never pass an earlier one's fence).
   */
  apply(partition: number, events: OffsetEvent[], epoch: string): Promise<FlushResult> {
    return new Promise<FlushResult>((resolve, reject) => {
      const item: Item = {
        partition,
        epoch,
        events: [],
        cursor: 0,
        done: 0,
        result: { applied: 0, duplicates: 0, fenced: 0, fence: events.length ? events[events.length - 1].offset : '-1', sessionRefused: 0, windowRefused: 0 },
        resolve,
        reject,
      };
      item.events = events.map((e) => ({ partition, offset: Number(e.offset), event: e.event, lateMask: e.lateMask ?? 0, item }));
      if (item.events.length === 0) return resolve(item.result);
      this.queue.push(item);
      void this.pump();
    });
  }

  /** This region's turns: each flush, and each `exclusive` task, runs alone, in call order. */
  private turn: Promise<void> = Promise.resolve();

  /**
   * Runs `fn` between this region's flushes: no flush of this actor runs while it does (a
   * trailing move, whose several script calls must not interleave with the region's writes).
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.turns++;
    const run = this.turn.then(fn);
    this.turn = run.then(
      () => void this.turns--,
      () => void this.turns--,
    );
    return run;
  }

  /** Waiting for a checkpoint (backpressure) right now. */
  backpressured = false;
  /** Tasks queued for this region's turn (flushes and `exclusive` ones), the running one included. */
  private turns = 0;

  /** Something queued, flushing, or holding the region's turn. */
  busy(): boolean {
    return this.queue.length > 0 || this.running || this.turns > 0;
  }

  /** What the actor holds, for a stall report: batches queued, events not yet flushed, turns queued. */
  describe(): string {
    const events = this.queue.reduce((n, item) => n + item.events.length - item.done, 0);
    return `${this.region}: ${this.queue.length} batch(es) (${events} events) queued, ${this.running ? 'flushing' : 'idle'}, ${this.turns} turn(s)${this.backpressured ? ', waiting for a checkpoint' : ''}`;
  }

  /** Resolves when nothing is queued or flushing. */
  idle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length) {
        if (this.waiting > (this.opts.maxWaitingEntries ?? FLUSH_LIMITS.maxWaitingEntries)) await this.waitForCheckpoint();
        const taken = this.take();
        const epoch = taken[0].item.epoch;
        try {
          await this.exclusive(() => this.flush(taken, epoch));
        } catch (e) {
          // Nothing after a failed flush may be applied: fail it and everything queued.
          const failed = new Set([...taken.map((p) => p.item), ...this.queue]);
          this.queue.length = 0;
          for (const item of failed) item.reject(e);
          continue;
        }
        for (const p of taken) p.item.done++;
        // Batches are taken in order, so they finish in order.
        while (this.queue.length && this.queue[0].done === this.queue[0].events.length) {
          const item = this.queue.shift()!;
          item.resolve(item.result);
        }
      }
    } finally {
      this.running = false;
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** Entries of this region waiting for a checkpoint, as the last flush reported. */
  private waiting = 0;

  /** Backpressure: waits until a checkpoint took the region's waiting entries (or they fell below half). */
  private async waitForCheckpoint(): Promise<void> {
    const t0 = process.hrtime.bigint();
    this.onPressure?.(this.region);
    this.backpressured = true;
    try {
      for (;;) {
        await new Promise((r) => setTimeout(r, 100));
        const n = Number((await this.redis.hget(regionMetaKey(this.region), 'dirty_entries')) ?? 0);
        if (n <= (this.opts.maxWaitingEntries ?? FLUSH_LIMITS.maxWaitingEntries) / 2) {
          this.waiting = n;
          break;
        }
      }
    } finally {
      this.backpressured = false;
    }
    this.metrics?.backpressureSeconds.inc(Number(process.hrtime.bigint() - t0) / 1e9);
  }

  /** The next flush's events: from the queue's head, one epoch, within FLUSH_LIMITS and the budget. */
  private take(): Pending[] {
    const out: Pending[] = [];
    const posts = new Set<string>();
    const epoch = this.queue[0].epoch;
    const maxEvents = this.opts.flushMaxEvents ?? FLUSH_LIMITS.maxEvents;
    const maxPosts = this.opts.flushMaxPosts ?? FLUSH_LIMITS.maxPosts;
    const limit = this.budget.limitUs;
    const perEvent = this.budget.usPerEvent;
    const perPost = this.budget.usPerPost;
    let us = 0;
    for (const item of this.queue) {
      if (item.epoch !== epoch) break;
      while (item.cursor < item.events.length) {
        const p = item.events[item.cursor];
        const isNew = !posts.has(p.event.post_id);
        const cost = perEvent + (isNew ? perPost : 0);
        if (out.length >= maxEvents || (isNew && posts.size >= maxPosts) || (out.length > 0 && us + cost > limit)) return out;
        us += cost;
        posts.add(p.event.post_id);
        out.push(p);
        item.cursor++;
      }
    }
    return out;
  }

  /** One atomic step for `events` (retried without the ones the script found fenced or already seen). */
  private async flush(events: Pending[], epoch: string): Promise<void> {
    const t0 = process.hrtime.bigint();
    const r = this.region;
    const keys = [
      regionOffsetsKey(r),
      regionTopKey(r),
      regionBoundedKey(r),
      regionMetaKey(r),
      regionDirtyKey(r),
      regionTrailingStateKey(r),
      regionSealedKey(r),
    ];
    const header = `{"epoch":${JSON.stringify(epoch)},${this.headerTail}`;
    // Every event here moves its partition's fence, the ones dropped as duplicates too.
    let fenceOver = events;
    let live = events;
    for (let attempt = 0; ; attempt++) {
      const { unique, repeats } = uniqueIds(live);
      for (const p of repeats) p.item.result.duplicates++;
      this.metrics?.deduplicated.inc(repeats.length);
      const parts = partitionRanges(fenceOver);
      const packed = this.pack(unique);
      const args = [header, JSON.stringify(parts), JSON.stringify(unique.map((p) => p.event.event_id)), packed.counts];
      let reply = await this.call(keys, args);
      if (reply[0] === 'NOMETA') {
        // No state for the region: either it is new, or Redis lost everything (then the epoch is gone too).
        const current = await this.redis.get(EPOCH_KEY);
        if (current === null) throw new RedisStateLost(r);
        if (current !== epoch) throw new EpochChanged(current);
        await this.redis.hsetnx(regionMetaKey(r), 'epoch', epoch);
        reply = await this.call(keys, args);
      }
      if (reply[0] === 'NOMETA') throw new RedisStateLost(r);
      if (reply[0] === 'EPOCH') throw new EpochChanged(reply[1]);
      if (reply[0] === 'FENCED') {
        // A redelivery: events at or below a partition's fence were applied before.
        const fences = new Map<number, number>();
        for (let i = 1; i < reply.length; i += 2) fences.set(Number(reply[i]), Number(reply[i + 1]));
        const keep = (p: Pending) => !(fences.has(p.partition) && p.offset <= fences.get(p.partition)!);
        for (const p of fenceOver) if (!keep(p)) p.item.result.fenced++;
        this.metrics?.fenced.inc(fenceOver.length - fenceOver.filter(keep).length);
        fenceOver = fenceOver.filter(keep);
        live = unique.filter(keep);
        if (fenceOver.length === 0) return;
        continue;
      }
      if (reply[0] === 'DUPS') {
        // Re-sent events: their ids were counted within the dedup horizon.
        const dups = new Set((JSON.parse(reply[1]) as number[]).map((i) => i - 1));
        live = unique.filter((p, i) => {
          if (dups.has(i)) p.item.result.duplicates++;
          return !dups.has(i);
        });
        this.metrics?.deduplicated.inc(dups.size);
        continue;
      }
      const [, applied, refused, waiting, eventUs, postUs, windowRefused, ...windowIds] = reply;
      this.waiting = waiting;
      this.budget.observe(unique.length, packed.posts, eventUs, postUs);
      this.metrics?.flushScriptSeconds.observe((eventUs + postUs) / 1e6);
      for (const p of unique) p.item.result.applied++;
      this.metrics?.applied.inc(applied);
      if (this.metrics) {
        // Freshness: from the event's own time (stamped by its producer) to counted in Redis.
        const now = Date.now();
        for (const p of live) this.metrics.applyDelay.observe(Math.max(0, now - p.event.timestamp) / 1000);
      }
      this.metrics?.sessionRefused.inc(refused);
      this.metrics?.windowRefused.inc(windowRefused);
      // Refused session and window events are counted per flush; the first batch of the flush reports them.
      if (refused && unique.length) unique[0].item.result.sessionRefused += refused;
      if (windowRefused && unique.length) unique[0].item.result.windowRefused += windowRefused;
      if (applied > 0) {
        try {
          // The global merge re-merges what this flush changed: all-time and its windows
          // (trailing keys change when the watermark moves them: advanceTrailing marks those).
          await this.redis.sadd(GLOBAL_DIRTY_KEY, 'all', ...windowIds);
        } catch (e) {
          // The counts are in; only the global merge of these families waits for their next change.
          this.metrics?.failures.inc({ operation: 'mark_global_dirty' });
          this.log?.(`cannot mark ${this.region}'s changed families for the global merge: ${(e as Error).message}`);
        }
      }
      this.metrics?.flushSeconds.observe(Number(process.hrtime.bigint() - t0) / 1e9);
      if (attempt > 0) this.metrics?.flushRetries.inc(attempt);
      return;
    }
  }

  /**
   * What the events add to each key, aggregated here (V8 is much faster at it than Lua):
   * first per (event-time grain, post), then per window, pane and bucket. Events late for a
   * spec (a late-mask bit) skip that spec's window or session. A spec rolled up from the
   * finest one (config.ts rollChain) takes an event here only when it is too late for its
   * child window and not for its own: the others reach it through the child. A key that received every
   * event of the flush adds exactly what all-time adds (each event adds to one key per spec):
   * its list is sent as 0, "the same as a" — the usual case (a flush within one window of
   * each spec), so the posts are sent and decoded once instead of once per key.
   */
  private pack(events: Pending[]): { counts: string; posts: number } {
    const { windows, sessions = [] } = this.opts;
    const withPanes = this.opts.mode !== 'bounded';
    const g = this.grain;
    const byGrain = new Map<number, { n: number; posts: Map<string, number> }>();
    const late: Pending[] = [];
    let lastGrain = NaN;
    let grainEntry: { n: number; posts: Map<string, number> } | undefined;
    for (const p of events) {
      const post = p.event.post_id;
      if (p.lateMask !== 0) {
        late.push(p);
        continue;
      }
      const ts = p.event.timestamp;
      const gr = ts - (ts % g);
      if (gr !== lastGrain) {
        lastGrain = gr;
        grainEntry = byGrain.get(gr);
        if (!grainEntry) byGrain.set(gr, (grainEntry = { n: 0, posts: new Map() }));
      }
      grainEntry!.n++;
      grainEntry!.posts.set(post, (grainEntry!.posts.get(post) ?? 0) + 1);
    }
    // All-time: the sum of the grains and the late events (one grain, nothing late: that grain).
    let all = grainEntry?.posts ?? new Map<string, number>();
    if (byGrain.size !== 1 || late.length > 0) {
      all = new Map();
      for (const grain of byGrain.values()) for (const [post, n] of grain.posts) all.set(post, (all.get(post) ?? 0) + n);
      for (const p of late) all.set(p.event.post_id, (all.get(p.event.post_id) ?? 0) + 1);
    }
    /**
     * A key's deltas: the grains and the late events' posts it takes, and how many events
     * they sum; summed per post only when sent (a key that took every event is sent as 0).
     */
    type Deltas = { n: number; grains: Map<string, number>[]; posts: string[] };
    const win = new Map<string, Deltas>();
    const pane = windows.map(() => new Map<number, Deltas>());
    const bucket = sessions.map(() => new Map<number, Deltas>());
    const keyOf = <K>(m: Map<K, Deltas>, key: K): Deltas => {
      let t = m.get(key);
      if (!t) m.set(key, (t = { n: 0, grains: [], posts: [] }));
      return t;
    };
    const addAll = (t: Deltas, from: { n: number; posts: Map<string, number> }) => {
      t.n += from.n;
      t.grains.push(from.posts);
    };
    const addOne = (t: Deltas, post: string) => {
      t.n++;
      t.posts.push(post);
    };
    const rolled = this.rolled;
    for (const [gr, grain] of byGrain) {
      for (let k = 0; k < windows.length; k++) {
        const w = windows[k];
        // A rolled spec's window takes these through its child (the finest spec's window).
        if (rolled[k] < 0) addAll(keyOf(win, windowId(w.name, gr - (gr % w.sizeMs))), grain);
        if (withPanes) addAll(keyOf(pane[k], gr - (gr % trailingPaneMs(w.sizeMs))), grain);
      }
      for (let q = 0; q < sessions.length; q++) addAll(keyOf(bucket[q], gr - (gr % sessions[q].bucketMs)), grain);
    }
    for (const p of late) {
      const { post_id: post, timestamp: ts } = p.event;
      for (let k = 0; k < windows.length; k++) {
        const w = windows[k];
        // A rolled spec's window takes directly only what is too late for its child and not for it.
        const takes = (p.lateMask & lateMaskBit(k)) === 0 && (rolled[k] < 0 || (p.lateMask & lateMaskBit(rolled[k])) !== 0);
        if (takes) addOne(keyOf(win, windowId(w.name, ts - (ts % w.sizeMs))), post);
        if (withPanes) addOne(keyOf(pane[k], ts - (ts % trailingPaneMs(w.sizeMs))), post);
      }
      for (let q = 0; q < sessions.length; q++) {
        if ((p.lateMask & sessionLateBit(q)) === 0) addOne(keyOf(bucket[q], ts - (ts % sessions[q].bucketMs)), post);
      }
    }
    const flat = (m: Map<string, number>) => {
      const out: (string | number)[] = [];
      for (const [post, n] of m) out.push(n, post);
      return out;
    };
    const list = (t: Deltas) => {
      if (t.n === events.length) return 0;
      if (t.grains.length === 1 && t.posts.length === 0) return flat(t.grains[0]);
      const sum = new Map<string, number>();
      for (const grain of t.grains) for (const [post, n] of grain) sum.set(post, (sum.get(post) ?? 0) + n);
      for (const post of t.posts) sum.set(post, (sum.get(post) ?? 0) + 1);
      return flat(sum);
    };
    const obj = <K>(m: Map<K, Deltas>) => Object.fromEntries([...m].map(([k, t]) => [String(k), list(t)]));
    return { counts: JSON.stringify({ a: flat(all), w: obj(win), p: pane.map(obj), b: bucket.map(obj) }), posts: all.size };
  }

  /** The flush script call, with the region registered in the same round trip. */
  private async call(keys: string[], args: string[]): Promise<FlushReply> {
    const pipe = this.redis.pipeline().sadd(REGIONS_KEY, this.region) as ChainableCommander & {
      hhRegionFlush(numKeys: number, ...keysAndArgs: string[]): ChainableCommander;
    };
    const res = await pipe.hhRegionFlush(keys.length, ...keys, ...args).exec();
    const [err, reply] = res![1];
    if (err) throw err;
    return reply as FlushReply;
  }
}

/** The events with their first id once, and the later repeats (the same event sent twice in one flush). */
function uniqueIds(events: Pending[]): { unique: Pending[]; repeats: Pending[] } {
  const seen = new Set<string>();
  const unique: Pending[] = [];
  const repeats: Pending[] = [];
  for (const p of events) {
    if (seen.has(p.event.event_id)) repeats.push(p);
    else {
      seen.add(p.event.event_id);
      unique.push(p);
    }
  }
  return { unique, repeats };
}

/** [partition, first offset, last offset] of the events of each partition (in offset order). */
function partitionRanges(events: Pending[]): [number, number, number][] {
  const ranges = new Map<number, [number, number, number]>();
  for (const p of events) {
    const r = ranges.get(p.partition);
    if (!r) ranges.set(p.partition, [p.partition, p.offset, p.offset]);
    else if (p.offset > r[2]) r[2] = p.offset;
  }
  return [...ranges.values()];
}

/** The actors of one process, created on first use. */
export class ActorSystem {
  private readonly actors = new Map<string, RegionActor>();
  private readonly redis: FlushRedis;
  /**
   * One budget for the process's actors: they share one Redis and one configuration, so what
   * one region's flushes cost teaches the others (a region's first flush is sized by it too).
   */
  private readonly budget: FlushBudget;

  constructor(
    redis: Redis,
    private readonly opts: ActorOptions,
    private readonly metrics?: Metrics,
    private readonly log?: (s: string) => void,
    /** Told when a region waits for a checkpoint. */
    readonly onPressure?: (region: string) => void,
  ) {
    this.redis = withFlushScript(redis);
    this.budget = new FlushBudget(opts.flushTargetMs ?? FLUSH_LIMITS.targetMs);
  }

  actor(region: string): RegionActor {
    let a = this.actors.get(region);
    if (!a) {
      a = new RegionActor(region, this.redis, this.opts, this.budget, this.metrics, this.log, this.onPressure);
      this.actors.set(region, a);
    }
    return a;
  }

  /** Some region is waiting for a checkpoint. */
  backpressured(): boolean {
    for (const a of this.actors.values()) if (a.backpressured) return true;
    return false;
  }

  /** Every actor that holds something, one line each (a stall report). */
  describe(): string[] {
    return [...this.actors.values()].filter((a) => a.busy()).map((a) => a.describe());
  }

  /** Waits for every actor's queued flushes (graceful shutdown). */
  async drain(): Promise<void> {
    await Promise.all([...this.actors.values()].map((a) => a.idle()));
  }
}
