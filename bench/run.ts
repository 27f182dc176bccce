/**
 * `npm run bench`: one run, one machine, one pre-loaded topic; every figure beside the
 * limit and the naive approach. Writes bench/results/latest.{json,md,svg} (`--smoke`: a
 * few-second version for CI, written to bench/results/smoke.*).
 *
 *   (a) limit: bare kafkajs consumer decoding JSON          (c) naive: one ZINCRBY round trip per event
 *   (b) ours: the cluster runtime, first to last committed   (c2) naive, pipelined per batch
 *   (d) freshness: produce → visible in GET /top-posts, at half of (b)'s rate
 *   (e) GET /top-posts under autocannon, beside bare Express with a constant body of the same size
 *   (f) memory: Redis used_memory and worker RSS at 10k and at 1M distinct posts
 *   (g) scaling: 1 versus 2 worker processes
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import autocannon from 'autocannon';
import { Partitioners, type Admin, type Producer } from 'kafkajs';
import type { Redis } from 'ioredis';
import { produceLoad } from '../src/load/produce';
import { ensureTopics } from '../src/bootstrap/kafka';
import { migrate } from '../src/bootstrap/cassandra';
import { regionNames, truthTopK, type Truth } from '../src/load/generator';
import { appliedKey, regionDirtyKey, regionInflightKey, regionTopKey, windowId } from '../src/keys';
import { rollPlan } from '../src/store/window-roll';
import { windowTopK } from '../src/store/window-sources';
import { Isolated } from '../scripts/harness/isolated';
import { loadConfig, PROJECT_ROOT } from '../src/config';

const cfg = loadConfig();
import {
  committedRecords,
  startRuntime,
  stopStartedRuntimes,
  runningRegionWorkflows,
  terminatePrefixWorkflows,
  terminateRegionWorkflows,
  terminateSupervisors,
  waitDrained,
  type Runtime,
} from '../scripts/harness/runtime';
import { limitConsumer, naiveConsumer, naivePipelinedConsumer } from './consumers';
import { buildKStreams, runKStreams } from './peers/kstreams';
import { redisUsed as redisMemory, soak } from './soak';
import { setNice } from '../src/runtime/cluster';
import { writeReport, type BenchResults, type FlushSummary } from './report';
import { steadyLoadProcess, type SteadyResult } from './steady-load';

const smoke = process.argv.includes('--smoke');
/** `--soak [--soak-minutes N]`: also the soak of both modes (N minutes each, default 20). */
const soakOn = process.argv.includes('--soak');
const soakMinutes = Number(process.argv[process.argv.indexOf('--soak-minutes') + 1] ?? 20) || 20;
const N = smoke ? 20_000 : 500_000; // pre-loaded events
const NAIVE_EVENTS = smoke ? 5_000 : 100_000; // one round trip per event: a prefix is enough for its rate
const POSTS = 50_000;
const REGIONS = 8;
const FRESH_SECONDS = smoke ? 3 : 20;
const API_SECONDS = smoke ? 2 : 10;
const MEM_EVENTS = smoke ? 20_000 : 1_000_000;
const MEM_DISTINCT = smoke ? [2_000, 20_000] : [10_000, 1_000_000];
const ROOT = path.join(__dirname, '..');
/** BENCH_ONLY=compare,fresh,api,memory,soak (any of them; soak with --soak): a partial run while profiling; (b) always runs, no report is written. */
const only = process.env.BENCH_ONLY?.split(',');
const want = (phase: string) => !only || only.includes(phase);

const log = (s: string) => process.stdout.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (n: number, d = 0) => Math.round(n * 10 ** d) / 10 ** d;

async function topicEnd(admin: Admin, topic: string): Promise<number> {
  return (await admin.fetchTopicOffsets(topic)).reduce((a, p) => a + Number(p.high), 0);
}

/**
 * (b)/(g): a fresh runtime with its own consumer group on the pre-loaded topic; events/s
 * from the first committed batch to the last (a batch is committed only once it is in Redis).
 */
async function measureRuntime(
  iso: Isolated,
  workers: number,
  group: string,
  topic: string,
  env: Record<string, string> = {},
): Promise<{
  rt: Runtime;
  eps: number;
  ms: number;
  cpu_s_per_100k: Record<string, number>;
  redis_us_per_event: Record<string, number>;
  flushes: FlushSummary;
  /** The members' joins of the group during the run (each rebalance is one per member). */
  joins: number;
  /** The primary's join gate: when it let the workers join the group, and why (src/runtime/join-gate.ts). */
  gate: string;
}> {
  const end = await topicEnd(iso.admin, topic);
  // A keyspace of its own (created now): no earlier run's record, and no TRUNCATE (which
  // makes Cassandra snapshot and compact while the next run is measured).
  const keyspace = `${iso.keyspace}_${group.replace(/[^a-z0-9]/gi, '_').toLowerCase()}`.slice(0, 48);
  await migrate(cfg, keyspace);
  keyspaces.push(keyspace);
  await settle();
  await iso.redis.config('RESETSTAT');
  const rt = await startRuntime({
    ...iso.env,
    HH_WORKERS: String(workers),
    HH_KAFKA_GROUP: group,
    HH_KAFKA_TOPIC: topic,
    HH_CASSANDRA_KEYSPACE: keyspace,
    ...env,
  });
  let t0 = 0;
  let c0 = 0;
  let cpu0: Record<string, number> = {};
  const polled = performance.now();
  let last = { c: -1, at: polled };
  for (;;) {
    const c = await committedRecords(iso.admin, group, topic).catch(async (e: unknown) => {
      await rt.stop(); // not left running (and counting) beside the next run
      throw e;
    });
    const now = performance.now();
    if (t0 === 0 && c > 0) [t0, c0, cpu0] = [now, c, cpuSample([...rt.workers.values()], [...rt.lifecycles.values()])];
    if (c !== last.c) last = { c, at: now };
    else if (now - last.at > STALL_MS) {
      // Stuck: say where (the group's offsets against what Redis applied), not wait forever.
      const marks = await iso.redis.hgetall(appliedKey(topic)).catch(() => ({}));
      await rt.stop();
      throw new Error(
        `${group}: the group's committed offsets stayed at ${c.toLocaleString()} of ${end.toLocaleString()} for ${STALL_MS / 1000} s; Redis's applied marks: ${JSON.stringify(marks)}; the runtime's last lines:\n${rt.output.slice(-20).join('\n')}`,
      );
    }
    if (c >= end) {
      const cpu1 = cpuSample([...rt.workers.values()], [...rt.lifecycles.values()]);
      const per = 100_000 / Math.max(1, end - c0);
      const cpu = Object.fromEntries(Object.keys(cpu1).map((k) => [k, round((cpu1[k] - (cpu0[k] ?? 0)) * per, 2)]));
      // A run committed whole by the first sample (a smoke run's few events) has no interval
      // between samples: it is timed from the first poll instead (a lower bound), not as 0 / 0.
      const [from, at] = c0 < end ? [c0, t0] : [0, polled];
      return {
        rt,
        eps: ((end - from) / (now - at)) * 1000,
        ms: now - at,
        cpu_s_per_100k: cpu,
        redis_us_per_event: await redisCommandCost(iso.redis, end),
        flushes: await flushSummary(rt),
        joins: rt.output.filter((l) => l.includes('joined the group')).length,
        gate: rt.output.find((l) => l.includes('may join the group'))?.replace(/^.*"msg":"(.*)"}$/, '$1') ?? 'no gate line',
      };
    }
    await sleep(20);
  }
}

