/**
 * Carries one ingest member's watermarks onward, at most once per interval: per region whose
 * watermark moved, its trailing timeframes move (in Redis) and its coordinator workflow gets
 * one signal (coalesced: events never pass through Temporal); and each held partition's
 * watermark state goes to Redis, for whichever member holds it after a rebalance.
 */
import type { Redis } from 'ioredis';
import type { Client as TemporalClient } from '@temporalio/client';
import type { Config } from '../config';
import { advanceTrailing } from '../store/trailing';
import { watermarksKey } from '../keys';
import type { regionCoordinatorWorkflow } from '../workflows/coordinator';
import { coordinatorWorkflowId, progressSignal, type RegionProgress } from '../workflows/definitions';
import type { Watermarks } from './watermarks';
import type { Metrics } from '../metrics';

export interface ReporterDeps {
  cfg: Config;
  redis: Redis;
  watermarks: Watermarks;
  /** The partitions this member holds now. */
  held: () => Iterable<number>;
  /** Where watermarks are signalled (the region coordinators); without it none are sent. */
  temporal?: { client: TemporalClient; taskQueue: string };
  log: (s: string) => void;
  metrics?: Metrics;
  /** Runs a region's trailing move between its actor's flushes. */
  serialize?: <T>(region: string, fn: () => Promise<T>) => Promise<T>;
}

export class WatermarkReporter {
  private readonly reported = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  private running = false;
  private readonly specs;
  private readonly sessions;

  constructor(private readonly deps: ReporterDeps) {
    const { ingest } = deps.cfg;
    this.specs = [
      ...ingest.windows.map((w) => ({ name: w.name, sizeMs: w.sizeMs, latenessMs: w.latenessMs, ttlMs: w.ttlMs })),
      ...ingest.sliding.map((w) => ({ name: w.name, sizeMs: w.sizeMs, latenessMs: w.latenessMs, ttlMs: w.ttlMs, slideMs: w.slideMs, pane: w.pane })),
    ];
    this.sessions = ingest.sessions.map((sp) => ({ ...sp }));
  }

  start(): void {
    this.timer = setInterval(() => void this.report(), this.deps.cfg.ingest.watermarkReportMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One round; a round still running makes this a no-op. A failure is logged and retried next round. */
  async report(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const { cfg, redis, watermarks, temporal } = this.deps;
    try {
      const due = [...watermarks.regions()].filter(([r, p]) => p.watermark > (this.reported.get(r) ?? -Infinity));
      const snaps = [...this.deps.held()].flatMap((p) => {
        const snap = watermarks.snapshot(p);
        return snap ? [String(p), JSON.stringify(snap)] : [];
      });
      await Promise.all([
        snaps.length ? redis.hset(watermarksKey(cfg.kafka.topic), ...snaps) : undefined,
        ...due.map(async ([region, p]) => {
          if (cfg.ingest.mode === 'exact') {
            const serialize = this.deps.serialize;
            await advanceTrailing(redis, region, cfg.ingest.windows, p.watermark, serialize ? { serialize: (fn) => serialize(region, fn) } : {});
          }
          if (temporal) {
            // Started by name: the workflow's code belongs to the workflow bundle, not to this process.
            await temporal.client.workflow.signalWithStart<typeof regionCoordinatorWorkflow, [RegionProgress]>('regionCoordinatorWorkflow', {
              workflowId: coordinatorWorkflowId(region),
              taskQueue: temporal.taskQueue,
              args: [{ region, specs: this.specs, sessions: this.sessions }],
              signal: progressSignal,
              signalArgs: [{ ...p, specs: this.specs, sessions: this.sessions }],
            });
          }
          this.reported.set(region, p.watermark);
          watermarks.taken(region, p.earliest);
        }),
      ]);
    } catch (e) {
      this.deps.metrics?.failures.inc({ operation: 'watermark_report' });
      this.deps.log(`watermark report failed (retrying): ${(e as Error).message}`);
    } finally {
      this.running = false;
    }
  }
}
