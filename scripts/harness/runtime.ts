/** Starts the real cluster runtime (src/main.ts --no-demo) as a child process with its own names. */
import { temporalClient } from '../../src/clients';
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import type { Admin } from 'kafkajs';
import type { Redis } from 'ioredis';
import { EPOCH_KEY, appliedKey } from '../../src/keys';
import { loadConfig, type Config } from '../../src/config';
import { supervisorId } from '../../src/runtime/ids';
import { grantPipelineAcls, pipelineNames, revokePipelineAcls, type PipelineNames } from '../../src/bootstrap/kafka';
import { membersPartitions } from '../../src/ingest/assigner';
import { coordinatorWorkflowId, globalMergeWorkflowId } from '../../src/workflows/definitions';

export interface Runtime {
  cfg: Config;
  env: NodeJS.ProcessEnv;
  api: string;
  proc: ChildProcess;
  /** PIDs of live worker processes by slot, from the primary's log. */
  workers: Map<number, number>;
  /** PIDs of live API processes by number, from the primary's log. */
  apis: Map<number, number>;
  /** PIDs of live lifecycle processes (the workflows) by number, from the primary's log. */
  lifecycles: Map<number, number>;
  output: string[];
  stop(): Promise<void>;
}

const ROOT = path.join(__dirname, '..', '..');

/** The pipelines (topics, group) this process granted Kafka ACLs for, by their group. */
const granted = new Map<string, PipelineNames>();

/** Revokes the ACLs startRuntime granted (a suite's tearDown). */
export async function revokeGrantedAcls(base: Config): Promise<void> {
  for (const [group, names] of granted) {
    await revokePipelineAcls(base, names).catch(() => undefined);
    granted.delete(group);
  }
}

/** The runtimes this process started and that have not exited (stopped on an interrupt). */
const live = new Set<ChildProcess>();

/** SIGTERM (a drain), then SIGKILL if it has not exited after `graceMs`; resolves once it exited. */
async function stopChild(proc: ChildProcess, graceMs = Infinity): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const timer = Number.isFinite(graceMs) ? setTimeout(() => proc.kill('SIGKILL'), graceMs) : undefined;
  await exited;
  clearTimeout(timer);
}

/** Stops every runtime this process started that is still running (an interrupted bench). */
export async function stopStartedRuntimes(graceMs = 30_000): Promise<void> {
  await Promise.all([...live].map((proc) => stopChild(proc, graceMs)));
}

