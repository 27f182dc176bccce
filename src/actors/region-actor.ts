/**
 * Region actors: one per region in each worker process. An actor's mailbox runs one
 * flush at a time, so a region's state in Redis is only ever changed by one step at a
 * time from this process; each flush is ONE atomic Redis script call (region-flush.lua)
 * that applies a partition batch's events for the region: offset fence, dedup by
 * event_id, exact and bounded Top-K, tumbling windows.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ChainableCommander, Redis } from 'ioredis';
import { trailingPaneMs, type SessionSpec, type WindowSpec, type TopKMode } from '../config';
import type { ViewEvent } from '../events';
import type { Metrics } from '../metrics';
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
  /** The partition's fence after the flush. */
  fence: string;
  /** Events not added to a session because it was sealed meanwhile (still counted everywhere else). */
  sessionRefused: number;
}

export interface ActorOptions {
  windows: readonly WindowSpec[];
  sessions?: readonly SessionSpec[];
  /** `bounded`: Space-Saving leaderboards of boundedK posts, no panes or session buckets (config HH_TOPK_MODE). */
  mode?: TopKMode;
  boundedK: number;
  dedupHorizonMs: number;
}

type FlushReply = ['OK', number, number, number, string, number, ...string[]] | ['NOMETA'] | ['EPOCH', string];
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

export class RegionActor {
  private mailbox: Promise<unknown> = Promise.resolve();

  constructor(
    readonly region: string,
    private readonly redis: FlushRedis,
    private readonly opts: ActorOptions,
    private readonly metrics?: Metrics,
    private readonly log?: (s: string) => void,
  ) {}

  /**
   * Queues one partition batch's events of this region; resolves once Redis applied them
   * under `epoch`. Rejects with RedisStateLost or EpochChanged (nothing applied) when the
   * Redis state is not that epoch's.
   */
  apply(partition: number, events: OffsetEvent[], epoch: string): Promise<FlushResult> {
    const run = this.mailbox.then(() => this.flush(partition, events, epoch));
    this.mailbox = run.catch(() => undefined); // the caller gets the failure through `run`; the next flush still runs
    return run;
  }

  /** The window and session specs as the script reads them (JSON, built once per actor). */
  private specsJson(): string {
    const { windows, sessions = [] } = this.opts;
    return (this.specs ??= JSON.stringify({
      w: windows.map((w) => [w.name, w.sizeMs, w.ttlMs, trailingPaneMs(w.sizeMs)]),
      s: sessions.map((sp) => [sp.name, sp.bucketMs, sp.ttlMs + sp.gapMs + sp.latenessMs]),
    }));
  }
  private specs?: string;

  private async flush(partition: number, events: OffsetEvent[], epoch: string): Promise<FlushResult> {
    const t0 = process.hrtime.bigint();
    const r = this.region;
    const packed = this.pack(events);
    const keys = [
      regionOffsetsKey(r),
      regionTopKey(r),
      regionBoundedKey(r),
      regionMetaKey(r),
      regionDirtyKey(r),
      regionTrailingStateKey(r),
      regionSealedKey(r),
    ];
    const args = [
      String(partition),
      String(this.opts.boundedK),
      epoch,
      regionPrefix(r),
      String(this.opts.dedupHorizonMs),
      this.specsJson(),
      packed,
      this.opts.mode ?? 'exact',
    ];
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
    const [, applied, duplicates, fenced, fence, sessionRefused, ...windowIds] = reply;
    // The global merge re-merges what this flush changed: all-time and its windows (trailing
    // keys change when the watermark moves them: advanceTrailing marks those).
    if (applied > 0) {
      try {
        await this.redis.sadd(GLOBAL_DIRTY_KEY, 'all', ...windowIds);
      } catch (e) {
        // The counts are in; only the global merge of these families waits for their next change.
        this.metrics?.failures.inc({ operation: 'mark_global_dirty' });
        this.log?.(`cannot mark ${this.region}'s changed families for the global merge: ${(e as Error).message}`);
      }
    }
    const result = { applied, duplicates, fenced, fence, sessionRefused };
    if (this.metrics) {
      this.metrics.applied.inc(applied);
      this.metrics.deduplicated.inc(duplicates);
      this.metrics.fenced.inc(fenced);
      this.metrics.sessionRefused.inc(sessionRefused);
      this.metrics.flushSeconds.observe(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    return result;
  }

  /**
   * The batch as the script reads it (one JSON argument): its events, and the counts they add
   * to each key, aggregated here (V8 is much faster at it than Lua); the script takes back
   * what a fenced or duplicate event contributed.
   */
  private pack(events: OffsetEvent[]): string {
    const { windows, sessions = [] } = this.opts;
    const panes = windows.map((w) => trailingPaneMs(w.sizeMs));
    const withPanes = this.opts.mode !== 'bounded';
    const all = new Map<string, number>();
    const win = new Map<string, Map<string, number>>();
    const pane = windows.map(() => new Map<number, Map<string, number>>());
    const bucket = sessions.map(() => new Map<number, Map<string, number>>());
    const add = <K>(m: Map<K, Map<string, number>>, key: K, post: string) => {
      let t = m.get(key);
      if (!t) m.set(key, (t = new Map()));
      t.set(post, (t.get(post) ?? 0) + 1);
    };
    // A batch's events mostly share their windows: an id is built when the window changes.
    const lastStart = windows.map(() => NaN);
    const lastId = windows.map(() => '');
    const rows: (string | number)[][] = new Array(events.length);
    let i = 0;
    for (const { offset, event, lateMask = 0 } of events) {
      const { post_id: post, timestamp: ts } = event;
      rows[i++] = [Number(offset), event.event_id, post, ts, lateMask];
      all.set(post, (all.get(post) ?? 0) + 1);
      for (let k = 0; k < windows.length; k++) {
        if ((lateMask & lateMaskBit(k)) === 0) {
          const start = ts - (ts % windows[k].sizeMs);
          if (start !== lastStart[k]) [lastStart[k], lastId[k]] = [start, windowId(windows[k].name, start)];
          add(win, lastId[k], post);
        }
        if (withPanes) add(pane[k], ts - (ts % panes[k]), post);
      }
      for (let q = 0; q < sessions.length; q++) {
        if ((lateMask & sessionLateBit(q)) === 0) add(bucket[q], ts - (ts % sessions[q].bucketMs), post);
      }
    }
    const obj = <K>(m: Map<K, Map<string, number>>) => Object.fromEntries([...m].map(([k, t]) => [String(k), Object.fromEntries(t)]));
    return JSON.stringify({ e: rows, a: Object.fromEntries(all), w: obj(win), p: pane.map(obj), b: bucket.map(obj) });
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

  /** Resolves when every queued flush has finished. */
  async idle(): Promise<void> {
    await this.mailbox;
  }
}

/** The actors of one process, created on first use. */
export class ActorSystem {
  private readonly actors = new Map<string, RegionActor>();
  private readonly redis: FlushRedis;

  constructor(
    redis: Redis,
    private readonly opts: ActorOptions,
    private readonly metrics?: Metrics,
    private readonly log?: (s: string) => void,
  ) {
    this.redis = withFlushScript(redis);
  }

  actor(region: string): RegionActor {
    let a = this.actors.get(region);
    if (!a) {
      a = new RegionActor(region, this.redis, this.opts, this.metrics, this.log);
      this.actors.set(region, a);
    }
    return a;
  }

  /** Waits for every actor's queued flushes (graceful shutdown). */
  async drain(): Promise<void> {
    await Promise.all([...this.actors.values()].map((a) => a.idle()));
  }
}
