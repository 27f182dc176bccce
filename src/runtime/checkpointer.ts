/**
 * Runs a worker process's checkpoints on a thread of their own (checkpoint-thread.ts), when
 * HH_CHECKPOINT_ON=thread; the same two calls as RegionRecord's.
 *
 * Writing a cut is CPU-heavy in JavaScript: reading its entries (up to 60,000 in one batch),
 * encoding them for Cassandra, and the garbage of both. On the worker's event loop that held
 * the loop for 0.5–1 s at a time with the row-per-post record (a CPU profile's longest busy
 * stretches; the packed record of migration 006 encodes about a third of that), and every
 * flush, fetch and API answer of the worker waits. The thread shares the cores, not the loop. A
 * thread that dies is started again by the next request; the requests it had fail (the
 * changes stay marked in Redis and a later round writes them; a region whose checkpoint
 * it died in waits for its lock's lease, as after a killed process).
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

export type CheckpointRequest = { id: number; op: 'round'; intervalMs: number } | { id: number; op: 'all' } | { id: number; op: 'close' };
export type CheckpointReply = { id: number; ok: true; written: number | null; lastOk: number | null } | { id: number; ok: false; message: string };
type Op = { op: 'round'; intervalMs: number } | { op: 'all' } | { op: 'close' };
interface Outcome {
  written: number | null;
  lastOk: number | null;
}

/** The thread's entry, loaded through tsx when this file is TypeScript (the runtime runs from source). */
function threadCode(): string {
  const entry = path.join(__dirname, `checkpoint-thread${path.extname(__filename)}`);
  return `${entry.endsWith('.ts') ? "require('tsx/cjs');" : ''} require(${JSON.stringify(entry)});`;
}

export class Checkpointer {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Outcome) => void; reject: (e: Error) => void }>();

  /** `env`: the thread's environment (a copy of the process's by default). */
  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  /** The cluster's timed round (RegionRecord.checkpointRound), on the thread. */
  checkpointRound(intervalMs: number): Promise<Outcome> {
    return this.request({ op: 'round', intervalMs });
  }

  /** Every changed region at once (RegionRecord.checkpointAll), on the thread. */
  async checkpointAll(): Promise<number> {
    return (await this.request({ op: 'all' })).written ?? 0;
  }

  /** Closes the thread's connections and ends it, after the requests made before. */
  async close(): Promise<void> {
    const w = this.worker;
    if (!w) return;
    const exited = new Promise<void>((r) => w.once('exit', () => r()));
    await this.request({ op: 'close' }).catch(() => undefined);
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000).unref())]);
    await w.terminate();
  }

  private request(op: Op): Promise<Outcome> {
    const w = this.thread();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.postMessage({ ...op, id } as CheckpointRequest);
    });
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(threadCode(), { eval: true, env: this.env });
    w.on('message', (m: CheckpointReply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve({ written: m.written, lastOk: m.lastOk });
      else p.reject(new Error(m.message));
    });
    const gone = (why: Error) => {
      if (this.worker !== w) return;
      this.worker = null;
      for (const p of this.pending.values()) p.reject(why);
      this.pending.clear();
    };
    w.on('error', gone);
    w.on('exit', (code) => gone(new Error(`the checkpoint thread exited (${code})`)));
    this.worker = w;
    return w;
  }
}
