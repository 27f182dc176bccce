/** The window lifecycle's activities: snapshots (store/window-snapshots.ts), sessions, and the running windows a coordinator takes on. */
import type { Redis } from 'ioredis';
import type { Client as CassandraClient } from 'cassandra-driver';
import type { Client as TemporalClient } from '@temporalio/client';
import type { SessionSpec } from '../config';
import { sealSessions, type SealedSession } from '../store/sessions';
import { windowStore, type WindowSnapshot } from '../store/window-snapshots';
import { SA_WINDOW_SPEC, SA_WINDOW_START, SA_WINDOW_STATE } from '../workflows/definitions';
import { missing } from './errors';
import { heartbeat } from './heartbeat';
import { regionUnrolledKey, regionWindowKey } from '../keys';
import { rolledWindow, type RollPlan } from '../store/window-roll';

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

export interface WindowActivityDeps {
  redis: Redis;
  /** Window snapshots live in Cassandra. */
  cassandra?: CassandraClient;
  keyspace?: string;
  /** Temporal's visibility (a coordinator that starts afresh finds the windows still running). */
  temporal?: TemporalClient;
  /** The specs rolled up from the finest one (store/window-roll.ts rollPlan of the ingest's windows); none when absent. */
  roll?: RollPlan | null;
}

export function windowActivities({ redis, cassandra, keyspace, temporal, roll = null }: WindowActivityDeps) {
  const store = cassandra && keyspace ? windowStore(redis, cassandra, keyspace, roll) : undefined;
  const snapshots = (activity: string) => store ?? missing(activity, 'Cassandra');
  return {
    /**
     * Writes the window's current counts to Cassandra; returns its size and top 10. Beats per
     * page. `final`: the FINAL snapshot (flushes stop writing to the window first).
     */
    persistWindow: ({ region, spec, start, final }: { region: string; spec: string; start: number; final?: boolean }): Promise<WindowSnapshot> =>
      snapshots('persistWindow').persistWindow(region, spec, start, heartbeat(), final === true),
    /** Rebuilds the window's Redis key from its persisted snapshot (recompute). Beats per page. */
    restoreWindow: ({ region, id, expireAt }: { region: string; id: string; expireAt: number }): Promise<WindowSnapshot> =>
      snapshots('restoreWindow').restoreWindow(region, id, expireAt, heartbeat()),
    /** The window's TTL passed: its Redis key goes. */
    expireWindow: ({ region, id }: { region: string; id: string }): Promise<void> => snapshots('expireWindow').expireWindow(region, id),
    /** Sums a sliding window's panes into its key. Beats per page. */
    assembleSliding: (a: { region: string; id: string; pane: string; start: number; sizeMs: number; slideMs: number; expireAt: number }): Promise<number> =>
      snapshots('assembleSliding').assembleSliding(a.region, a.id, a.pane, a.start, a.sizeMs, a.slideMs, a.expireAt, heartbeat()),

    /** Seals the region's sessions the watermark passed; returns every sealed one after `after`. */
    sealSessions: ({ region, spec, watermark, after }: { region: string; spec: SessionSpec; watermark: number; after: number }): Promise<SealedSession[]> =>
      sealSessions(redis, region, spec, watermark, after),

    /**
     * Of the region's window key ids (`<spec>:<start>`), those whose key holds counts now (one
     * pipelined EXISTS each): a window older than its coordinator's first gets a workflow only
     * if events were counted into it (one event with an old timestamp, late for every window,
     * starts none).
     */
    async countedWindows({ region, ids }: { region: string; ids: string[] }): Promise<string[]> {
      // A rolled spec's window also holds counts while only its children not yet rolled do.
      const p = redis.pipeline();
      for (const id of ids) {
        p.exists(regionWindowKey(region, id));
        const w = rolledWindow(roll, id);
        if (w && roll) p.zcount(regionUnrolledKey(region, roll.child.name), ...w.children);
        else p.echo('0');
      }
      const replies = ids.length ? (await p.exec())! : [];
      return ids.filter((_, i) => {
        const [err, n] = replies[2 * i];
        const [err2, m] = replies[2 * i + 1];
        if (err ?? err2) throw err ?? err2;
        return n === 1 || Number(m) > 0;
      });
    },

    /** The region's window workflows still running (visibility), for a coordinator starting without state. */
    async runningWindows({ region }: { region: string }): Promise<RunningWindow[]> {
      if (!temporal) missing('runningWindows', 'a Temporal client');
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
  };
}