/**
 * How the run's flushes went, from the runtime's own metrics (summed over its workers): how
 * many events a flush held decides what a post costs (a hot post is written once per flush).
 */
async function flushSummary(rt: Runtime): Promise<FlushSummary> {
  const text = await (await fetch(`${rt.api}/metrics`)).text();
  const sum = (name: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith(name) && (l[name.length] === ' ' || l[name.length] === '{'))
      .reduce((a, l) => a + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  const flushes = sum('hh_flush_duration_seconds_count');
  return {
    flushes,
    events_per_flush: round(sum('hh_events_applied_total') / Math.max(1, flushes)),
    script_ms: round((sum('hh_flush_script_seconds_sum') * 1000) / Math.max(1, flushes), 2),
    flush_ms: round((sum('hh_flush_duration_seconds_sum') * 1000) / Math.max(1, flushes), 2),
    backpressure_s: round(sum('hh_backpressure_seconds_total'), 2),
    reads_per_event: round(sum('hh_events_consumed_total') / Math.max(1, sum('hh_events_applied_total')), 3),
  };
}

/** CPU seconds (user + system) a process has used so far; 0 when it is not ours to see. */
function cpuSeconds(pid: number): number {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return 0;
  }
}

/** The machine's CPU ticks so far: all of them, and the hypervisor's steal (time a virtual core wanted to run and was not given). */
function machineTicks(): { total: number; steal: number } {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
    return { total: f.reduce((a, b) => a + b, 0), steal: f[7] };
  } catch {
    return { total: 0, steal: 0 };
  }
}

/** Steal during each phase (%), by phase name: what `withSteal` measured. */
const steal: Record<string, number> = {};

/**
 * Runs one phase and records under `phase` the share of the machine's CPU time (%) the
 * hypervisor took while it ran. Adjacent phases compared with each other (ours against naive)
 * are only comparable when they ran on the same machine: steal says when they did not.
 */
async function withSteal<T>(phase: string, run: () => Promise<T>): Promise<T> {
  const a = machineTicks();
  try {
    return await run();
  } finally {
    const b = machineTicks();
    steal[phase] = b.total > a.total ? round((100 * (b.steal - a.steal)) / (b.total - a.total), 1) : NaN;
  }
}

/** The stack's servers, by the PIDs the stack scripts recorded (absent when another checkout runs them). */
function serverPids(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of ['redis', 'kafka', 'cassandra', 'temporal']) {
    try {
      out[name] = (JSON.parse(fs.readFileSync(path.join(ROOT, '.stack', 'run', `${name}.pid`), 'utf8')) as { pid: number }).pid;
    } catch {
      // not started by this checkout
    }
  }
  return out;
}

/** CPU seconds each component used between two samples: where an ingest run's time went. */
function cpuSample(workers: number[], lifecycles: number[] = []): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, pid] of Object.entries(serverPids())) out[name] = cpuSeconds(pid);
  out.workers = workers.reduce((a, pid) => a + cpuSeconds(pid), 0);
  // The lifecycle process (workflows, window persists, merges), where it runs apart from the workers.
  if (lifecycles.length) out.lifecycle = lifecycles.reduce((a, pid) => a + cpuSeconds(pid), 0);
  // Each worker too: one holding the partitions of more regions than the other does more.
  workers.forEach((pid, i) => (out[`worker${i + 1}`] = cpuSeconds(pid)));
  return out;
}

/** Redis microseconds per event by command (INFO commandstats since the last RESETSTAT), the costliest first. */
async function redisCommandCost(redis: Redis, events: number): Promise<Record<string, number>> {
  const info = await redis.info('commandstats');
  const rows = [...info.matchAll(/^cmdstat_(\w+(?:\|\w+)?):calls=(\d+),usec=(\d+)/gm)].map((m) => [m[1], Number(m[3])] as const);
  return Object.fromEntries(
    rows
      .sort((a, b) => b[1] - a[1])
      .slice(0, 6)
      .map(([cmd, us]) => [cmd, round(us / events, 2)]),
  );
}

