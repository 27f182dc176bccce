/**
 * End to end: Cassandra as the record Redis is rebuilt from. The runtime runs on its own
 * Redis database, Cassandra keyspace, topic and group, so losing "everything" (FLUSHDB)
 * touches only what this test owns.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import type { Admin } from 'kafkajs';
import { RegionRecord } from '../../src/store/record';
import { ALL_TIME, EPOCH_KEY, regionBoundedKey, regionDirtyKey, regionInflightKey } from '../../src/keys';
import { mergeTruth, regionNames, truthTopK, type Truth } from '../../src/load/generator';
import { runningPid, stackPaths } from '../../scripts/stack/procs';
import { cfg as baseCfg, unique } from '../helpers';
import { Isolated } from '../../scripts/harness/isolated';
import { leaderboard } from '../support/redis';
import { dumpOnFailure } from '../support/failure';
import { eventually, startRuntime, waitDrained, type Runtime } from '../../scripts/harness/runtime';

const REGIONS = 8;
const POSTS = 20_000;
const ROOT = path.join(__dirname, '..', '..');
const TOKEN = 'test-admin-token-0123456789';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the Cassandra record: checkpoints, fallback and rebuild (end to end)', function () {
  this.timeout(600_000);
  const id = unique('rec');
  const prefix = `${id}_`;
  const regions = regionNames(REGIONS, prefix);
  const truth: Truth = {};
  const iso = new Isolated(id, {
    HH_WORKERS: '2',
    HH_TOPK_BOUNDED_K: '200',
    HH_CHECKPOINT_INTERVAL: '500ms',
    HH_INGEST_HEARTBEAT_TIMEOUT: '10s',
    HH_ADMIN_TOKEN: TOKEN,
  });
  const env = iso.env;
  let admin: Admin;
  let redis: Redis;
  let record: RegionRecord;
  let rt: Runtime;

  const produce = async (events: number, seed: number, opts: { rate?: number; onHalf?: () => void } = {}) => {
    mergeTruth(truth, await iso.produce({ events, seed, regions: REGIONS, posts: POSTS, prefix }, opts));
  };

  const drained = () => waitDrained(admin, env.HH_KAFKA_GROUP, env.HH_KAFKA_TOPIC);

  /** Every region's whole Redis leaderboard (and the bounded head) equals the truth. */
  const expectRedisExact = async () => {
    for (const r of regions) {
      expect(await leaderboard(redis, r), `${r} in Redis`).to.deep.equal(truth[r]);
      const bounded = await redis.zrevrange(regionBoundedKey(r), 0, 99, 'WITHSCORES');
      expect(bounded, `${r} bounded`).to.deep.equal(truthTopK(truth[r], 100).flatMap((p) => [p.post_id, String(p.view_count)]));
    }
  };

  /** Waits until no region has changes left to checkpoint. */
  const checkpointed = async () => {
    const t0 = Date.now();
    for (;;) {
      let pending = 0;
      for (const r of regions) pending += await redis.exists(regionDirtyKey(r), regionInflightKey(r));
      if (pending === 0) return;
      if (Date.now() - t0 > 180_000) throw new Error(`${pending} region(s) still not checkpointed after 180 s`);
      await sleep(250);
    }
  };

  /** Every region's recorded all-time counts equal the truth: nothing missing, nothing twice. */
  const expectRecordExact = async () => {
    for (const r of regions) {
      const rec = await record.readKey(r, ALL_TIME);
      const counts = Object.fromEntries((rec?.top ?? []).map((p) => [p.post_id, p.view_count]));
      expect(counts, `${r} in Cassandra`).to.deep.equal(truth[r]);
    }
  };

  const waitEpoch = async () => {
    for (let i = 0; i < 600 && (await redis.get(EPOCH_KEY)) === null; i++) await sleep(100);
    expect(await redis.get(EPOCH_KEY)).to.be.a('string');
  };

  before(async () => {
    await iso.setUp();
    ({ admin, redis } = iso);
    record = new RegionRecord(redis, iso.cassandra, { keyspace: iso.keyspace, windows: baseCfg.ingest.windows, boundedK: 200 });
    rt = await startRuntime(env);
  });

  afterEach(function () {
    dumpOnFailure(this, rt);
  });

  after(async () => {
    await iso.tearDown(rt, regions);
  });

  it('checkpoints exact all-time counts into Cassandra', async () => {
    await produce(100_000, 21);
    await drained();
    await checkpointed();
    await expectRecordExact();
  });

  it('after FLUSHDB the API answers from the record, and the rebuild restores Redis exactly', async () => {
    await redis.flushdb();
    const sources = new Set<string>();
    for (const r of regions) {
      for (const k of [10, 100]) {
        const res = await fetch(`${rt.api}/top-posts?region=${r}&k=${k}`);
        expect(res.status, r).to.equal(200);
        const body = (await res.json()) as { source: string; top_posts: { post_id: string; view_count: number }[] };
        sources.add(body.source);
        expect(
          body.top_posts.map((p) => ({ post_id: p.post_id, view_count: p.view_count })),
          `${r} top ${k} (${body.source})`,
        ).to.deep.equal(truthTopK(truth[r], k));
      }
    }
    expect([...sources]).to.include('record');
    await waitEpoch();
    await eventually(expectRedisExact);
  });

  it('a loss right after new events (not yet checkpointed) is made good by the Kafka replay', async () => {
    await produce(50_000, 22);
    await redis.flushdb(); // the last checkpoints do not hold all of these events yet
    await waitEpoch();
    // The rewound consumers replay from the recorded offsets; the fences skip what the record had.
    await eventually(expectRedisExact);
    await drained();
    await checkpointed();
    await expectRecordExact();
  });

  it('POST /admin/rebuild needs the token, then rebuilds Redis from the record exactly', async () => {
    expect((await fetch(`${rt.api}/admin/rebuild`, { method: 'POST' })).status).to.equal(401);
    const res = await fetch(`${rt.api}/admin/rebuild`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).to.equal(200);
    const body = (await res.json()) as { restored: number };
    expect(body.restored).to.equal(REGIONS);
    await eventually(expectRedisExact);
  });

  it('a worker killed (-9) between a checkpoint and its offset commit double counts nothing', async () => {
    const victim = rt.workers.get(2)!;
    await produce(100_000, 23, { onHalf: () => process.kill(victim, 'SIGKILL') });
    for (let i = 0; i < 100 && (rt.workers.get(2) ?? victim) === victim; i++) await sleep(200);
    expect(rt.workers.get(2)).to.not.equal(victim);
    await drained();
    await expectRedisExact();
    await checkpointed();
    await expectRecordExact();
  });

  it('with Cassandra stopped during ingest the API keeps answering from Redis (degraded); after it returns the record catches up exactly', async function () {
    const stackDir = stackPaths(baseCfg.stack.dir);
    if (runningPid(stackDir, 'cassandra') === undefined) {
      this.skip(); // Cassandra was not started by this checkout's stack: not ours to stop
    }
    const stack = (...args: string[]) =>
      execFileSync(process.execPath, [path.join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs'), path.join(ROOT, 'scripts', 'stack', 'index.ts'), ...args], {
        stdio: 'pipe',
        timeout: 300_000,
      });
    stack('down', 'cassandra');
    try {
      const load = produce(40_000, 24, { rate: 10_000 });
      await sleep(1000);
      const health = await fetch(`${rt.api}/healthz`);
      expect(health.status).to.equal(200);
      const h = (await health.json()) as { status: string; dependencies: Record<string, { up: boolean }> };
      expect(h.status).to.equal('degraded');
      expect(h.dependencies.cassandra.up).to.equal(false);
      await load;
      await drained();
      const top = (await (await fetch(`${rt.api}/top-posts?region=${regions[0]}&k=10`)).json()) as { source: string; metadata: string };
      expect(top.source).to.equal('redis');
      await expectRedisExact();
      const metrics = await (await fetch(`${rt.api}/metrics`)).text();
      expect(Number(/^hh_checkpoint_failures_total (\d+)/m.exec(metrics)?.[1])).to.be.greaterThan(0);
    } finally {
      stack('up');
    }
    await checkpointed();
    // This process's own Cassandra client reconnects on its schedule (it may not have yet).
    await eventually(expectRecordExact, 60_000);
    expect(((await (await fetch(`${rt.api}/healthz`)).json()) as { status: string }).status).to.equal('ok');
  });
});
