/**
 * Activities: all I/O the workflows need, built by a factory from injected clients so
 * each one can be tested alone.
 */
import { Context } from '@temporalio/activity';
import type { Redis } from 'ioredis';
import type { Client } from 'cassandra-driver';
import type { Client as TemporalClient } from '@temporalio/client';
import { createWindowActivities } from './windows';
import { mergeChanged, type GlobalMergeReport } from './global-merge';
import type { SessionSpec } from '../config';
import { sealSessions, type SealedSession } from '../actors/region-actor';
import { regionTopKey } from '../keys';
import { SA_WINDOW_SPEC, SA_WINDOW_START, SA_WINDOW_STATE } from '../workflows/definitions';
import { runIngest, type IngestDeps, type IngestProgress } from '../ingest/consumer';
import { fromWithScores, type RankedCount } from '../ranking';

export interface ActivityDeps {
  redis: Redis;
  /** The record (window snapshots); the window activities need it. */
  cassandra?: Client;
  keyspace?: string;
  /** Temporal's visibility (a coordinator that starts afresh finds the windows still running). */
  temporal?: TemporalClient;
  /** The process's hot-path parts; only the ingest worker of a process needs them. */
  ingest?: IngestDeps & {
    /** Aborts when the process shuts down, so the ingest drains and returns. */
    shutdown: AbortSignal;
  };
}

export type { RankedCount as RankedPost } from '../ranking';

function missing(name: string): never {
  throw new Error(`activity registered without ${name}`);
}

/** A window workflow still running, as its search attributes describe it. */
export interface RunningWindow {
  id: string;
  spec: string;
  start: number;
  state: string;
}

/** A visibility query's string literal (Temporal's list filter has no escapes: quotes of the other kind). */
function literal(s: string): string | undefined {
  if (!s.includes('"')) return `"${s}"`;
  if (!s.includes("'")) return `'${s}'`;
  return undefined;
}

export function createActivities({ redis, ingest, cassandra, keyspace, temporal }: ActivityDeps) {
  const windows = cassandra && keyspace ? createWindowActivities(redis, cassandra, keyspace) : undefined;
  return {
    persistWindow: (region: string, spec: string, start: number) => (windows ?? missing('Cassandra')).persistWindow(region, spec, start),
    restoreWindow: (region: string, id: string, expireAt: number) => (windows ?? missing('Cassandra')).restoreWindow(region, id, expireAt),
    expireWindow: (region: string, id: string) => (windows ?? missing('Cassandra')).expireWindow(region, id),
    assembleSliding: (region: string, id: string, pane: string, start: number, sizeMs: number, slideMs: number, expireAt: number) =>
      (windows ?? missing('Cassandra')).assembleSliding(region, id, pane, start, sizeMs, slideMs, expireAt),

    /** Seals the region's sessions the watermark passed; returns every sealed one after `after`. */
    sealSessions: (region: string, spec: SessionSpec, watermark: number, after: number): Promise<SealedSession[]> =>
      sealSessions(redis, region, spec, watermark, after),

    /** The region's window workflows still running (visibility), for a coordinator starting without state. */
    async runningWindows(region: string): Promise<RunningWindow[]> {
      if (!temporal) missing('a Temporal client');
      const r = literal(region);
      if (r === undefined) return []; // a region id with both kinds of quotes cannot be filtered on
      const out: RunningWindow[] = [];
      for await (const wf of temporal.workflow.list({ query: `WorkflowType = "windowWorkflow" AND ExecutionStatus = "Running" AND Region = ${r}` })) {
        const sa = wf.typedSearchAttributes;
        const start = sa.get(SA_WINDOW_START);
        const spec = sa.get(SA_WINDOW_SPEC);
        if (start === undefined || spec === undefined) continue;
        out.push({ id: wf.workflowId, spec, start: start.getTime(), state: sa.get(SA_WINDOW_STATE) ?? 'OPEN' });
      }
      return out;
    },

    /** Merges every key family changed since the last merge into its global Top-K key (exact, TPUT). */
    mergeGlobal: (k: number): Promise<GlobalMergeReport> => mergeChanged(redis, k),

    /** The region's top `k` posts from its live leaderboard, highest count first. */
    async readTopK(region: string, k: number): Promise<RankedCount[]> {
      return fromWithScores(await redis.zrevrange(regionTopKey(region), 0, k - 1, 'WITHSCORES'));
    },

    /**
     * Long-running: this process's Kafka consumer-group member. Heartbeats its progress;
     * returns when the process shuts down (drained), throws if the consumer crashes (the
     * supervising workflow's retry policy restarts it). Cancellation also drains it.
     */
    async ingest(): Promise<IngestProgress> {
      if (!ingest) throw new Error('ingest activity registered without its dependencies');
      const ctx = Context.current();
      const stop = new AbortController();
      const onShutdown = () => stop.abort();
      ingest.shutdown.addEventListener('abort', onShutdown, { once: true });
      ctx.cancelled.catch(() => stop.abort());
      let progress: IngestProgress = { batches: 0, consumed: 0, deadLettered: 0 };
      ctx.heartbeat(progress);
      const beat = setInterval(() => ctx.heartbeat(progress), 2_000);
      try {
        return await runIngest({ ...ingest, run: ctx.info.workflowExecution?.runId }, stop.signal, (p) => (progress = p));
      } finally {
        clearInterval(beat);
        ingest.shutdown.removeEventListener('abort', onShutdown);
      }
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
