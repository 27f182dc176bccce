/**
 * `npm run chaos [-- --rounds N] [--short] [--seed S] [--at MS] [--down MS]`: fault injection against the real
 * stack. The cluster runtime (2 workers) counts a steady stream with an independently
 * kept truth; each round injects one fault at a random moment of its stream:
 *
 *   redis-kill, kafka-kill, cassandra-kill, temporal-kill   kill -9 of the server by the PID
 *                                                           the stack recorded, restarted by
 *                                                           `npm run stack:up` after 0–5 s
 *   worker-kill, all-workers-kill, lifecycle-kill           kill -9 of one or every ingest worker,
 *                                                           or the lifecycle process (the
 *                                                           workflows); the primary restarts them
 *   flushall                                                Redis FLUSHALL
 *   terminate-supervisors, terminate-coordinators           through the Temporal API
 *   poison                                                  a far-future event, an oversized
 *                                                           value and a "global" event
 *
 * After each round: every region's counts in Redis, in the API's answers and in the
 * Cassandra record equal the truth (nothing lost, nothing counted twice), and the round's
 * windows are FINAL with snapshots equal to their truth. Meanwhile a prober reads the API
 * every 100 ms: an answer presented as live that is empty, lower than an earlier live one
 * or above the truth is a wrong answer. Every third round kills Redis.
 *
 * Writes chaos/results/latest.{json,md} (`--short`: chaos/results/smoke.*); exits 1 unless
 * every round is exact with no wrong answer.
 */
import { temporalClient } from '../src/clients';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfig } from '../src/config';
import { ALL_TIME, appliedKey, regionDirtyKey, regionInflightKey, regionTopKey, REGIONS_KEY } from '../src/keys';
import { prng, regionNames, truthTopK, type Truth } from '../src/load/generator';
import { produceLoad } from '../src/load/produce';
import { RegionRecord } from '../src/store/record';
import { coordinatorWorkflowId, windowStatusQuery, windowWorkflowId } from '../src/workflows/definitions';
import { supervisorId } from '../src/runtime/ids';
import type { ServiceName } from '../src/health';
import { killService, stackUp } from '../scripts/stack/control';
import { Isolated } from '../scripts/harness/isolated';
import { unique } from '../scripts/harness/names';
import { startRuntime, waitApplied, type Runtime } from '../scripts/harness/runtime';

const args = process.argv.slice(2);
const arg = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const short = args.includes('--short');
const ROUNDS = Number(arg('rounds') ?? (short ? 4 : 30));
const SEED = Number(arg('seed') ?? Date.now() % 1e9);
/** To replay a failure: the fault at this ms of every round's stream, a killed server down this long (else drawn from the seed). */
const AT_MS = arg('at') === undefined ? undefined : Number(arg('at'));
const DOWN_MS = arg('down') === undefined ? undefined : Number(arg('down'));
const REGIONS = 4;
const POSTS = 2_000;
const RATE = 2_000; // events/s
const STREAM_S = short ? 10 : 15;
const WINDOW = '10s';
const WINDOW_MS = 10_000;
const ROOT = path.join(__dirname, '..');
const OUT = path.join(ROOT, 'chaos', 'results');

const FAULTS = [
  'redis-kill',
  'kafka-kill',
  'cassandra-kill',
  'temporal-kill',
  'worker-kill',
  'all-workers-kill',
  'lifecycle-kill',
  'flushall',
  'terminate-supervisors',
  'terminate-coordinators',
  'poison',
] as const;
type Fault = (typeof FAULTS)[number];
const OTHERS = FAULTS.filter((f) => f !== 'redis-kill');
/** The short run (CI): a Redis kill, a worker kill, a FLUSHALL and a poisoned record. */
const SHORT: Fault[] = ['redis-kill', 'worker-kill', 'flushall', 'poison'];
const scheduleOf = (rounds: number): Fault[] =>
  short ? SHORT.slice(0, rounds) : Array.from({ length: rounds }, (_, i) => (i % 3 === 0 ? 'redis-kill' : OTHERS[(i - 1 - Math.floor(i / 3)) % OTHERS.length]));