/** Keyspaces and topics the runs created (dropped at the end). */
const keyspaces: string[] = [];
const soakTopics: string[] = [];

/** Redis and the region workflows back to empty: the next runtime counts from zero (in a keyspace of its own). */
async function resetState(iso: Isolated, regions: string[]): Promise<void> {
  await iso.redis.flushdb();
  await terminateRegionWorkflows(cfg, regions);
}

/** Waits until the servers are quiet (the previous phase's tail: terminations, compactions), at most 20 s. */
async function settle(): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < 20_000) {
    const a = cpuSample([]);
    await sleep(1000);
    const b = cpuSample([]);
    const busy = Object.keys(b).reduce((sum, k) => sum + (b[k] - (a[k] ?? 0)), 0);
    if (busy < 0.15) return; // under 15 % of a core in all the servers together
  }
}

/** How deep the exactness check reads: the issue asks every region's top 100 to equal the truth. */
const CHECK_K = 100;

/**
 * Every region's all-time top CHECK_K equals the generator's truth; so does its 24h window's
 * (`day`: its id, when the pre-load fell within one day), read as the API reads it (a
 * rolled window: its key plus its minutes not yet rolled in).
 */
async function checkExact(redis: Redis, truth: Truth, day?: string): Promise<boolean> {
  const plan = rollPlan(cfg.ingest.windows, cfg.ingest.mode);
  for (const [region, counts] of Object.entries(truth)) {
    const flat = await redis.zrevrange(regionTopKey(region), 0, CHECK_K - 1, 'WITHSCORES');
    const want = truthTopK(counts, CHECK_K).flatMap((p) => [p.post_id, String(p.view_count)]);
    if (JSON.stringify(flat) !== JSON.stringify(want)) return false;
    if (day) {
      const top = (await windowTopK(redis, region, day, plan, CHECK_K))?.top ?? [];
      if (JSON.stringify(top.flatMap((p) => [p.post_id, String(p.view_count)])) !== JSON.stringify(want)) return false;
    }
  }
  return true;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * The background load of (d), in a process of its own (npm run load): produced in this one,
 * it would keep this event loop busy, and the probes would time this process's delays.
 */
function backgroundLoad(iso: Isolated, topic: string, rate: number, prefix: string) {
  const args = ['--events', String(Math.ceil(rate * (FRESH_SECONDS + 5))), '--regions', String(REGIONS), '--posts', String(POSTS)];
  args.push('--zipf', '1.1', '--seed', '2', '--prefix', prefix, '--topic', topic, '--rate', String(rate), '--metadata', 'no');
  // node --import tsx, not tsx's CLI: the CLI would kill it on SIGTERM instead of letting it finish its sends.
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts', 'load.ts'), ...args], {
    env: { ...process.env, ...iso.env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<{ sent: number; ms: number }>((resolve, reject) =>
    proc.once('exit', (code) => {
      const m = /done: (\d+) events in ([\d.]+) s/.exec(out);
      if (code === 0 && m) resolve({ sent: Number(m[1]), ms: Number(m[2]) * 1000 });
      else reject(new Error(`the background load exited (${code}): ${out.slice(-500)}`));
    }),
  );
  done.catch(() => undefined); // awaited by the caller
  return {
    /** Stops it (SIGTERM: it finishes its sends) and returns what it sent. */
    stop: () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      return done;
    },
    /** Its first progress line (a second of sending). */
    started: new Promise<void>((resolve) => proc.stdout!.once('data', () => resolve())),
    exited: done,
  };
}

/** (d): probes in their own region, one every 100 ms, each polled in the API until counted. */
async function freshness(iso: Isolated, rt: Runtime, topic: string, rate: number, prefix: string) {
  const probeRegion = `${prefix}probe`;
  const background = backgroundLoad(iso, topic, rate, prefix);
  await Promise.race([background.started, background.exited]);
  await sleep(1000); // the load is flowing
  const lat: number[] = [];
  /** Sends probe `i` of a probe region and polls the API until it is counted; the ms that took. */
  const probe = async (region: string, i: number, timeoutMs: number) => {
    const t0 = performance.now();
    await iso.producer.send({
      topic,
      acks: -1,
      messages: [{ key: region, value: JSON.stringify({ event_id: `${region}-${i}`, post_id: 'probe', region_id: region, timestamp: Date.now() }) }],
    });
    for (;;) {
      const res = await fetch(`${rt.api}/top-posts?region=${region}&k=1`);
      if (res.status === 200) {
        const body = (await res.json()) as { top_posts: { view_count: number }[] };
        if ((body.top_posts[0]?.view_count ?? 0) >= i) break;
      } else await res.arrayBuffer();
      if (performance.now() - t0 > timeoutMs) throw new Error(`probe ${region} ${i} not visible after ${timeoutMs / 1000} s`);
      await sleep(2);
    }
    return performance.now() - t0;
  };
  // Four probe loops, each its own region (so its own count), side by side. Each region's first
  // probe is not timed: it waits until the partition is consumed at all (a runtime just
  // restarted may still be joining its consumer group).
  const regions = [1, 2, 3, 4].map((n) => `${probeRegion}${n}`);
  let until = 0;
  const loop = async (region: string) => {
    for (let i = 2; performance.now() < until; i++) {
      lat.push(await probe(region, i, 30_000));
      await sleep(50);
    }
  };
  await Promise.all(regions.map((r) => probe(r, 1, 120_000)))
    .then(() => {
      until = performance.now() + FRESH_SECONDS * 1000;
      return Promise.all(regions.map(loop));
    })
    .catch(async (e: unknown) => {
      await background.stop().catch(() => undefined);
      throw e;
    });
  const produced = await background.stop();
  lat.sort((a, b) => a - b);
  return {
    p50: round(percentile(lat, 50), 1),
    p99: round(percentile(lat, 99), 1),
    max: round(lat[lat.length - 1], 1),
    probes: lat.length,
    rate_eps: round(produced.sent / (produced.ms / 1000)),
    asked_eps: rate,
  };
}

/** An autocannon run; with `pids`, also the CPU those processes spent per request served (µs). */
async function cannon(url: string, opts: { seconds: number; rate?: number; pids?: number[] }) {
  const cpu = () => (opts.pids ?? []).reduce((a, pid) => a + cpuSeconds(pid), 0);
  const c0 = cpu();
  const r = await autocannon({ url, connections: 16, duration: opts.seconds, ...(opts.rate ? { overallRate: opts.rate } : {}) });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${url}: ${r.non2xx} non-2xx answers, ${r.errors} errors`);
  const cpuUs = opts.pids ? { cpu_us_per_request: round(((cpu() - c0) * 1e6) / Math.max(1, r.requests.total)) } : {};
  return { rps: round(r.requests.average), p50_ms: r.latency.p50, p99_ms: r.latency.p99, ...cpuUs };
}

/**
 * Three steady-rate runs (steady-load.ts: evenly spaced requests, latency from when each was
 * due), the URLs taking turns of 250 ms within each run in a shuffled order, so a busy
 * stretch of these shared cores falls on every URL alike; per URL the median run by p99, so
 * one stray stall does not decide it. Each URL gets `seconds` / 2 of each run at `rate`.
 * With `pids`, also the CPU those processes spent per request served (µs).
 */
async function steadyMedians(urls: string[], opts: { seconds: number; rate: number; pids: number[][] }) {
  const runs: (SteadyResult & { cpu_us_per_request: number })[][] = urls.map(() => []);
  const cpu = (u: number) => opts.pids[u].reduce((a, pid) => a + cpuSeconds(pid), 0);
  for (let i = 0; i < 3; i++) {
    const c0 = urls.map((_, u) => cpu(u));
    const results = await steadyLoadProcess(urls, { seconds: Math.max(1, Math.round((opts.seconds / 2) * urls.length)), rate: opts.rate, turnMs: 250 });
    for (const [u, r] of results.entries()) {
      if (r.non2xx > 0 || r.errors > 0) throw new Error(`${urls[u]}: ${r.non2xx} non-2xx answers, ${r.errors} errors`);
      runs[u].push({ ...r, cpu_us_per_request: round(((cpu(u) - c0[u]) * 1e6) / Math.max(1, r.requests)) });
    }
  }
  return runs.map((r) => ({
    ...[...r].sort((a, b) => a.p99_ms - b.p99_ms)[1],
    p99_runs_ms: r.map((x) => x.p99_ms),
    late_send_max_ms: Math.max(...r.map((x) => x.late_send_max_ms)),
  }));
}

/** (e): our API (the runtime's workers) and bare Express (as many workers, constant body of the same size). */
async function api(rt: Runtime, region: string) {
  const url = `${rt.api}/top-posts?region=${region}&k=10`;
  const body = await (await fetch(url)).text();
  const port = rt.cfg.api.port + 1;
  const bare = spawn(process.execPath, [path.join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs'), path.join(__dirname, 'bare-express.ts')], {
    env: { ...process.env, BENCH_PORT: String(port), BENCH_BODY: body, HH_WORKERS: String(rt.cfg.runtime.apiProcesses || rt.cfg.runtime.workers) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // Its serving processes (it prints their pids), and ours: the API processes, else the workers.
  const barePids = await new Promise<number[]>((resolve, reject) => {
    bare.stdout!.on('data', (d: Buffer) => {
      const m = /listening .*pids ([\d,]+)/.exec(d.toString());
      if (m) resolve(m[1].split(',').map(Number));
    });
    bare.once('exit', (c) => reject(new Error(`bare express exited (${c})`)));
  });
  const ourPids = [...(rt.apis.size > 0 ? rt.apis : rt.workers).values()];
  // The same scheduling priority as our API processes (HH_API_NICE), so neither is favoured.
  const nice = rt.apis.size > 0 ? rt.cfg.runtime.apiNice : 0;
  const niced = nice === 0 ? [] : barePids.map((pid) => setNice(pid, nice));
  try {
    const limitUrl = `http://127.0.0.1:${port}/top-posts?region=${region}&k=10`;
    await cannon(url, { seconds: 1 }); // warm-up
    await cannon(limitUrl, { seconds: 1 });
    // Side by side: each of our runs is followed by bare Express's, so whatever else these
    // cores do meanwhile (the runtime's checkpoints and windows after its load) falls on both.
    const ours = await cannon(url, { seconds: API_SECONDS, pids: ourPids });
    const limit = await cannon(limitUrl, { seconds: API_SECONDS, pids: barePids });
    const [at2000, limitAt2000] = await steadyMedians([url, limitUrl], { seconds: API_SECONDS, rate: 2000, pids: [ourPids, barePids] });
    const nices = { ours: ourPids.map((pid) => os.getPriority(pid)), bare: barePids.map((pid) => os.getPriority(pid)), set: niced };
    return { body_bytes: Buffer.byteLength(body), ours, at2000, limit, limitAt2000, nices };
  } finally {
    bare.kill('SIGTERM');
  }
}

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Bytes of the keys matching `pattern` (MEMORY USAGE, sampled exactly). */
async function keyBytes(redis: Redis, pattern: string): Promise<number> {
  let total = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    for (const k of keys) total += Number(await redis.call('MEMORY', 'USAGE', k, 'SAMPLES', '0'));
    cursor = next;
  } while (cursor !== '0');
  return total;
}

