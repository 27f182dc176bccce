/**
 * The cluster runtime's primary: forks N worker processes (slots 1..N), restarts a slot
 * whose process died (with a back-off if it keeps dying), aggregates metrics, and on
 * SIGTERM/SIGINT asks every worker to drain, waiting for them before exiting.
 */
import { lineLogger } from '../log';
import cluster, { type Worker as ClusterWorker } from 'node:cluster';
import * as path from 'node:path';
import { servePrimary } from './ipc';

const log = lineLogger('cluster');

export interface ClusterOptions {
  workers: number;
  /** Each worker writes a V8 CPU profile here when it exits. */
  profileDir?: string;
  /** Each worker's V8 old-space limit in MB (0 = V8's default). */
  heapMb?: number;
  /** Extra environment for the workers. */
  env?: NodeJS.ProcessEnv;
}

export function runPrimary(opts: ClusterOptions): { stop: () => Promise<void> } {
  cluster.setupPrimary({
    exec: path.join(__dirname, 'worker-process') + path.extname(__filename),
    execArgv: [
      ...process.execArgv,
      ...(opts.heapMb ? [`--max-old-space-size=${opts.heapMb}`] : []),
      ...(opts.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.profileDir}`] : []),
    ],
  });
  const bySlot = new Map<number, ClusterWorker>();
  servePrimary(() =>
    Array.from({ length: opts.workers }, (_, i) => {
      const w = bySlot.get(i + 1);
      return { slot: i + 1, pid: w?.process.pid ?? null, workerId: w?.id ?? null };
    }),
  );
  const recentDeaths = new Map<number, number[]>();
  let stopping = false;

  const fork = (slot: number) => {
    const w = cluster.fork({ ...opts.env, HH_WORKER_SLOT: String(slot) });
    bySlot.set(slot, w);
    log(`worker slot ${slot} started, pid ${w.process.pid}`);
    w.on('exit', (code, signal) => {
      bySlot.delete(slot);
      if (stopping) return;
      const now = Date.now();
      const deaths = (recentDeaths.get(slot) ?? []).filter((t) => now - t < 60_000);
      deaths.push(now);
      recentDeaths.set(slot, deaths);
      const delay = Math.min(30_000, 500 * 2 ** (deaths.length - 1));
      log(`worker slot ${slot} (pid ${w.process.pid}) died (${signal ?? `code ${code}`}); restarting in ${delay} ms`);
      setTimeout(() => !stopping && fork(slot), delay);
    });
  };
  for (let slot = 1; slot <= opts.workers; slot++) fork(slot);

  const stop = async () => {
    if (stopping) return;
    stopping = true;
    log('stopping: asking workers to drain');
    const exits = [...bySlot.values()].map(
      (w) =>
        new Promise<void>((resolve) => {
          if (w.isDead()) return resolve();
          const kill = setTimeout(() => w.process.kill('SIGKILL'), 45_000);
          w.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          w.process.kill('SIGTERM');
        }),
    );
    await Promise.all(exits);
    log('all workers stopped');
  };
  return { stop };
}