export interface RoundResult {
  round: number;
  fault: Fault;
  /** When in the stream the fault hit (ms after its start), and how long a killed server stayed down before its restart. */
  at_ms: number;
  down_ms: number | null;
  exact: boolean;
  checks: Record<string, boolean>;
  /** From the fault until Redis's applied marks moved again (null: they did not stop, or were never seen moving). */
  ingest_resumed_ms: number | null;
  /** Time the API served an answer presented as live that was empty, lower than before, or above the truth. */
  wrong_answer_ms: number;
  /** The longest stretch of 5xx answers (or no answer). */
  longest_5xx_ms: number;
  /** Ingest members that stalled (stuck while Redis answered) and were restarted: their reports. */
  stalls: string[];
  answers: { live: number; recovering: number; record: number; other: number; failed: number };
  /** What the failed and `other` answers were (status and message, or the fetch error), with counts. */
  not_ok: Record<string, number>;
  events: number;
  failures: string[];
}

const log = (s: string) => process.stdout.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function eventually(what: string, fn: () => Promise<void>, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: ${(e as Error).message}`);
      await sleep(500);
    }
  }
}

/** Polls the API (every region in turn) and judges each answer against the truth produced so far. */
function startProber(api: string, regions: string[], truth: Truth) {
  const best = new Map<string, number>();
  const answers = { live: 0, recovering: 0, record: 0, other: 0, failed: 0 };
  const notOk: Record<string, number> = {};
  const note = (what: string) => {
    const key = what.slice(0, 120);
    notOk[key] = (notOk[key] ?? 0) + 1;
  };
  const bodyError = async (res: Response) => {
    const text = await res.text().catch(() => '');
    try {
      return String((JSON.parse(text) as { error?: unknown }).error ?? text);
    } catch {
      return text;
    }
  };
  let wrongMs = 0;
  let failingSince: number | null = null;
  let longest5xx = 0;
  const wrong: string[] = [];
  let stop = false;
  const done = (async () => {
    for (let i = 0; !stop; i++) {
      const region = regions[i % regions.length];
      const t0 = Date.now();
      let isWrong = false;
      let failed = false;
      try {
        const res = await fetch(`${api}/top-posts?region=${region}&k=10`, { signal: AbortSignal.timeout(5000) });
        if (res.status >= 500) {
          failed = true;
          note(`${res.status} ${await bodyError(res)}`);
        } else if (res.status === 200) {
          const body = (await res.json()) as { source: string; status: string; top_posts: { post_id: string; view_count: number }[] };
          const live = body.source === 'redis' && body.status === 'live';
          const key = body.status === 'live' || body.status === 'recovering' || body.status === 'record' ? body.status : 'other';
          answers[key]++;
          if (live) {
            const produced = truth[region] ?? {};
            if (body.top_posts.length === 0 && [...best.keys()].some((k) => k.startsWith(`${region}\u0000`))) {
              isWrong = true;
              wrong.push(`${region}: empty live answer`);
            }
            for (const p of body.top_posts) {
              const k = `${region}\u0000${p.post_id}`;
              if (p.view_count < (best.get(k) ?? 0)) {
                isWrong = true;
                wrong.push(`${region}/${p.post_id}: live count ${p.view_count} below an earlier ${best.get(k)}`);
              }
              if (p.view_count > (produced[p.post_id] ?? 0)) {
                isWrong = true;
                wrong.push(`${region}/${p.post_id}: live count ${p.view_count} above the ${produced[p.post_id] ?? 0} produced`);
              }
              best.set(k, Math.max(best.get(k) ?? 0, p.view_count));
            }
          }
        } else {
          answers.other++;
          note(`${res.status} ${await bodyError(res)}`);
          // "Unknown region" for a region that was answered before is wrong too.
          if (res.status === 404 && [...best.keys()].some((k) => k.startsWith(`${region}\u0000`))) {
            isWrong = true;
            wrong.push(`${region}: 404 for a region with counts`);
          }
        }
      } catch (e) {
        failed = true;
        note(`no answer: ${(e as Error).message}`);
      }
      if (failed) {
        answers.failed++;
        failingSince ??= t0;
      } else if (failingSince !== null) {
        longest5xx = Math.max(longest5xx, t0 - failingSince);
        failingSince = null;
      }
      await sleep(100);
      if (isWrong) wrongMs += Date.now() - t0;
    }
    if (failingSince !== null) longest5xx = Math.max(longest5xx, Date.now() - failingSince);
  })();
  return async () => {
    stop = true;
    await done;
    return { wrongMs, longest5xx, answers, notOk, wrong: [...new Set(wrong)].slice(0, 10) };
  };
}

/** Samples the sum of Redis's applied marks every 100 ms: when did ingest move again after the fault? */
function startAppliedWatch(iso: Isolated, topic: string) {
  const samples: { t: number; sum: number }[] = [];
  let stop = false;
  const done = (async () => {
    while (!stop) {
      try {
        const marks = await iso.redis.hgetall(appliedKey(topic));
        samples.push({ t: Date.now(), sum: Object.entries(marks).reduce((a, [k, v]) => (k === '*' ? a : a + Number(v)), 0) });
      } catch {
        // Redis down: no sample
      }
      await sleep(100);
    }
  })();
  return async (faultAt: number): Promise<number | null> => {
    stop = true;
    await done;
    const after = samples.filter((s) => s.t >= faultAt);
    for (let i = 1; i < after.length; i++) {
      const gap = after[i].t - after[i - 1].t;
      // The first time the marks grew after the fault (a gap of more than a few samples
      // means they did not move in between, or Redis could not be read).
      if (after[i].sum > after[i - 1].sum) return Math.max(0, after[i - 1].t + Math.min(gap, 100) - faultAt);
    }
    return null;
  };
}

async function main(): Promise<void> {
  const cfg = loadConfig();
  const id = unique('chaos');
  const prefix = `${id}_`;
  const regions = regionNames(REGIONS, prefix);
  const iso = new Isolated(id, {
    HH_WORKERS: '2',
    HH_WINDOWS: `${WINDOW}/20s/3m`,
    HH_IDLE_TIMEOUT: '2s',
    HH_INGEST_HEARTBEAT_TIMEOUT: '10s',
    // A member stuck while Redis answers restarts its process after this (src/ingest/stall.ts); each round reports it.
    HH_INGEST_STALL: '30s',
  });
  const rand = prng(SEED);
  const schedule = scheduleOf(ROUNDS);
  log(`chaos: ${ROUNDS} round(s), seed ${SEED}, ${REGIONS} regions, ${RATE} events/s for ${STREAM_S} s a round; faults: ${schedule.join(', ')}`);
  await iso.setUp();
  const temporal = await temporalClient(cfg);
  const record = new RegionRecord(iso.redis, iso.cassandra, {
    keyspace: iso.keyspace,
    windows: loadConfig({ HH_WINDOWS: `${WINDOW}/20s/3m` }).ingest.windows,
    boundedK: 1000,
  });
  const rt: Runtime = await startRuntime(iso.env);
  const truth: Truth = {};
  const windowTruth = new Map<string, Record<string, number>>(); // "<region>|<start>" -> post -> count
  const results: RoundResult[] = [];
  const topic = iso.env.HH_KAFKA_TOPIC;
  const stallsSeen = new Set<string>();
  /** Stall reports in the runtime's output not seen before. */
  const newStalls = (): string[] => {
    const fresh = rt.output.filter((l) => l.includes('ingest stalled') && !stallsSeen.has(l));
    for (const l of fresh) stallsSeen.add(l);
    return fresh;
  };

  const restartLater = async (name: ServiceName): Promise<number> => {
    await killService(cfg, name);
    const drawn = Math.floor(rand() * 5000);
    const down = DOWN_MS ?? drawn;
    await sleep(down);
    await stackUp();
    return down;
  };

  const inject = async (fault: Fault): Promise<number | null> => {
    switch (fault) {
      case 'redis-kill':
        return restartLater('redis');
      case 'kafka-kill':
        return restartLater('kafka');
      case 'cassandra-kill':
        return restartLater('cassandra');
      case 'temporal-kill':
        return restartLater('temporal');
      case 'worker-kill':
        process.kill([...rt.workers.values()][Math.floor(rand() * rt.workers.size)], 'SIGKILL');
        return null;
      case 'all-workers-kill':
        for (const pid of rt.workers.values()) process.kill(pid, 'SIGKILL');
        return null;
      case 'lifecycle-kill':
        for (const pid of rt.lifecycles.values()) process.kill(pid, 'SIGKILL');
        return null;
      case 'flushall':
        await iso.redis.flushall();
        return null;
      case 'terminate-supervisors':
        for (let slot = 1; slot <= 2; slot++) await temporal.workflow.getHandle(supervisorId(iso.env.HH_TEMPORAL_TASK_QUEUE, slot)).terminate('chaos');
        return null;
      case 'terminate-coordinators':
        for (const r of regions)
          await temporal.workflow
            .getHandle(coordinatorWorkflowId(r))
            .terminate('chaos')
            .catch(() => undefined);
        return null;
      case 'poison': {
        const now = Date.now();
        await iso.producer.send({
          topic,
          acks: -1,
          messages: [
            { key: regions[0], value: JSON.stringify({ event_id: `${id}-far`, post_id: 'poison', region_id: regions[0], timestamp: 4_102_444_800_000 }) },
            {
              key: regions[1],
              value: JSON.stringify({ event_id: `${id}-big`, post_id: 'poison', region_id: regions[1], timestamp: now, note: 'x'.repeat(100_000) }),
            },
            { key: 'global', value: JSON.stringify({ event_id: `${id}-global`, post_id: 'poison', region_id: 'global', timestamp: now }) },
          ],
        });
        return null;
      }
    }
  };

  try {
    for (let round = 1; round <= ROUNDS; round++) {
      const fault = schedule[round - 1];
      const failures: string[] = [];
      const checks: Record<string, boolean> = {};
      const roundWindows = new Set<string>();
      const dlqBefore = fault === 'poison' ? await dlqEnd(iso) : 0;
      const prober = startProber(rt.api, regions, truth);
      const applied = startAppliedWatch(iso, topic);
      const drawnAt = Math.floor((0.15 + rand() * 0.6) * STREAM_S * 1000);
      const atMs = AT_MS ?? drawnAt;
      const t0 = Date.now();
      let faultAt = 0;
      let downMs: number | null = null;
      const injected = (async () => {
        await sleep(atMs);
        faultAt = Date.now();
        downMs = await inject(fault);
      })();
      const produced = await produceLoad(iso.producer, {
        events: RATE * STREAM_S,
        regions: REGIONS,
        posts: POSTS,
        zipf: 1.1,
        seed: SEED + round,
        prefix,
        topic,
        rate: RATE,
        onEvent: (e) => {
          const r = (truth[e.region_id] ??= {});
          r[e.post_id] = (r[e.post_id] ?? 0) + 1;
          const w = `${e.region_id}|${e.timestamp - (e.timestamp % WINDOW_MS)}`;
          roundWindows.add(w);
          let m = windowTruth.get(w);
          if (!m) windowTruth.set(w, (m = {}));
          m[e.post_id] = (m[e.post_id] ?? 0) + 1;
        },
      });
      await injected;
      try {
        await waitApplied(iso.admin, iso.redis, topic);
      } catch (e) {
        failures.push((e as Error).message);
        await dumpRuntime(rt, `round ${round} (${fault}): not caught up`);
      }
      const probe = await prober();
      const resumed = await applied(faultAt);

      const check = async (name: string, fn: () => Promise<void>, timeoutMs: number) => {
        try {
          await eventually(name, fn, timeoutMs);
          checks[name] = true;
        } catch (e) {
          checks[name] = false;
          failures.push((e as Error).message.slice(0, 400));
        }
      };
      await check(
        'redis',
        async () => {
          for (const r of regions) {
            const flat = await iso.redis.zrange(regionTopKey(r), 0, -1, 'WITHSCORES');
            const got: Record<string, number> = {};
            for (let i = 0; i < flat.length; i += 2) got[flat[i]] = Number(flat[i + 1]);
            const diff = compare(got, truth[r] ?? {});
            if (diff) throw new Error(`${r} in Redis: ${diff}`);
          }
        },
        120_000,
      );
      await check(
        'api',
        async () => {
          for (const r of regions) {
            const body = (await (await fetch(`${rt.api}/top-posts?region=${r}&k=100`)).json()) as {
              status: string;
              top_posts: { post_id: string; view_count: number }[];
            };
            if (body.status !== 'live') throw new Error(`${r}: the API answers ${body.status}`);
            const want = truthTopK(truth[r] ?? {}, 100);
            const got = body.top_posts.map((p) => ({ post_id: p.post_id, view_count: p.view_count }));
            if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`${r}: the API's top 100 differs from the truth`);
          }
        },
        60_000,
      );
      await check(
        'record',
        async () => {
          for (const r of regions) {
            if ((await iso.redis.exists(regionDirtyKey(r), regionInflightKey(r))) > 0) throw new Error(`${r} not checkpointed yet`);
            const rec = await record.readKey(r, ALL_TIME);
            const diff = compare(Object.fromEntries((rec?.top ?? []).map((p) => [p.post_id, p.view_count])), truth[r] ?? {});
            if (diff) throw new Error(`${r} in Cassandra: ${diff}`);
          }
        },
        180_000,
      );
      await check(
        'windows',
        async () => {
          for (const w of roundWindows) {
            const [r, start] = w.split('|');
            const status = await temporal.workflow.getHandle(windowWorkflowId(r, WINDOW, Number(start))).query(windowStatusQuery);
            if (status.state !== 'FINAL' && status.state !== 'EXPIRED') throw new Error(`window ${r} ${WINDOW}:${start} is ${status.state}`);
            const rs = await iso.cassandra.execute(
              `SELECT post_id, count FROM ${iso.keyspace}.views_by_region_and_window WHERE region_id = ? AND window_spec = ? AND window_start = ?`,
              [r, WINDOW, new Date(Number(start))],
              { prepare: true, fetchSize: 10_000 },
            );
            const diff = compare(Object.fromEntries(rs.rows.map((row) => [row.get('post_id') as string, Number(row.get('count'))])), windowTruth.get(w)!);
            if (diff) throw new Error(`window ${r} ${WINDOW}:${start} snapshot: ${diff}`);
          }
        },
        180_000,
      );
      if (fault === 'poison') {
        await check(
          'poison dead-lettered',
          async () => {
            const n = (await dlqEnd(iso)) - dlqBefore;
            if (n < 3) throw new Error(`${n} of the 3 poisoned records in the dead-letter topic`);
            if (await iso.redis.sismember(REGIONS_KEY, 'global')) throw new Error('a region "global" was counted');
          },
          60_000,
        );
      }
      if (probe.wrong.length) failures.push(...probe.wrong.map((w) => `wrong answer: ${w}`));
      const stalls = newStalls();
      const exact = Object.values(checks).every(Boolean) && failures.length === 0;
      const res: RoundResult = {
        round,
        fault,
        at_ms: atMs,
        down_ms: downMs,
        exact,
        checks,
        ingest_resumed_ms: resumed,
        wrong_answer_ms: probe.wrongMs,
        longest_5xx_ms: probe.longest5xx,
        stalls,
        answers: probe.answers,
        not_ok: probe.notOk,
        events: produced.sent,
        failures,
      };
      results.push(res);
      log(
        `round ${round}/${ROUNDS} ${fault.padEnd(22)} at ${(atMs / 1000).toFixed(1)} s${downMs !== null ? `, down ${(downMs / 1000).toFixed(1)} s` : ''}: ` +
          `${exact ? 'EXACT' : 'NOT EXACT'}; ingest resumed ${resumed === null ? '-' : `${resumed} ms`}; wrong answers ${probe.wrongMs} ms; ` +
          `longest 5xx ${probe.longest5xx} ms; answers ${JSON.stringify(probe.answers)} (${((Date.now() - t0) / 1000).toFixed(0)} s)`,
      );
      for (const f of failures) log(`    ${f}`);
      for (const [what, n] of Object.entries(probe.notOk)) log(`    answered ${n}×: ${what}`);
      for (const s of stalls) log(`    a member stalled and its process was restarted: ${s}`);
      if (!exact) await dumpRuntime(rt, `round ${round} (${fault}): not exact`);
    }
  } finally {
    writeReport(results, { seed: SEED, short });
    await rt.stop();
    await iso.tearDown(undefined, regions);
    await temporal.connection.close();
  }
  const bad = results.filter((r) => !r.exact || r.wrong_answer_ms > 0);
  log(`chaos: ${results.length - bad.length}/${results.length} rounds exact with no wrong answer`);
  if (bad.length) process.exitCode = 1;
}

