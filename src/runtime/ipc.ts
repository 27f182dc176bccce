/**
 * What a worker process asks of the cluster's primary, over the cluster IPC channel:
 * - the metrics of every worker (prom-client's AggregatorRegistry), for GET /metrics;
 * - the ingest state of every worker slot, and whether each lifecycle process runs, for GET /healthz.
 * - its ingest member's turn to join the consumer group (join-gate.ts), before it connects.
 * And what it tells the primary: its ingest member's state, whenever it changes.
 */
import cluster from 'node:cluster';
import { randomUUID } from 'node:crypto';
import { AggregatorRegistry } from 'prom-client';
import type { IngestState } from '../ingest/consumer';
import { lineLogger } from '../log';
import { JoinGate } from './join-gate';

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

type Request = { type: 'hh:metrics' | 'hh:slots' | 'hh:join'; id: string };
type Reply = { type: 'hh:reply'; id: string; body?: unknown; error?: string };
type StateReport = { type: 'hh:ingest-state'; state: IngestState };

/** In a worker: asks the primary, resolves with its answer (within `timeoutMs`). */
function ask<T>(type: Request['type'], timeoutMs = 5000): Promise<T> {
  if (!process.send) return Promise.reject(new Error('this needs the cluster runtime (no primary to ask)'));
  const id = randomUUID();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      process.off('message', onMessage);
      reject(new Error(`the primary did not answer within ${timeoutMs / 1000} s`));
    }, timeoutMs);
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

/**
 * In a worker: resolves when its ingest member may join the consumer group (the primary's
 * JoinGate: together with the runtime's other slots, or once they were waited for
 * `waitMs`). Rejects if the primary does not answer by a while after that.
 */
export const awaitJoinTurn = (waitMs: number): Promise<void> => ask('hh:join', waitMs + 5000);

/** In a worker: tells the primary what its ingest member is doing. */
export function reportIngestState(state: IngestState): void {
  process.send?.({ type: 'hh:ingest-state', state } satisfies StateReport);
}

/**
 * In the primary: answers the workers' requests; `slots()` lists the slots and their
 * processes. With `join`, the ingest slots 1..join.slots join the consumer group together
 * (join-gate.ts). Returns a stop for the gate's timer.
 */
export function servePrimary(
  slots: () => { slot: number; pid: number | null; workerId: number | null; lifecycle?: boolean }[],
  join?: { slots: number; waitMs: number },
): () => void {
  const aggregator = new AggregatorRegistry();
  const states = new Map<number, { state: IngestState; at: number }>(); // by cluster worker id
  const ingestSlot = (workerId: number) => slots().find((s) => !s.lifecycle && s.workerId === workerId)?.slot;
  const gate = join ? new JoinGate({ ...join, log }) : undefined;
  /** Which worker each slot's waiting ask came from. */
  const askedBy = new Map<number, number>();
  cluster.on('exit', (w) => {
    states.delete(w.id);
    for (const [slot, id] of askedBy) {
      if (id !== w.id) continue;
      askedBy.delete(slot);
      gate?.left(slot);
    }
  });
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
    if (msg?.type !== 'hh:metrics' && msg?.type !== 'hh:slots' && msg?.type !== 'hh:join') return;
    // The asker may have died meanwhile: a send to a closed channel reports to the callback
    // (without one it is an 'error' event on the Worker, which would end the primary).
    const send = (r: Reply) => {
      if (worker.isConnected()) worker.send(r, undefined, {}, () => undefined);
    };
    const reply = (body: unknown) => send({ type: 'hh:reply', id: msg.id, body });
    const fail = (e: Error) => send({ type: 'hh:reply', id: msg.id, error: e.message });
    if (msg.type === 'hh:join') {
      const slot = ingestSlot(worker.id);
      if (!gate || slot === undefined) return reply(null); // no gate, or not an ingest slot: at once
      askedBy.set(slot, worker.id);
      gate.arrive(slot, () => {
        if (askedBy.get(slot) === worker.id) askedBy.delete(slot);
        reply(null);
      });
      return;
    }
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
  return () => gate?.close();
}
