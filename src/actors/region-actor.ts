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
import { trailingPaneMs, type SessionSpec, type WindowSpec } from '../config';
import type { ViewEvent } from '../events';
import type { Metrics } from '../metrics';
import {
  EPOCH_KEY,
  GLOBAL_DIRTY_KEY,
  REGIONS_KEY,
  regionBoundedKey,
  regionBucketIndexKey,
  regionBucketKey,
  regionSealedKey,
  regionSessionsKey,
  regionDirtyKey,
  regionMetaKey,
  regionOffsetsKey,
  regionPaneKey,
  regionSeenKey,
  regionTopKey,
  regionTrailingKey,
  regionTrailingStateKey,
  regionWindowKey,
  windowId,
} from '../keys';

const SCRIPT = fs.readFileSync(path.join(__dirname, 'region-flush.lua'), 'utf8');
const ADVANCE = fs.readFileSync(path.join(__dirname, 'trailing-advance.lua'), 'utf8');
const SEAL = fs.readFileSync(path.join(__dirname, 'session-seal.lua'), 'utf8');
const HOUR = 3_600_000;

export interface OffsetEvent {
  /** The record's Kafka offset (int64 as a decimal string). */
  offset: string;
  event: ViewEvent;
  /**
   * Bit k set: the event is beyond the allowed lateness of window spec k (not added to that
   * window); bit SESSION_BIT0 + q: beyond session spec q's.
   */
  lateMask?: number;
}

export interface FlushResult {
  applied: number;
  duplicates: number;
  fenced: number;
  /** The partition's fence after the flush. */
  fence: string;
  /** The bounded key's Kth (lowest) score after the flush, -1 if empty. */
  kthScore: number;
  /** Events not added to a session because it was sealed meanwhile (still counted everywhere else). */
  sessionRefused: number;
}

/** Late-mask bit of the first session spec (tumbling specs use the bits below it). */
export const SESSION_BIT0 = 16;

export interface ActorOptions {
  windows: readonly WindowSpec[];
  sessions?: readonly SessionSpec[];
  boundedK: number;
  dedupHorizonMs: number;
}

type FlushReply = ['OK', number, number, number, string, string, number] | ['NOMETA'] | ['EPOCH', string];
type FlushRedis = Redis & {
  hhRegionFlush(numKeys: number, ...args: (string | number)[]): Promise<FlushReply>;
  hhTrailingAdvance(numKeys: number, ...args: (string | number)[]): Promise<string[]>;
  hhSessionSeal(numKeys: number, ...args: (string | number)[]): Promise<(string | number)[]>;
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
  if (!('hhRegionFlush' in redis)) {
    redis.defineCommand('hhRegionFlush', { lua: SCRIPT });
    redis.defineCommand('hhTrailingAdvance', { lua: ADVANCE });
    redis.defineCommand('hhSessionSeal', { lua: SEAL });
  }
  return redis as FlushRedis;
}

export interface SealedSession {
  start: number;
  end: number;
  posts: number;
}

/**
 * Seals the region's sessions of `spec` that the watermark has passed by a gap plus the
 * lateness, and returns every sealed session after `after` (the last one the caller took),
 * marked for the global merge.
 */
export async function sealSessions(redis: Redis, region: string, spec: SessionSpec, watermark: number, after: number): Promise<SealedSession[]> {
  const flat = await withFlushScript(redis).hhSessionSeal(
    3,
    regionBucketIndexKey(region, spec.name),
    regionSealedKey(region),
    regionSessionsKey(region, spec.name),
    spec.name,
    spec.gapMs,
    spec.bucketMs,
    spec.latenessMs,
    spec.ttlMs,
    Math.floor(watermark),
    `region:{${region}}:`,
    after,
  );
  const out: SealedSession[] = [];
  for (let i = 0; i < flat.length; i += 3) out.push({ start: Number(flat[i]), end: Number(flat[i + 1]), posts: Number(flat[i + 2]) });
  if (out.length) await redis.sadd(GLOBAL_DIRTY_KEY, ...out.map((s) => `${spec.name}:${s.start}`));
  return out;
}

/**
 * Moves the region's trailing timeframes to `watermark` (adds the panes it entered,
 * subtracts the ones that fell out), marks the changed ones for the global merge, and
 * returns their spec names.
 */