/**
 * What a failed round leaves to diagnose it, in the run's own output (CI keeps that of a
 * failed run): /healthz and the runtime's last lines.
 */
async function dumpRuntime(rt: Runtime, why: string): Promise<void> {
  let health: string;
  try {
    health = await (await fetch(`${rt.api}/healthz`, { signal: AbortSignal.timeout(5000) })).text();
  } catch (e) {
    health = `(no answer: ${(e as Error).message})`;
  }
  log(`--- ${why}: /healthz ---\n${health}\n--- the runtime's last ${Math.min(150, rt.output.length)} lines ---`);
  for (const line of rt.output.slice(-150)) log(`  | ${line}`);
  log('---');
}

/** End offset of the dead-letter topic (all partitions). */
async function dlqEnd(iso: Isolated): Promise<number> {
  return (await iso.admin.fetchTopicOffsets(iso.env.HH_KAFKA_DLQ_TOPIC)).reduce((a, p) => a + Number(p.high), 0);
}

/** undefined when equal, else a short account of the difference. */
function compare(got: Record<string, number>, want: Record<string, number>): string | undefined {
  let missing = 0;
  let extra = 0;
  let posts = 0;
  for (const k of new Set([...Object.keys(got), ...Object.keys(want)])) {
    const d = (got[k] ?? 0) - (want[k] ?? 0);
    if (d !== 0) posts++;
    if (d < 0) missing -= d;
    if (d > 0) extra += d;
  }
  return posts === 0 ? undefined : `${missing} events missing and ${extra} counted twice over ${posts} posts`;
}