const memTopic = (iso: Isolated, distinct: number) => `${iso.id}.mem${distinct}`;

/** A topic just created may not be known to every broker connection yet: retry a few times. */
async function sendRetrying(producer: Producer, topic: string, messages: { key: string; value: string }[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await producer.send({ topic, acks: -1, messages });
      return;
    } catch (e) {
      if (attempt >= 10) throw e;
      await sleep(500);
    }
  }
}

/** (f): the same number of events over `distinct` posts (uniform), through the runtime in `mode`. */
async function memory(iso: Isolated, producer: Producer, distinct: number, mode: 'exact' | 'bounded', prefix: string) {
  const topic = memTopic(iso, distinct);
  const regions = regionNames(REGIONS, prefix);
  const messages: { key: string; value: string }[] = [];
  const t = Date.now();
  // The second run of a distinct count reads the same topic (its own group and prefix of keys).
  const produced = (await topicEnd(iso.admin, topic)) > 0;
  for (let i = 0; i < MEM_EVENTS && !produced; i++) {
    const region = regions[i % REGIONS];
    // Post i mod distinct (a spread permutation): every post appears, MEM_EVENTS / distinct times each.
    const post = `m${(i * 7919) % distinct}`;
    messages.push({ key: region, value: JSON.stringify({ event_id: `${distinct}-${i}`, post_id: post, region_id: region, timestamp: t }) });
    if (messages.length === 5000 || i === MEM_EVENTS - 1) await sendRetrying(producer, topic, messages.splice(0));
  }
  await resetState(iso, regions);
  const before = await redisMemory(iso.redis);
  await iso.redis.config('SET', 'slowlog-max-len', '1024');
  await iso.redis.slowlog('RESET');
  const group = `${iso.id}.memgroup${distinct}.${mode}`;
  // The smoke run's few posts would not fill 1,000 per region: a smaller K shows the bound there too.
  const { rt } = await measureRuntime(iso, 2, group, topic, { HH_TOPK_MODE: mode, ...(smoke ? { HH_TOPK_BOUNDED_K: '100' } : {}) });
  try {
    // Measured once the checkpoints caught up: the changes waiting for one are transient.
    const t0 = Date.now();
    while (Date.now() - t0 < 180_000) {
      const pending = await patient(() => Promise.all(regions.map((r) => iso.redis.exists(regionDirtyKey(r), regionInflightKey(r)))));
      if (pending.every((n) => n === 0)) break;
      await sleep(250);
    }
    await sleep(2500); // and a merge round has run
    const used = (await patient(() => redisMemory(iso.redis))) - before;
    const bytes = (pattern: string) => patient(() => keyBytes(iso.redis, `region:{${prefix}*}:${pattern}`));
    const exactKeys = await bytes('top_k');
    const boundedKeys = await bytes('top_k_bounded');
    const windowKeys = (await bytes('top_k:*')) + (await bytes('pane:*')) + (await bytes('trailing:*'));
    const dedupKeys = await bytes('seen*');
    const rss = [...rt.workers.values()].reduce((a, pid) => a + rssOf(pid), 0);
    const lifecycleRss = [...rt.lifecycles.values()].reduce((a, pid) => a + rssOf(pid), 0);
    // The longest script run while the stream was counted (Redis answers nobody else meanwhile).
    const slow = (await iso.redis.slowlog('GET', 1000)) as [number, number, number, string[]][];
    const scripts = slow.filter((e) => /^eval/i.test(e[3][0])).sort((a, b) => b[2] - a[2]);
    const longestScriptMs = scripts.length ? scripts[0][2] / 1000 : 0;
    // Its name, and for the scripts that take one (trailing.lua, sliding-assemble.lua) the step: the first argument after the keys.
    const longestScript = scripts.length ? scriptCall(scripts[0][3]) : '';
    const nextScripts = scripts.slice(1, 5).map((e) => ({ ms: round(e[2] / 1000), script: scriptCall(e[3]) }));
    const over50 = scripts.filter((e) => e[2] > 50_000).length;
    return {
      mode,
      distinct,
      events: MEM_EVENTS,
      redis_used_bytes: used,
      exact_topk_bytes: exactKeys,
      bounded_topk_bytes: boundedKeys,
      window_bytes: windowKeys,
      dedup_bytes: dedupKeys,
      worker_rss_bytes: rss,
      lifecycle_rss_bytes: lifecycleRss,
      longest_script_ms: round(longestScriptMs),
      longest_script: longestScript,
      next_scripts: nextScripts,
      scripts_over_50ms: over50,
    };
  } finally {
    await rt.stop();
    await terminateSupervisors(rt.cfg);
    await patient(() => resetState(iso, regions));
  }
}

