/**
 * What a worker process asks of the cluster's primary, over the cluster IPC channel:
 * - the metrics of every worker (prom-client's AggregatorRegistry), for GET /metrics;
 * - the ingest state of every worker slot, and whether each lifecycle process runs, for GET /healthz.
 * And what it tells the primary: its ingest member's state, whenever it changes.
 */
import cluster from 'node:cluster';
import { randomUUID } from 'node:crypto';
import { AggregatorRegistry } from 'prom-client';
import type { IngestState } from '../ingest/consumer';
import { lineLogger } from '../log';

const log = lineLogger('cluster');

/** One worker slot (or lifecycle process) as the primary sees it. */
export interface SlotStatus {
  slot: number;
  /** A lifecycle process (numbered in `slot`; it has no ingest) rather than an ingest slot. */
  lifecycle?: boolean;
  /** PID of the slot's live process, null while it is being restarted. */
  pid: number | null;
  /** The slot's ingest member, as last reported (null: none reported by this process yet). */
  ingest: IngestState | null;
  /** When that report arrived (ms). */
  reportedAt: number | null;
}

type Request = { type: 'hh:metrics' | 'hh:slots'; id: string };
type Reply = { type: 'hh:reply'; id: string; body?: unknown; error?: string };
type StateReport = { type: 'hh:ingest-state'; state: IngestState };

/** In a worker: asks the primary, resolves with its answer (5 s at most). */
function ask<T>(type: Request['type']): Promise<T> {
  if (!process.send) return Promise.reject(new Error('this needs the cluster runtime (no primary to ask)'));
  const id = randomUUID();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      process.off('message', onMessage);
      reject(new Error('the primary did not answer within 5 s'));
    }, 5000);
    const onMessage = (m: unknown) => {
      const r = m as Reply;
      if (r?.type !== 'hh:reply' || r.id !== id) return;
      clearTimeout(timer);
      process.off('message', onMessage);
      if (r.error !== undefined) reject(new Error(r.error));
      else resolve(r.body as T);
    };
    process.on('message', onMessage);
    process.send!({ type, id } satisfies Request);
  });
}

/** In a worker: the cluster's aggregated metrics. */
export const requestClusterMetrics = (): Promise<{ contentType: string; body: string }> => ask('hh:metrics');

/** In a worker: every slot's process and ingest member, then every lifecycle process. */
export const requestSlots = (): Promise<SlotStatus[]> => ask('hh:slots');

/** In a worker: tells the primary what its ingest member is doing. */
export function reportIngestState(state: IngestState): void {
  process.send?.({ type: 'hh:ingest-state', state } satisfies StateReport);
}

/** In the primary: answers the workers' requests; `slots()` lists the slots and their processes. */
export function servePrimary(slots: () => { slot: number; pid: number | null; workerId: number | null; lifecycle?: boolean }[]): void {
  const aggregator = new AggregatorRegistry();
  const states = new Map<number, { state: IngestState; at: number }>(); // by cluster worker id
  cluster.on('exit', (w) => states.delete(w.id));
  // The aggregator asks every worker for its metrics without a callback: a send to one that
  // just died (killed, not yet reaped) is an 'error' event on its Worker (EPIPE), which would
  // end the primary and every process with it. Its exit restarts it; the error is logged.
  cluster.on('fork', (w) => w.on('error', (e: Error) => log(`worker ${w.id} (pid ${w.process.pid}): its IPC channel failed: ${e.message}`)));
  cluster.on('message', (worker, m: unknown) => {
    const msg = m as Request | StateReport;
    if (msg?.type === 'hh:ingest-state') {
      states.set(worker.id, { state: msg.state, at: Date.now() });
      return;
    }
    if (msg?.type !== 'hh:metrics' && msg?.type !== 'hh:slots') return;
    // The asker may have died meanwhile: a send to a closed channel reports to the callback
    // (without one it is an 'error' event on the Worker, which would end the primary).
    const send = (r: Reply) => {
      if (worker.isConnected()) worker.send(r, undefined, {}, () => undefined);
    };
    const reply = (body: unknown) => send({ type: 'hh:reply', id: msg.id, body });
    const fail = (e: Error) => send({ type: 'hh:reply', id: msg.id, error: e.message });
    if (msg.type === 'hh:metrics') {
      aggregator.clusterMetrics().then((body) => reply({ contentType: aggregator.contentType, body }), fail);
      return;
    }
    reply(
      slots().map(({ slot, pid, workerId, lifecycle }): SlotStatus => {
        const s = workerId === null ? undefined : states.get(workerId);
        return { slot, pid, ingest: s?.state ?? null, reportedAt: s?.at ?? null, ...(lifecycle ? { lifecycle } : {}) };
      }),
    );
  });
}
