/**
 * The cluster runtime's primary: bundles the workflow code once (workflow-bundle.ts), forks
 * N ingest worker processes (slots 1..N), A API processes and L lifecycle processes,
 * restarts one whose process died (with a back-off if it keeps dying), aggregates metrics,
 * and on SIGTERM/SIGINT asks every process to drain, waiting for them before exiting. Only
 * the API processes listen on the API port (with A = 0 the workers do); only the lifecycle
 * processes run the workflows and the window and merge activities (with L = 0 the workers do).
 */
import { lineLogger } from '../log';
import cluster, { type Worker as ClusterWorker } from 'node:cluster';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { servePrimary } from './ipc';
import { workerParts } from './parts';
import { WORKFLOW_BUNDLE_ENV, bundleInChild, bundlePathFor, removeStaleBundles } from './workflow-bundle';

const log = lineLogger('cluster');

export interface ClusterOptions {
  workers: number;
  /** Processes serving only the API (0: the workers serve it). */
  apiProcesses: number;
  /** The API processes' nice value (0: as the workers). */
  apiNice?: number;
  /** Processes running only the workflows and their window and merge activities (0: the workers do). */
  lifecycleProcesses?: number;
  /** Each worker writes a V8 CPU profile here when it exits. */
  profileDir?: string;
  /** Each worker's V8 old-space limit in MB (0 = V8's default). */
  heapMb?: number;
  /** The V8 young-generation semi-space in MB of the workers and API processes (0 = V8's default). */
  semiSpaceMb?: number;
  /** The same for the lifecycle processes (0 = V8's default). */
  lifecycleSemiSpaceMb?: number;
  /** The longest the first ingest member to start waits for the others before it joins the group (join-gate.ts; 0: none waits). */
  joinWaitMs?: number;
  /** Extra environment for the workers. */
  env?: NodeJS.ProcessEnv;
}

/** Sets a process's nice value; says what was done, or why not (a negative value needs privilege). */
export function setNice(pid: number, nice: number): string {
  try {
    os.setPriority(pid, nice);
    return `nice ${nice}`;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { info?: { code?: string } };
    return `nice ${nice} not set (${err.info?.code ?? err.code ?? err.message}): runs at the workers' priority`;
  }
}

/** The Node flags every forked member (worker or API process) starts with: the primary's own, then the V8 heap's and the profiler's. */
export function workerExecArgv(opts: Pick<ClusterOptions, 'heapMb' | 'semiSpaceMb' | 'profileDir'>, base: readonly string[]): string[] {
  return [
    ...base,
    ...(opts.heapMb ? [`--max-old-space-size=${opts.heapMb}`] : []),
    ...(opts.semiSpaceMb ? [`--max-semi-space-size=${opts.semiSpaceMb}`] : []),
    ...(opts.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.profileDir}`] : []),
  ];
}

export async function runPrimary(opts: ClusterOptions): Promise<{ stop: () => Promise<void> }> {
  removeStaleBundles();
  const bundle = bundlePathFor(process.pid);
  const built = await bundleInChild(bundle);
  log(`workflow code bundled once for every worker: ${(built.bytes / 2 ** 20).toFixed(2)} MiB in ${built.ms} ms (${bundle})`);
  const exec = path.join(__dirname, 'worker-process') + path.extname(__filename);
  const memberArgv = workerExecArgv(opts, process.execArgv);
  const lifecycleArgv = workerExecArgv({ ...opts, semiSpaceMb: opts.lifecycleSemiSpaceMb }, process.execArgv);
  const bySlot = new Map<number, ClusterWorker>();
  const apis = new Map<number, ClusterWorker>();
  const lifecycles = new Map<number, ClusterWorker>();
  const closeGate = servePrimary(
    () => [
      ...Array.from({ length: opts.workers }, (_, i) => {
        const w = bySlot.get(i + 1);
        return { slot: i + 1, pid: w?.process.pid ?? null, workerId: w?.id ?? null };
      }),
      ...Array.from({ length: opts.lifecycleProcesses ?? 0 }, (_, i) => {
        const w = lifecycles.get(i + 1);
        return { slot: i + 1, pid: w?.process.pid ?? null, workerId: w?.id ?? null, lifecycle: true };
      }),
    ],
    opts.joinWaitMs ? { slots: opts.workers, waitMs: opts.joinWaitMs } : undefined,
  );
  const recentDeaths = new Map<string, number[]>();
  let stopping = false;

  /** Forks a member (an ingest slot, an API or a lifecycle process) and forks it again whenever it dies. */
  const fork = (name: string, n: number, members: Map<number, ClusterWorker>, env: NodeJS.ProcessEnv, nice = 0) => {
    // The settings apply to the next fork: each member with its own flags.
    cluster.setupPrimary({ exec, execArgv: members === lifecycles ? lifecycleArgv : memberArgv });
    const w = cluster.fork({ ...opts.env, ...env, [WORKFLOW_BUNDLE_ENV]: bundle });
    members.set(n, w);
    log(`${name} ${n} started, pid ${w.process.pid}${nice === 0 ? '' : `; ${setNice(w.process.pid!, nice)}`}`);
    w.on('exit', (code, signal) => {
      members.delete(n);
      if (stopping) return;
      const now = Date.now();
      const key = `${name} ${n}`;
      const deaths = (recentDeaths.get(key) ?? []).filter((t) => now - t < 60_000);
      deaths.push(now);
      recentDeaths.set(key, deaths);
      const delay = Math.min(30_000, 500 * 2 ** (deaths.length - 1));
      log(`${name} ${n} (pid ${w.process.pid}) died (${signal ?? `code ${code}`}); restarting in ${delay} ms`);
      setTimeout(() => !stopping && fork(name, n, members, env, nice), delay);
    });
  };
  const workerRole = workerParts(opts).join(',');
  for (let slot = 1; slot <= opts.workers; slot++) fork('worker slot', slot, bySlot, { HH_WORKER_SLOT: String(slot), HH_PROCESS_ROLE: workerRole });
  for (let n = 1; n <= opts.apiProcesses; n++) fork('api process', n, apis, { HH_PROCESS_ROLE: 'api' }, opts.apiNice ?? 0);
  for (let n = 1; n <= (opts.lifecycleProcesses ?? 0); n++) fork('lifecycle process', n, lifecycles, { HH_PROCESS_ROLE: 'lifecycle' });

  const stop = async () => {
    if (stopping) return;
    stopping = true;
    closeGate();
    log('stopping: asking workers to drain');
    const exits = [...bySlot.values(), ...apis.values(), ...lifecycles.values()].map(
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
    fs.rmSync(bundle, { force: true });
    log('all workers stopped');
  };
  return { stop };
}
