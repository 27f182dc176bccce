/**
 * Carries one ingest member's watermarks onward, at most once per interval: per region whose
 * watermark moved, its trailing timeframes move (in Redis) and, when the move matters to it,
 * its coordinator workflow gets one signal (coalesced: events never pass through Temporal);
 * and each held partition's watermark state goes to Redis, for whichever member holds it
 * after a rebalance.
 *
 * A move matters to a coordinator when a window starts, closes or turns final in it (the
 * watermark crosses a boundary of a spec: see crossesBoundary), or when the report names
 * events behind the watermark it was last told (late ones: their windows may not exist yet);
 * and always for this member's first report of the region, and with session specs (sessions
 * seal at gaps, not on a grid). Between those a signal changed nothing but the coordinator's
 * own record of the watermark, and cost a workflow task: every region every interval, also
 * while idle (an idle region's watermark moves by processing time). The earliest event time
 * of a report not signalled is kept (not taken): the next signal names it, so the coordinator
 * still hears of every event's time, at the latest at the next boundary, and checks their
 * windows as before.
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

/** A window spec as the reporter needs it: windows start every step (its slide, else its size) and end on that grid. */
export interface GridSpec {
  sizeMs: number;
  latenessMs: number;
  slideMs?: number;
}

/**
 * Whether the watermark's move from `from` to `to` makes a coordinator step do something: for
 * some spec it passes a window start or end (a multiple of the spec's step: a window starts,
 * one closes) or an end plus the allowed lateness (one turns final).
 */
export function crossesBoundary(specs: readonly GridSpec[], from: number, to: number): boolean {
  for (const s of specs) {
    const step = s.slideMs ?? s.sizeMs;
    for (const offset of [0, s.latenessMs]) {
      if (Math.floor((to - offset) / step) > Math.floor((from - offset) / step)) return true;
    }
  }
  return false;
}

export class WatermarkReporter {
  private readonly reported = new Map<string, number>();
  /** Per region: the watermark of the last signal this member sent. */
  private readonly told = new Map<string, number>();
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
          const tell = temporal !== undefined && this.matters(region, p);
          if (tell) {
            // Started by name: the workflow's code belongs to the workflow bundle, not to this process.
            await temporal.client.workflow.signalWithStart<typeof regionCoordinatorWorkflow, [RegionProgress]>('regionCoordinatorWorkflow', {
              workflowId: coordinatorWorkflowId(region),
              taskQueue: temporal.taskQueue,
              args: [{ region, specs: this.specs, sessions: this.sessions }],
              signal: progressSignal,
              signalArgs: [{ ...p, specs: this.specs, sessions: this.sessions }],
            });
            this.told.set(region, p.watermark);
            this.deps.metrics?.coordinatorSignals.inc();
          }
          this.reported.set(region, p.watermark);
          if (tell || !temporal) watermarks.taken(region, p.earliest);
        }),
      ]);
    } catch (e) {
      this.deps.metrics?.failures.inc({ operation: 'watermark_report' });
      this.deps.log(`watermark report failed (retrying): ${(e as Error).message}`);
    } finally {
      this.running = false;
    }
  }

  /** Whether the region's coordinator must hear of this report now (see the class comment). */
  private matters(region: string, p: { watermark: number; earliest: number }): boolean {
    const last = this.told.get(region);
    if (last === undefined || this.sessions.length > 0) return true;
    return p.earliest < last || crossesBoundary(this.specs, last, p.watermark);
  }
}