export async function advanceTrailing(redis: Redis, region: string, windows: readonly WindowSpec[], watermark: number): Promise<string[]> {
  const args = windows.flatMap((w) => [w.name, w.sizeMs, trailingPaneMs(w.sizeMs)]);
  const changed = await withFlushScript(redis).hhTrailingAdvance(1, regionTrailingStateKey(region), Math.floor(watermark), `region:{${region}}:`, ...args);
  if (changed.length) await redis.sadd(GLOBAL_DIRTY_KEY, ...changed.map((n) => `trailing:${n}`));
  return changed;
}

export class RegionActor {
  private mailbox: Promise<unknown> = Promise.resolve();

  constructor(
    readonly region: string,
    private readonly redis: FlushRedis,
    private readonly opts: ActorOptions,
    private readonly metrics?: Metrics,
  ) {}

  /**
   * Queues one partition batch's events of this region; resolves once Redis applied them
   * under `epoch`. Rejects with RedisStateLost or EpochChanged (nothing applied) when the
   * Redis state is not that epoch's.
   */
  apply(partition: number, events: OffsetEvent[], epoch: string): Promise<FlushResult> {
    const run = this.mailbox.then(() => this.flush(partition, events, epoch));
    this.mailbox = run.catch(() => undefined);
    return run;
  }

