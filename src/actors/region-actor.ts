/**
 * Region actors: one per region in each worker process. An actor's mailbox runs one
 * flush at a time, so a region's state in Redis is only ever changed by one step at a
 * time from this process; each flush is ONE atomic Redis script call (region-flush.lua)
 * that applies a partition batch's events for the region: offset fence, dedup by
 * event_id, exact and bounded Top-K, tumbling windows.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Redis } from 'ioredis';
import type { WindowSpec } from '../config';
import type { ViewEvent } from '../events';
import type { Metrics } from '../metrics';
import { REGIONS_KEY, regionBoundedKey, regionOffsetsKey, regionSeenKey, regionTopKey, regionWindowKey, windowId } from '../keys';

const SCRIPT = fs.readFileSync(path.join(__dirname, 'region-flush.lua'), 'utf8');
const HOUR = 3_600_000;

export interface OffsetEvent {
  /** The record's Kafka offset (int64 as a decimal string). */
  offset: string;
  event: ViewEvent;
}

export interface FlushResult {
  applied: number;
  duplicates: number;
  fenced: number;
  /** The partition's fence after the flush. */
  fence: string;
  /** The bounded key's Kth (lowest) score after the flush, -1 if empty. */
  kthScore: number;
}

export interface ActorOptions {
  windows: readonly WindowSpec[];
  boundedK: number;
  dedupHorizonMs: number;
}

type FlushRedis = Redis & {
  hhRegionFlush(numKeys: number, ...args: (string | number)[]): Promise<[number, number, number, string, string]>;
};

/** Registers the flush script on a client (EVALSHA, loading it on first use). */
export function withFlushScript(redis: Redis): FlushRedis {
  if (!('hhRegionFlush' in redis)) redis.defineCommand('hhRegionFlush', { lua: SCRIPT });
  return redis as FlushRedis;
}

export class RegionActor {
  private mailbox: Promise<unknown> = Promise.resolve();
  private registered = false;
  /** The last Kth score the flush reported (the bounded key's entry threshold). */
  kthScore = -1;

  constructor(
    readonly region: string,
    private readonly redis: FlushRedis,
    private readonly opts: ActorOptions,
    private readonly metrics?: Metrics,
  ) {}

  /** Queues one partition batch's events of this region; resolves once Redis applied them. */
  apply(partition: number, events: OffsetEvent[]): Promise<FlushResult> {
    const run = this.mailbox.then(() => this.flush(partition, events));
    this.mailbox = run.catch(() => undefined);
    return run;
  }

  private async flush(partition: number, events: OffsetEvent[]): Promise<FlushResult> {
    const t0 = process.hrtime.bigint();
    if (!this.registered) {
      await this.redis.sadd(REGIONS_KEY, this.region);
      this.registered = true;
    }
    const { windows, boundedK, dedupHorizonMs } = this.opts;
    const r = this.region;
    const seenIdx = new Map<number, number>();
    const seenExpire: number[] = [];
    const winIdx = new Map<string, number>();
    const winKeys: string[] = [];
    const winExpire: number[] = [];
    const perEvent: (string | number)[] = [];
    for (const { offset, event } of events) {
      const hour = Math.floor(event.timestamp / HOUR) * HOUR;
      let si = seenIdx.get(hour);
      if (si === undefined) {
        si = seenIdx.size + 1;
        seenIdx.set(hour, si);
        seenExpire.push(hour + HOUR + dedupHorizonMs);
      }
      perEvent.push(offset, event.event_id, event.post_id, 3 + si);
      for (const w of windows) {
        const start = Math.floor(event.timestamp / w.sizeMs) * w.sizeMs;
        const key = regionWindowKey(r, windowId(w.name, start));
        let wi = winIdx.get(key);
        if (wi === undefined) {
          wi = winKeys.length + 1;
          winIdx.set(key, wi);
          winKeys.push(key);
          winExpire.push(start + w.sizeMs + w.ttlMs);
        }
        perEvent.push(wi); // relative to the window keys; the script adds the offset
      }
    }
    const seenKeys = [...seenIdx.keys()].map((h) => regionSeenKey(r, h));
    const keys = [regionOffsetsKey(r), regionTopKey(r), regionBoundedKey(r), ...seenKeys, ...winKeys];
    const args = [partition, windows.length, boundedK, seenKeys.length, winKeys.length, ...seenExpire, ...winExpire, ...perEvent];
    const [applied, duplicates, fenced, fence, kth] = await this.redis.hhRegionFlush(keys.length, ...keys, ...args);
    this.kthScore = Number(kth);
    const result = { applied, duplicates, fenced, fence, kthScore: this.kthScore };
    if (this.metrics) {
      this.metrics.applied.inc(applied);
      this.metrics.deduplicated.inc(duplicates);
      this.metrics.fenced.inc(fenced);
      this.metrics.flushSeconds.observe(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    return result;
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