export async function startRuntime(env: NodeJS.ProcessEnv): Promise<Runtime> {
  const fullEnv = { ...process.env, ...env };
  const cfg = loadConfig(fullEnv);
  // The workers may read only what an ACL grants them: this runtime's topics and group.
  const names = pipelineNames(cfg);
  if (!granted.has(names.groupId)) {
    await grantPipelineAcls(cfg, names);
    granted.set(names.groupId, names);
  }
  const proc = spawn(process.execPath, [path.join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs'), path.join(ROOT, 'src', 'main.ts'), '--no-demo'], {
    env: fullEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  const workers = new Map<number, number>();
  const apis = new Map<number, number>();
  const lifecycles = new Map<number, number>();
  let workflowsReady = false;
  const output: string[] = [];
  for (const s of [proc.stdout!, proc.stderr!]) {
    readline.createInterface({ input: s }).on('line', (line) => {
      output.push(line);
      if (output.length > 2000) output.shift();
      const started = /worker slot (\d+) started, pid (\d+)/.exec(line);
      if (started) workers.set(Number(started[1]), Number(started[2]));
      const api = /api process (\d+) started, pid (\d+)/.exec(line);
      if (api) apis.set(Number(api[1]), Number(api[2]));
      const lifecycle = /lifecycle process (\d+) started, pid (\d+)/.exec(line);
      if (lifecycle) lifecycles.set(Number(lifecycle[1]), Number(lifecycle[2]));
      if (/ready: workflows and window activities/.test(line)) workflowsReady = true;
      if (process.env.HH_TEST_VERBOSE) process.stdout.write(`    | ${line}\n`);
    });
  }
  const api = `http://${cfg.host}:${cfg.api.port}`;
  const exited = new Promise<number | null>((r) => proc.once('exit', r));
  const t0 = Date.now();
  /** What the last attempt saw (said when the start times out). */
  let last = 'no answer yet';
  for (;;) {
    const code = await Promise.race([exited.then((c) => ({ c })), new Promise((r) => setTimeout(r, 300))]);
    if (code && typeof code === 'object') throw new Error(`runtime exited (${(code as { c: number }).c}) during start:\n${output.slice(-30).join('\n')}`);
    try {
      const res = await fetch(`${api}/healthz`, { signal: AbortSignal.timeout(2000) });
      const body = await res.text();
      if (res.ok && workers.size >= cfg.runtime.workers && apis.size >= cfg.runtime.apiProcesses && workflowsReady) break;
      last = `GET /healthz ${res.status} ${body.slice(0, 2000)}; worker slots seen ${workers.size}/${cfg.runtime.workers}, API processes ${apis.size}/${cfg.runtime.apiProcesses}, lifecycle processes ${lifecycles.size}/${cfg.runtime.lifecycleProcesses} (workflows ${workflowsReady ? '' : 'not '}ready)`;
    } catch (e) {
      // Not up yet, or refused: the cause says which (connection refused, bad port, ...).
      const cause = (e as Error & { cause?: Error }).cause;
      last = `GET /healthz failed: ${(e as Error).message}${cause?.message ? ` (${cause.message})` : ''}`;
    }
    if (Date.now() - t0 > 120_000) {
      // Not left running: nobody holds it to stop it, and the suites after this one would share the cores with it.
      await stopChild(proc, 30_000);
      throw new Error(`runtime not healthy within 120 s (last: ${last}):\n${output.slice(-30).join('\n')}`);
    }
  }
  return {
    cfg,
    env: fullEnv,
    api,
    proc,
    workers,
    apis,
    lifecycles,
    output,
    stop: () => stopChild(proc),
  };
}

/**
 * Runs a Kafka admin request, asking again while Kafka answers with a retriable error (the
 * group's coordinator moving or loading, as under load or for a new group) until `timeoutMs`.
 */
export async function retryRetriable<T>(request: () => Promise<T>, timeoutMs = 30_000, everyMs = 200): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    try {
      return await request();
    } catch (e) {
      if (!(e as { retriable?: boolean }).retriable || Date.now() - t0 > timeoutMs) throw e;
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
}

/** Records a consumer group has committed on a topic (the sum over its partitions). */
export async function committedRecords(admin: Admin, groupId: string, topic: string): Promise<number> {
  const res = await retryRetriable(() => admin.fetchOffsets({ groupId, topics: [topic] }));
  return (res[0]?.partitions ?? []).reduce((a, p) => a + Math.max(0, Number(p.offset)), 0);
}

/** The consumer group's state and its members' partitions of `topic`, in a line (what a failure to drain needs explained). */
export async function groupState(admin: Admin, groupId: string, topic: string): Promise<string> {
  try {
    const { groups } = await admin.describeGroups([groupId]);
    const g = groups[0];
    if (!g) return 'not found';
    const held = membersPartitions(g, topic);
    const members = g.members.map((m, i) => `${m.clientId}@${m.clientHost} holds [${held[i].join(',')}]`);
    return `${g.state}, protocol ${g.protocol || 'none'}, ${g.members.length} member(s): ${members.join(', ') || 'none'}`;
  } catch (e) {
    return `cannot describe it: ${(e as Error).message}`;
  }
}

/** Waits until the consumer group has committed every record of the topic (the stream is drained). */
export async function waitDrained(admin: Admin, groupId: string, topic: string, timeoutMs = 240_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const left = Math.max(0, timeoutMs - (Date.now() - t0));
    const ends = await retryRetriable(() => admin.fetchTopicOffsets(topic), left, 500);
    const committed = await retryRetriable(() => admin.fetchOffsets({ groupId, topics: [topic] }), left, 500);
    const byPart = new Map(committed[0]?.partitions.map((p) => [p.partition, BigInt(p.offset)]) ?? []);
    const behind = ends.reduce((sum, e) => {
      const c = byPart.get(e.partition) ?? -1n;
      const end = BigInt(e.high);
      return sum + (end === 0n ? 0n : c < 0n ? end : end - c);
    }, 0n);
    if (behind === 0n) return;
    if (Date.now() - t0 > timeoutMs) {
      throw new Error(`not drained after ${timeoutMs / 1000} s: ${behind} records behind; the group: ${await groupState(admin, groupId, topic)}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Terminates the ingest supervisor and global merge workflows a test runtime started. */
export async function terminateSupervisors(cfg: Config): Promise<void> {
  const client = await temporalClient(cfg);
  try {
    for (let slot = 1; slot <= cfg.runtime.workers; slot++) {
      await client.workflow
        .getHandle(supervisorId(cfg.temporal.taskQueue, slot))
        .terminate('test finished')
        .catch(() => undefined);
    }
    await client.workflow
      .getHandle(globalMergeWorkflowId(cfg.temporal.taskQueue))
      .terminate('test finished')
      .catch(() => undefined);
  } finally {
    await client.connection.close();
  }
}

/** Retries `check` until it passes (or rethrows its last failure after `timeoutMs`). */
export async function eventually(check: () => Promise<void>, timeoutMs = 120_000, everyMs = 500): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() - t0 > timeoutMs) throw e;
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
}

/** Waits until a consumer group has no members (an offset reset needs an empty group). */
export async function waitGroupEmpty(admin: Admin, groupId: string, timeoutMs = 90_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const { groups } = await admin.describeGroups([groupId]);
    const g = groups[0];
    if (!g || g.state === 'Empty' || g.state === 'Dead' || g.members.length === 0) return;
    if (Date.now() - t0 > timeoutMs) throw new Error(`group ${groupId} still has ${g.members.length} member(s) (${g.state}) after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Visibility query: the running coordinator and window workflows of `region`, found by id as well as by search attribute. */
const runningOf = (region: string) =>
  `(Region = "${region}" OR WorkflowId = "${coordinatorWorkflowId(region)}" OR WorkflowId STARTS_WITH "window:${region}:") AND ExecutionStatus = "Running"`;

/** Visibility query: the running coordinator and window workflows of every region named `<prefix>...`. */
const runningWithPrefix = (prefix: string) =>
  `(WorkflowId STARTS_WITH "${coordinatorWorkflowId(prefix)}" OR WorkflowId STARTS_WITH "window:${prefix}") AND ExecutionStatus = "Running"`;

/**
 * Terminates the workflows the queries list, again until a pass finds none left: the
 * visibility store lags behind the workflows it lists.
 */
async function terminateListed(cfg: Config, queries: string[]): Promise<void> {
  const client = await temporalClient(cfg);
  try {
    for (let pass = 0; pass < 5; pass++) {
      let terminated = 0;
      for (const query of queries) {
        for await (const wf of client.workflow.list({ query })) {
          await client.workflow
            .getHandle(wf.workflowId)
            .terminate('test finished')
            .then(
              () => terminated++,
              () => undefined,
            );
        }
      }
      if (terminated === 0) return;
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    await client.connection.close();
  }
}

/** Terminates the coordinators and window workflows of the given regions (they outlive a test runtime otherwise). */
export const terminateRegionWorkflows = (cfg: Config, regions: string[]): Promise<void> => terminateListed(cfg, regions.map(runningOf));

/** Terminates the coordinators and window workflows of every region named `<prefix>...` (a bench run's regions). */
export const terminatePrefixWorkflows = (cfg: Config, prefix: string): Promise<void> => terminateListed(cfg, [runningWithPrefix(prefix)]);

/** Ids of the coordinator and window workflows still running for regions named `<prefix>...` (a run's leftovers). */
export async function runningRegionWorkflows(cfg: Config, prefix: string): Promise<string[]> {
  const client = await temporalClient(cfg);
  try {
    const ids: string[] = [];
    for await (const wf of client.workflow.list({ query: runningWithPrefix(prefix) })) ids.push(wf.workflowId);
    return ids;
  } finally {
    await client.connection.close();
  }
}

/**
 * Waits until Redis has applied every record of the topic: each partition's applied mark
 * (hh:applied) reaches its log end. Unlike the group's committed offsets, this cannot be
 * ahead of what Redis holds (after a Redis loss the marks go back with it).
 */
export async function waitApplied(admin: Admin, redis: Redis, topic: string, timeoutMs = 300_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    try {
      const [ends, marks] = await Promise.all([admin.fetchTopicOffsets(topic), redis.hgetall(appliedKey(topic))]);
      const behind = ends.reduce((sum, e) => {
        const m = marks[String(e.partition)] ?? marks['*'];
        const next = m === undefined ? Number(e.low) : Number(m) + 1;
        return sum + Math.max(0, Number(e.high) - next);
      }, 0);
      if (behind === 0 && (await redis.exists(EPOCH_KEY)) === 1) return;
      if (Date.now() - t0 > timeoutMs) throw new Error(`not applied after ${timeoutMs / 1000} s: ${behind} records behind`);
    } catch (e) {
      if (Date.now() - t0 > timeoutMs) throw e;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