/** The project's Lua scripts by SHA-1 (what EVALSHA names in the slow log). */
const SCRIPT_NAMES = new Map(
  ['src/actors', 'src/store'].flatMap((dir) =>
    fs
      .readdirSync(path.join(PROJECT_ROOT, dir))
      .filter((f) => f.endsWith('.lua'))
      .map(
        (f) =>
          [
            createHash('sha1')
              .update(fs.readFileSync(path.join(PROJECT_ROOT, dir, f), 'utf8'))
              .digest('hex'),
            f,
          ] as const,
      ),
  ),
);

/** Retries while Redis answers BUSY (a script running longer than its busy threshold). */
async function patient<T>(f: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await f();
    } catch (e) {
      if (!/BUSY/.test((e as Error).message) || i > 600) throw e;
      await sleep(500);
    }
  }
}

/** A slowlog entry's script call as `<file> [<op>]`: EVALSHA sha numkeys key... op ... */
function scriptCall(args: string[]): string {
  const name = SCRIPT_NAMES.get(args[1]) ?? args[1];
  const op = args[3 + Number(args[2])];
  return op !== undefined && /^[a-z]{2,12}$/.test(op) ? `${name} ${op}` : name;
}

/** A phase whose group offsets do not move for this long fails the bench (a hang would otherwise wait forever). */
const STALL_MS = 180_000;