function writeReport(rounds: RoundResult[], meta: { seed: number; short: boolean }): void {
  fs.mkdirSync(OUT, { recursive: true });
  const name = meta.short ? 'smoke' : 'latest';
  const byFault = FAULTS.map((fault) => {
    const rs = rounds.filter((r) => r.fault === fault);
    const resumed = rs.map((r) => r.ingest_resumed_ms).filter((x): x is number => x !== null);
    return {
      fault,
      rounds: rs.length,
      exact: rs.filter((r) => r.exact).length,
      ingest_resumed_ms_max: resumed.length ? Math.max(...resumed) : null,
      wrong_answer_ms: rs.reduce((a, r) => a + r.wrong_answer_ms, 0),
      longest_5xx_ms: rs.length ? Math.max(...rs.map((r) => r.longest_5xx_ms)) : 0,
      stalls: rs.reduce((a, r) => a + r.stalls.length, 0),
    };
  }).filter((f) => f.rounds > 0);
  const json = {
    generated_at: new Date().toISOString(),
    seed: meta.seed,
    stream: { regions: REGIONS, posts: POSTS, events_per_s: RATE, seconds: STREAM_S },
    summary: byFault,
    rounds,
  };
  fs.writeFileSync(path.join(OUT, `${name}.json`), `${JSON.stringify(json, null, 2)}\n`);
  const md = [
    `# Chaos run (${new Date().toISOString().slice(0, 10)}, seed ${meta.seed})`,
    '',
    `${rounds.length} rounds; each a stream of ${RATE} events/s for ${STREAM_S} s over ${REGIONS} regions, one fault at a random moment. ` +
      "Exact = Redis, the API and the Cassandra record equal the truth, and the round's windows are FINAL with snapshots equal to theirs. " +
      "A member stalled = an ingest member stuck while Redis answered, restarted by its stall watch (a defect to find; its report is in the round's output and the JSON).",
    '',
    '| fault | rounds | exact | ingest resumed (max) | wrong answers as live | longest 5xx stretch | members stalled (restarted) |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...byFault.map(
      (f) =>
        `| ${f.fault} | ${f.rounds} | ${f.exact} | ${f.ingest_resumed_ms_max === null ? '-' : `${(f.ingest_resumed_ms_max / 1000).toFixed(1)} s`} | ${f.wrong_answer_ms} ms | ${(f.longest_5xx_ms / 1000).toFixed(1)} s | ${f.stalls} |`,
    ),
    '',
    '| round | fault | at | down | exact | ingest resumed | wrong answers | longest 5xx | answers live / recovering / record / failed |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rounds.map(
      (r) =>
        `| ${r.round} | ${r.fault} | ${(r.at_ms / 1000).toFixed(1)} s | ${r.down_ms === null ? '-' : `${(r.down_ms / 1000).toFixed(1)} s`} | ${r.exact ? 'yes' : `**no**: ${r.failures[0] ?? ''}`} | ` +
        `${r.ingest_resumed_ms === null ? '-' : `${(r.ingest_resumed_ms / 1000).toFixed(1)} s`} | ${r.wrong_answer_ms} ms | ${(r.longest_5xx_ms / 1000).toFixed(1)} s | ` +
        `${r.answers.live} / ${r.answers.recovering} / ${r.answers.record} / ${r.answers.failed} |`,
    ),
    '',
  ].join('\n');
  fs.writeFileSync(path.join(OUT, `${name}.md`), md);
  log(`report: ${path.join('chaos', 'results', `${name}.md`)}`);
}

main().catch((e: Error) => {
  process.stderr.write(`chaos: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