  private async flush(partition: number, events: OffsetEvent[], epoch: string): Promise<FlushResult> {
    const t0 = process.hrtime.bigint();
    const { windows, boundedK, dedupHorizonMs, sessions = [] } = this.opts;
    const r = this.region;
    const seenIdx = new Map<number, number>();
    const seenExpire: number[] = [];
    const winIdx = new Map<string, number>();
    const winKeys: string[] = [];
    const winArgs: (string | number)[] = [];
    const paneIdx = new Map<string, number>();
    const paneKeys: string[] = [];
    const paneArgs: (string | number)[] = [];
    const panes = windows.map((w) => trailingPaneMs(w.sizeMs));
    const bucketIdx = new Map<string, number>();
    const bucketKeys: string[] = [];
    const bucketArgs: (string | number)[] = [];
    const perEvent: (string | number)[] = [];
    const paneRefs: number[] = [];
    for (const { offset, event, lateMask = 0 } of events) {
      const hour = Math.floor(event.timestamp / HOUR) * HOUR;
      let si = seenIdx.get(hour);
      if (si === undefined) {
        si = seenIdx.size + 1;
        seenIdx.set(hour, si);
        seenExpire.push(hour + HOUR + dedupHorizonMs);
      }
      perEvent.push(offset, event.event_id, event.post_id, 7 + si);
      for (let k = 0; k < windows.length; k++) {
        const w = windows[k];
        if (lateMask & (1 << k)) {
          perEvent.push(0); // beyond this window's allowed lateness: its key is left alone
          continue;
        }
        const start = Math.floor(event.timestamp / w.sizeMs) * w.sizeMs;
        const id = windowId(w.name, start);
        let wi = winIdx.get(id);
        if (wi === undefined) {
          wi = winKeys.length + 1;
          winIdx.set(id, wi);
          winKeys.push(regionWindowKey(r, id));
          winArgs.push(start + w.sizeMs + w.ttlMs, id);
        }
        perEvent.push(wi); // relative to the window keys; the script adds the offset
      }
      for (let k = 0; k < windows.length; k++) {
        const w = windows[k];
        const start = Math.floor(event.timestamp / panes[k]) * panes[k];
        const id = `${w.name}:${start}`;
        let pi = paneIdx.get(id);
        if (pi === undefined) {
          pi = paneKeys.length + 1;
          paneIdx.set(id, pi);
          paneKeys.push(regionPaneKey(r, w.name, start));
          // Subtracted and deleted once the watermark passes start + size; a pane never
          // reached that way (a region gone quiet) expires after twice the size of wall-clock time.
          paneArgs.push(2 * w.sizeMs + panes[k], k + 1, start);
        }
        paneRefs.push(pi);
      }
      perEvent.push(...paneRefs);
      paneRefs.length = 0;
      for (let q = 0; q < sessions.length; q++) {
        const sp = sessions[q];
        if (lateMask & (1 << (SESSION_BIT0 + q))) {
          perEvent.push(0);
          continue;
        }
        const start = Math.floor(event.timestamp / sp.bucketMs) * sp.bucketMs;
        const id = `${sp.name}:${start}`;
        let bi = bucketIdx.get(id);
        if (bi === undefined) {
          bi = bucketKeys.length + 1;
          bucketIdx.set(id, bi);
          bucketKeys.push(regionBucketKey(r, sp.name, start));
          // Sealed (and deleted) once the session ends; a session longer than its ttl loses its oldest buckets.
          bucketArgs.push(sp.ttlMs + sp.gapMs + sp.latenessMs, q + 1, start);
        }
        perEvent.push(bi);
      }
    }
    const seenKeys = [...seenIdx.keys()].map((h) => regionSeenKey(r, h));
    const keys = [
      regionOffsetsKey(r),
      regionTopKey(r),
      regionBoundedKey(r),
      regionMetaKey(r),
      regionDirtyKey(r),
      regionTrailingStateKey(r),
      regionSealedKey(r),
      ...seenKeys,
      ...winKeys,
      ...paneKeys,
      ...windows.map((w) => regionTrailingKey(r, w.name)),
      ...sessions.map((sp) => regionBucketIndexKey(r, sp.name)),
      ...bucketKeys,
    ];
    const args = [
      partition,
      windows.length,
      boundedK,
      seenKeys.length,
      winKeys.length,
      epoch,
      paneKeys.length,
      sessions.length,
      bucketKeys.length,
      ...seenExpire,
      ...winArgs,
      ...paneArgs,
      ...windows.map((w) => w.name),
      ...bucketArgs,
      ...sessions.map((sp) => sp.name),
      ...perEvent,
    ];
    // The global merge re-merges what this flush may change: all-time, its windows, its trailing timeframes.
    const families = ['all', ...winIdx.keys(), ...windows.map((w) => `trailing:${w.name}`)];
    let reply = await this.call(keys, args, families);
    if (reply[0] === 'NOMETA') {
      // No state for the region: either it is new, or Redis lost everything (then the epoch is gone too).
      const current = await this.redis.get(EPOCH_KEY);
      if (current === null) throw new RedisStateLost(r);
      if (current !== epoch) throw new EpochChanged(current);
      await this.redis.hsetnx(regionMetaKey(r), 'epoch', epoch);
      reply = await this.call(keys, args, families);
    }
    if (reply[0] === 'NOMETA') throw new RedisStateLost(r);
    if (reply[0] === 'EPOCH') throw new EpochChanged(reply[1]);
    const [, applied, duplicates, fenced, fence, kth, sessionRefused] = reply;
    const result = { applied, duplicates, fenced, fence, kthScore: Number(kth), sessionRefused };
    if (this.metrics) {
      this.metrics.applied.inc(applied);
      this.metrics.deduplicated.inc(duplicates);
      this.metrics.fenced.inc(fenced);
      this.metrics.sessionRefused.inc(sessionRefused);
      this.metrics.flushSeconds.observe(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    return result;
  }

  /** The flush script call, with the region registered in the same round trip. */
  private async call(keys: string[], args: (string | number)[], families: string[]): Promise<FlushReply> {
    const pipe = this.redis.pipeline().sadd(REGIONS_KEY, this.region) as ChainableCommander & {
      hhRegionFlush(numKeys: number, keysAndArgs: (string | number)[]): ChainableCommander;
    };
    // Marked after the flush: a merge that takes the marks then sees what the flush wrote.
    // One array argument (ioredis flattens it): a large batch has more values than a call may have arguments.
    const res = await pipe.hhRegionFlush(keys.length, keys.concat(args as string[])).sadd(GLOBAL_DIRTY_KEY, ...families).exec();
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
  ) {
    this.redis = withFlushScript(redis);
  }

  actor(region: string): RegionActor {
    let a = this.actors.get(region);
    if (!a) {
      a = new RegionActor(region, this.redis, this.opts, this.metrics);
      this.actors.set(region, a);
    }
    return a;
  }

  /** Waits for every actor's queued flushes (graceful shutdown). */
  async drain(): Promise<void> {
    await Promise.all([...this.actors.values()].map((a) => a.idle()));
  }
}