async function main(): Promise<void> {
  const id = `bench_${Date.now().toString(36)}`;
  const prefix = `${id}_`;
  // The rate limiter runs on every API request (its cost is in the figures) but is set far
  // above what one load generator asks, so it never refuses the bench's own requests.
  const iso = new Isolated(id, { HH_WORKERS: '2', HH_RATE_LIMIT_RPS: '100000000' }, REGIONS);
  await iso.setUp();
  // Interrupted (Ctrl-C, a kill): the runtimes it started, its Redis database and its workflows
  // go with it (an interrupted run left 396 window workflows, 32 coordinators, its supervisors
  // and its global merge running in Temporal).
  const runCfg = loadConfig({ ...process.env, ...iso.env });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      log(`\n${sig}: stopping the runtimes this bench started, emptying its Redis database and ending its workflows`);
      const cleanup = stopStartedRuntimes()
        .then(() => iso.redis.flushdb())
        .then(() => Promise.all([terminatePrefixWorkflows(cfg, prefix), terminateSupervisors(runCfg)]));
      void Promise.race([cleanup, sleep(45_000)]).finally(() => process.exit(130));
    });
  }
  // The memory and soak phases make topics of their own before any runtime (and its ACLs)
  // exists: their events are written as the Kafka super user, not the producer principal.
  const feeder = iso.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await feeder.connect();
  await ensureTopics(
    cfg,
    MEM_DISTINCT.map((d) => ({ topic: memTopic(iso, d), numPartitions: REGIONS })),
  );
  const topic = iso.env.HH_KAFKA_TOPIC;
  const regions = regionNames(REGIONS, prefix);
  let rt: Runtime | undefined;
  let leftover: string | undefined;
  const t0 = Date.now();
  log(
    `bench ${smoke ? '(smoke) ' : ''}on ${os.cpus().length} cores, ${round(os.totalmem() / 2 ** 30)} GiB; ${N.toLocaleString()} events, ${REGIONS} regions, ${POSTS.toLocaleString()} Zipf posts`,
  );
  try {
    const preFrom = Date.now();
    const pre = await produceLoad(iso.producer, { events: N, regions: REGIONS, posts: POSTS, zipf: 1.1, seed: 1, prefix, topic, rate: 0 });
    const daySpec = cfg.ingest.windows.find((w) => w.sizeMs === 86_400_000);
    const dayOf = (t: number) => Math.floor(t / 86_400_000) * 86_400_000;
    const day = daySpec && dayOf(preFrom) === dayOf(Date.now()) ? windowId(daySpec.name, dayOf(preFrom)) : undefined;
    log(`pre-loaded ${pre.sent.toLocaleString()} events in ${round(pre.ms / 1000, 1)} s`);

    const none = { events: 0, ms: 0, eps: NaN };
    const limit = want('compare') ? await withSteal('limit', () => limitConsumer(iso.kafka, topic, `${id}.limit`, N)) : none;
    log(`(a) limit (kafkajs + JSON.parse):   ${round(limit.eps).toLocaleString()} events/s`);
    const naive = want('compare')
      ? await withSteal('naive', () => naiveConsumer(iso.kafka, iso.redis, topic, `${id}.naive`, NAIVE_EVENTS, 'bench:naive'))
      : none;
    log(`(c) naive ZINCRBY per event:        ${round(naive.eps).toLocaleString()} events/s (first ${NAIVE_EVENTS.toLocaleString()})`);
    await iso.redis.flushdb();

    // (k) the Kafka Streams peer: the same job (all-time + the default tumbling windows with their grace).
    const kstreams: NonNullable<BenchResults['ingest']['kstreams']> = { at_least_once: null, exactly_once_v2: null };
    if (!want('compare') || smoke) kstreams.skipped = smoke ? 'not in the smoke run' : 'not in this partial run';
    else {
      const built = await buildKStreams(cfg);
      if ('skipped' in built) kstreams.skipped = built.skipped;
      else {
        for (const guarantee of ['at_least_once', 'exactly_once_v2'] as const) {
          await settle();
          const run = await withSteal(`kstreams_${guarantee}`, () =>
            runKStreams(built, {
              cfg,
              admin: iso.admin,
              topic,
              appId: `${id}-ks-${guarantee}`,
              windows: cfg.ingest.windows,
              guarantee,
              threads: 2,
              commitMs: 1000,
            }),
          );
          kstreams[guarantee] = {
            eps: round(run.eps),
            ms: round(run.ms),
            cpu_s_per_100k: round(run.cpu_s_per_100k, 2),
            commit_ms: run.commit_ms,
            windows: run.windows,
          };
        }
      }
    }
    log(
      `(k) Kafka Streams (same job):       ${kstreams.at_least_once ? `${kstreams.at_least_once.eps.toLocaleString()} events/s at least once, ${kstreams.exactly_once_v2?.eps.toLocaleString()} exactly_once_v2` : `skipped: ${kstreams.skipped}`}`,
    );

    let one: { eps: number; cpu_s_per_100k: Record<string, number>; redis_us_per_event: Record<string, number>; flushes?: FlushSummary } = {
      eps: NaN,
      cpu_s_per_100k: {},
      redis_us_per_event: {},
    };
    let exact1 = true;
    if (want('compare')) {
      const run = await withSteal('ours_1_worker', () => measureRuntime(iso, 1, `${id}.ours1`, topic));
      one = run;
      exact1 = await checkExact(iso.redis, pre.truth, day);
      await run.rt.stop();
      await terminateSupervisors(run.rt.cfg);
      await resetState(iso, regions);
    }
    log(
      `(g) ours, 1 worker:                 ${round(one.eps).toLocaleString()} events/s (top ${CHECK_K} of every region exact${day ? `, all-time and ${day}` : ''}: ${exact1})`,
    );
    log(`    CPU seconds per 100k events: ${JSON.stringify(one.cpu_s_per_100k)}`);
    log(`    Redis µs per event by command: ${JSON.stringify(one.redis_us_per_event)}`);
    if (one.flushes) log(`    flushes: ${JSON.stringify(one.flushes)}`);

    // (c2) just before (b), and again once (d) and (e) are done and the runtime is stopped: (b)
    // against the faster of the two, so a slower stretch of these shared cores cannot fall on naive alone.
    const pipedRun = async (n: 1 | 2) => {
      if (!want('compare')) return none;
      const keyPrefix = `bench:piped${n}`;
      const run = await withSteal(`naive_pipelined_${n}`, () => naivePipelinedConsumer(iso.kafka, iso.redis, topic, `${id}.piped${n}`, N, keyPrefix));
      await iso.redis.unlink(...regions.map((r) => `${keyPrefix}:${r}`));
      log(`(c2) naive ZINCRBY pipelined, run ${n}: ${round(run.eps).toLocaleString()} events/s (steal ${steal[`naive_pipelined_${n}`]} %)`);
      return run;
    };
    const piped1 = await pipedRun(1);

    const two = await withSteal('ours', () => measureRuntime(iso, 2, `${id}.ours2`, topic));
    const exact2 = await checkExact(iso.redis, pre.truth, day);
    log(
      `(b) ours, 2 workers:                ${round(two.eps).toLocaleString()} events/s (top ${CHECK_K} of every region exact${day ? `, all-time and ${day}` : ''}: ${exact2}; steal ${steal.ours} %)`,
    );
    log(`    CPU seconds per 100k events: ${JSON.stringify(two.cpu_s_per_100k)}`);
    log(`    Redis µs per event by command: ${JSON.stringify(two.redis_us_per_event)}`);
    log(`    flushes: ${JSON.stringify(two.flushes)}; group joins by the workers: ${two.joins}; ${two.gate}`);
    rt = two.rt;
    // The second naive run, once (d) and (e) are done with the runtime and it is stopped (its
    // idle work would slow naive down; with a restart right after (b), (d)'s p99 was 2.2 s in
    // the one run that tried it).
    const stopAndPipeAgain = async () => {
      if (rt) {
        await rt.stop();
        await terminateSupervisors(rt.cfg);
        rt = undefined;
      }
      return pipedRun(2);
    };

    const live = two.rt;
    const fresh = want('fresh')
      ? await withSteal('fresh_half', () => freshness(iso, live, topic, Math.max(100, Math.round(two.eps / 2)), prefix))
      : { p50: NaN, p99: NaN, max: NaN, probes: 0, rate_eps: NaN, asked_eps: NaN };
    log(
      `(d) freshness at ${fresh.rate_eps.toLocaleString()} events/s (asked ${fresh.asked_eps.toLocaleString()}): p50 ${fresh.p50} ms, p99 ${fresh.p99} ms (${fresh.probes} probes)`,
    );
    // The same at a quarter of (b)'s rate: how latency grows with load on these shared cores.
    const quarter = want('fresh')
      ? await withSteal('fresh_quarter', () => freshness(iso, live, topic, Math.max(100, Math.round(two.eps / 4)), `${prefix}q`))
      : fresh;
    log(
      `(d) freshness at ${quarter.rate_eps.toLocaleString()} events/s (asked ${quarter.asked_eps.toLocaleString()}): p50 ${quarter.p50} ms, p99 ${quarter.p99} ms (${quarter.probes} probes)`,
    );
    if (!want('api') && !want('memory') && !(soakOn && want('soak'))) {
      await stopAndPipeAgain();
      return;
    }

    // The API is measured on a quiet runtime: the freshness load drained first.
    await waitDrained(iso.admin, `${id}.ours2`, topic);
    const a = await withSteal('api', () => api(live, regions[0]));
    log(
      `(e) GET /top-posts: ${a.ours.rps.toLocaleString()} req/s, p50 ${a.ours.p50_ms} ms, p99 ${a.ours.p99_ms} ms, ${a.ours.cpu_us_per_request} CPU µs per request; at 2,000 req/s p99 ${a.at2000.p99_ms} ms (runs ${a.at2000.p99_runs_ms.join('/')}); bare Express ${a.limit.rps.toLocaleString()} req/s, ${a.limit.cpu_us_per_request} CPU µs per request, at 2,000 req/s p99 ${a.limitAt2000.p99_ms} ms (runs ${a.limitAt2000.p99_runs_ms.join('/')})`,
    );
    log(`    the steady load's own sends were at most ${Math.max(a.at2000.late_send_max_ms, a.limitAt2000.late_send_max_ms)} ms late`);
    log(
      `    nice of the serving processes: ours ${a.nices.ours.join(', ')}, bare Express ${a.nices.bare.join(', ')}${a.nices.set.length ? ` (${a.nices.set.join('; ')})` : ''}`,
    );
    const piped2 = await stopAndPipeAgain();
    const piped = piped2.eps > piped1.eps ? piped2 : piped1;
    steal.naive_pipelined = steal[piped === piped2 ? 'naive_pipelined_2' : 'naive_pipelined_1'];

    const mem = [];
    for (const [d, mode] of want('memory')
      ? MEM_DISTINCT.flatMap(
          (x) =>
            [
              [x, 'exact'],
              [x, 'bounded'],
            ] as const,
        )
      : []) {
      const m = await withSteal(`memory_${mode}_${d}`, () => memory(iso, feeder, d, mode, `${id}_m${d}_`));
      mem.push(m);
      log(
        `(f) ${mode}, ${d.toLocaleString()} distinct posts: Redis +${round(m.redis_used_bytes / 2 ** 20, 1)} MiB (exact top-k ${round(m.exact_topk_bytes / 2 ** 20, 1)} MiB, bounded ${round(m.bounded_topk_bytes / 2 ** 10, 1)} KiB, windows ${round(m.window_bytes / 2 ** 20, 1)} MiB, dedup ${round(m.dedup_bytes / 2 ** 20, 1)} MiB); worker RSS ${round(m.worker_rss_bytes / 2 ** 20)} MiB (lifecycle process ${round(m.lifecycle_rss_bytes / 2 ** 20)} MiB); longest script ${m.longest_script_ms} ms${m.longest_script ? ` (${m.longest_script})` : ''}; then ${m.next_scripts.map((n) => `${n.ms} (${n.script})`).join(', ') || 'none'}; ${m.scripts_over_50ms} call(s) over 50 ms`,
      );
    }

    let soakResult: BenchResults['soak'];
    if (soakOn && want('soak')) {
      const runs = [];
      for (const mode of ['exact', 'bounded'] as const) {
        const soakTopic = `${iso.id}.soak-${mode}`;
        await ensureTopics(cfg, [{ topic: soakTopic, numPartitions: REGIONS }]);
        const keyspace = `${iso.keyspace}_soak_${mode}`;
        await migrate(cfg, keyspace);
        keyspaces.push(keyspace);
        await iso.redis.flushdb();
        await settle();
        log(`(s) soak, ${mode} mode: 5,000 events/s for ${soakMinutes} min, new posts throughout`);
        const r = await withSteal(`soak_${mode}`, () =>
          soak(iso, feeder, {
            mode,
            minutes: soakMinutes,
            rate: 5000,
            regions: regionNames(REGIONS, `${prefix}soak_${mode}_`),
            topic: soakTopic,
            group: `${id}.soak-${mode}`,
            keyspace,
            log,
          }),
        );
        log(`(s) soak, ${mode}: Redis max/min ${r.redis_used_bytes_ratio}, worker heap max/min ${r.worker_heap_ratio} over the second half`);
        runs.push(r);
        soakTopics.push(soakTopic);
      }
      const [exact, bounded] = runs;
      soakResult = {
        redis_used_bytes_ratio: Math.max(exact.redis_used_bytes_ratio, bounded.redis_used_bytes_ratio),
        worker_heap_ratio: Math.max(exact.worker_heap_ratio, bounded.worker_heap_ratio),
        exact,
        bounded,
      };
    }

    const results: BenchResults = {
      when: new Date().toISOString(),
      smoke,
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? '', mem_gib: round(os.totalmem() / 2 ** 30), node: process.version },
      events: N,
      ingest: {
        limit_eps: round(limit.eps),
        ours_eps: round(two.eps),
        naive_eps: round(naive.eps),
        naive_pipelined_eps: round(piped.eps),
        naive_pipelined_runs_eps: [round(piped1.eps), round(piped2.eps)],
        naive_events: NAIVE_EVENTS,
        exact: exact1 && exact2,
        kstreams_eps: kstreams.at_least_once?.eps ?? NaN,
        kstreams,
      },
      freshness_ms: { ...fresh, at_quarter_rate: quarter },
      api: {
        rps: a.ours.rps,
        p50_ms: a.ours.p50_ms,
        p99_ms: a.ours.p99_ms,
        at_2000_rps: a.at2000,
        limit_rps: a.limit.rps,
        limit_p50_ms: a.limit.p50_ms,
        limit_p99_ms: a.limit.p99_ms,
        cpu_us_per_request: a.ours.cpu_us_per_request,
        limit_cpu_us_per_request: a.limit.cpu_us_per_request,
        limit_at_2000_rps: a.limitAt2000,
        body_bytes: a.body_bytes,
      },
      memory: Object.fromEntries(mem.map((m) => [`${m.mode}_${m.distinct}`, m])),
      ...(soakResult ? { soak: soakResult } : {}),
      scaling: {
        workers_1_eps: round(one.eps),
        workers_2_eps: round(two.eps),
        speedup: round(two.eps / one.eps, 2),
        cpu_s_per_100k_events: { workers_1: one.cpu_s_per_100k, workers_2: two.cpu_s_per_100k },
        redis_us_per_event: { workers_1: one.redis_us_per_event, workers_2: two.redis_us_per_event },
        flushes: { workers_1: one.flushes, workers_2: two.flushes },
      },
      steal_pct: steal,
      seconds: round((Date.now() - t0) / 1000),
    };
    log(`steal by phase (% of the machine's CPU time): ${JSON.stringify(steal)}`);
    if (only) {
      log('(partial run: no report written)');
      return;
    }
    const ratios = writeReport(results, path.join(__dirname, 'results'), smoke ? 'smoke' : 'latest');
    log('\nratios (same run):');
    for (const [k, v] of Object.entries(ratios)) log(`  ${k.padEnd(44)} ${v}`);
  } finally {
    if (rt) {
      await rt.stop();
      await terminateSupervisors(rt.cfg);
    }
    // Every region of this run is named `<prefix>...` (the loads', the probes', the memory phases').
    await terminatePrefixWorkflows(cfg, prefix);
    for (const ks of keyspaces) await iso.cassandra.execute(`DROP KEYSPACE IF EXISTS ${ks}`).catch(() => undefined);
    await feeder.disconnect().catch(() => undefined);
    await iso.tearDown(undefined, []);
    // Every coordinator and window this run started must be gone: left running, they load
    // the Temporal server of every later run (and its visibility store).
    const left = await runningRegionWorkflows(cfg, prefix);
    if (left.length) leftover = `${left.length} workflows of this run still run after its cleanup, e.g. ${left.slice(0, 5).join(', ')}`;
    // Deleted last: a producer that has sent to a topic fails its next send once that topic is gone.
    const admin = iso.kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [...MEM_DISTINCT.map((d) => memTopic(iso, d)), ...soakTopics] }).catch(() => undefined);
    await admin.disconnect();
  }
  if (leftover) throw new Error(leftover);
}

main().catch((e: Error) => {
  process.stderr.write(`bench failed: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
