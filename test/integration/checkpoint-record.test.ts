/**
 * A region checkpoint of any size reaches the record whole or not at all (real Redis and
 * Cassandra). A cut larger than one Cassandra batch should hold (MAX_ATOMIC_ENTRIES, or
 * MAX_ATOMIC_BYTES of a 16 MiB request frame) is staged, committed by one row and applied;
 * whatever moment the writer stops at, readers and a rebuild see either the previous cut or
 * the new one, each with its own offsets, never counts of one with offsets of the other.
 */
import { expect } from 'chai';
import { killAfterStarted } from '../support/kill-child';
import type { Client } from 'cassandra-driver';
import { Redis } from 'ioredis';
import { migrate } from '../../src/bootstrap/cassandra';
import { cassandraClient, opsRedis } from '../../src/clients';
import { REGIONS_KEY, regionDirtyEntriesKey, regionDirtyKey, regionOffsetsKey, regionTopKey } from '../../src/keys';
import { RegionRecord } from '../../src/store/record';
import { Checkpointer } from '../../src/runtime/checkpointer';
import type { Worker } from 'node:worker_threads';
import { cfg, unique } from '../helpers';
import { freeRedisDb, restoreUnderLock } from '../support/redis';

describe('checkpoints of any size reach the record whole or not at all (real Redis and Cassandra)', function () {
  this.timeout(300_000);
  const cassandra = cassandraClient(cfg, 'admin');
  const keyspace = unique('hh_cut').toLowerCase();
  let region = '';
  let db = 0;
  let redis: Redis;
  let restored: Redis;

  const record = (client: Client = cassandra, atomicEntries?: number, on: Redis = redis) =>
    new RegionRecord(on, client, { keyspace, windows: [], boundedK: 10, atomicEntries });

  /**
   * Makes the region's all-time entries p0..p(n-1) dirty with counts i + plus, applied up to
   * `offset` on partition 0; with `pad`, each post id is `p<i>.` and that many more characters.
   */
  async function seed(n: number, plus: number, offset: number, pad = 0): Promise<void> {
    const tail = pad ? `.${'x'.repeat(pad)}` : '';
    for (let i = 0; i < n; i += 10_000) {
      const fields: string[] = [];
      for (let j = i; j < Math.min(n, i + 10_000); j++) fields.push(`p${j}${tail}`, String(j + plus));
      await redis.hset(regionDirtyEntriesKey(region, 'all'), ...fields);
    }
    await redis.sadd(regionDirtyKey(region), 'all');
    await redis.sadd(REGIONS_KEY, region);
    await redis.hset(regionOffsetsKey(region), '0', String(offset));
  }

  /** The region_counts table as stored (no overlay): offsets of partition 0 and every all-time count. */
  async function stored(): Promise<{ offset: string | undefined; counts: Map<string, number> }> {
    const counts = new Map<string, number>();
    let offset: string | undefined;
    let pageState: string | undefined;
    do {
      const rs = await cassandra.execute(`SELECT key_id, counts, offsets FROM ${keyspace}.region_counts WHERE region_id = ?`, [region], {
        prepare: true,
        fetchSize: 10,
        pageState,
      });
      for (const r of rs.rows) {
        offset ??= (r.get('offsets') as Map<number, unknown> | null)?.get(0)?.toString();
        if (r.get('key_id') === 'all') for (const [p, c] of r.get('counts') as Map<string, unknown>) counts.set(p, Number(c));
      }
      pageState = rs.pageState ?? undefined;
    } while (pageState);
    return { offset, counts };
  }

  /** How many entries of `counts` are i + plus (p<i>, padded or not). */
  const matching = (counts: Iterable<[string, number]>, plus: number) => [...counts].filter(([p, c]) => c === parseInt(p.slice(1), 10) + plus).length;

  /** Whether the region's last checkpoint went through the stage (only a staged cut writes a commit row). */
  const commitRows = async () =>
    Number(
      (await cassandra.execute(`SELECT count(*) AS n FROM ${keyspace}.checkpoint_commits WHERE region_id = ?`, [region], { prepare: true })).rows[0].get('n'),
    );

  /** A client whose batches fail once `failAt` of those writing `table` have succeeded. */
  function failing(table: string, failAt: number): Client {
    let n = 0;
    return new Proxy(cassandra, {
      get(target, prop) {
        if (prop === 'batch')
          return async (queries: { query: string }[], opts: object) => {
            if (queries[0].query.includes(`.${table} `) && n++ >= failAt) throw new Error(`injected: ${table} batch ${n} fails`);
            return target.batch(queries, opts);
          };
        const v = Reflect.get(target, prop) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }

  /** A checkpoint whose `table` batches fail after the first one stops with the injected error. */
  const expectInjectedFailure = (table: string) =>
    record(failing(table, 1), 500)
      .checkpoint(region)
      .then(
        () => expect.fail('the injected failure should stop the checkpoint'),
        (e: Error) => expect(e.message).to.match(new RegExp(`injected: ${table}`)),
      );

  before(async () => {
    await migrate(cfg, keyspace);
    db = await freeRedisDb();
    redis = opsRedis(cfg, db);
    await redis.set('claimed', 'checkpoint-record'); // so that the next free database is another one
    restored = opsRedis(cfg, await freeRedisDb());
  });
  beforeEach(async () => {
    region = unique('R');
    await redis.flushdb();
    await restored.flushdb();
  });
  after(async () => {
    for (const r of [redis, restored]) {
      await r.flushdb();
      r.disconnect();
    }
    await cassandra.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await cassandra.shutdown();
  });

  /** Checkpoints N seeded entries (post ids padded by `pad`) and checks the record, a read and a rebuild hold them whole, with their offsets. */
  async function wholeCut(N: number, opts: { atomicEntries?: number; pad?: number }): Promise<void> {
    await seed(N, 1, 41, opts.pad);
    expect(await record(cassandra, opts.atomicEntries).checkpoint(region)).to.equal(N);
    const { offset, counts } = await stored();
    expect(offset).to.equal('41');
    expect(counts.size).to.equal(N);
    expect(matching(counts, 1)).to.equal(N);
    const read = await record().readKey(region, 'all');
    expect(read!.top).to.have.length(N);
    expect(parseInt(read!.top[0].post_id.slice(1), 10)).to.equal(N - 1);
    expect(read!.top[0].view_count).to.equal(N);
    await restoreUnderLock(restored, record(cassandra, undefined, restored));
    expect(await restored.zcard(regionTopKey(region))).to.equal(N);
    expect(await restored.hget(regionOffsetsKey(region), '0')).to.equal('41');
    const staged = await cassandra.execute(`SELECT count(*) AS n FROM ${keyspace}.checkpoint_stage`);
    expect(Number(staged.rows[0].get('n'))).to.equal(0); // none, or applied and dropped
  }

  it('writes a cut of 70,000 entries as ONE batch (no stage, no commit row), whole, with its offsets, and a rebuild restores it', async () => {
    // Until 2026-12-04 a cut over 60,000 entries (or 4 MiB counted at 40 bytes and the key id
    // an entry) was staged: busy regions' cuts paid the stage's many times higher cost.
    await wholeCut(70_000, {});
    expect(await commitRows(), 'a commit row: the cut was staged').to.equal(0);
  });

  it('stages a cut over the entry limit (here 50,000): whole, with its offsets, and a rebuild restores it', async () => {
    await wholeCut(70_000, { atomicEntries: 50_000 });
    expect(await commitRows(), 'no commit row: the cut was not staged').to.equal(1);
  });

  it('stages a cut under the entry limit whose bytes pass MAX_ATOMIC_BYTES (one batch would pass the 16 MiB request frame)', async () => {
    // 60,000 ids of ~300 bytes: ~19 MB of map entries, refused by Cassandra as one batch ("Request is too big").
    await wholeCut(60_000, { pad: 300 });
    expect(await commitRows(), 'no commit row: the cut was not staged').to.equal(1);
  });

  it('stopped after its commit and halfway through applying: readers and a rebuild see the new cut whole, with its offsets', async () => {
    const N = 3_000;
    await seed(N, 1, 41);
    expect(await record(cassandra, 500).checkpoint(region)).to.equal(N);
    await seed(N, 2, 99);
    await expectInjectedFailure('region_counts');
    // The table alone is half old, half new, with the old offsets: what the commit row is for.
    const half = await stored();
    expect(half.offset).to.equal('41');
    expect(matching(half.counts, 2)).to.be.within(1, N - 1);
    const read = await record().readKey(region, 'all');
    expect(
      matching(
        read!.top.map((r) => [r.post_id, r.view_count]),
        2,
      ),
    ).to.equal(N);
    await restoreUnderLock(restored, record(cassandra, undefined, restored));
    const counts = await restored.zrange(regionTopKey(region), 0, -1, 'WITHSCORES');
    const pairs: [string, number][] = [];
    for (let i = 0; i < counts.length; i += 2) pairs.push([counts[i], Number(counts[i + 1])]);
    expect(matching(pairs, 2)).to.equal(N);
    expect(await restored.hget(regionOffsetsKey(region), '0')).to.equal('99');
    const after = await stored(); // rolled forward by the rebuild
    expect(after.offset).to.equal('99');
    expect(matching(after.counts, 2)).to.equal(N);
  });

  it('stopped while staging: nothing of the cut counts, its stage is dropped, and the next checkpoint writes it', async () => {
    const N = 3_000;
    await seed(N, 1, 41);
    await record(cassandra, 500).checkpoint(region);
    await seed(N, 2, 99);
    await expectInjectedFailure('checkpoint_stage');
    const before = await stored();
    expect(before.offset).to.equal('41');
    expect(matching(before.counts, 1)).to.equal(N);
    expect(
      matching(
        (await record().readKey(region, 'all'))!.top.map((r) => [r.post_id, r.view_count]),
        1,
      ),
    ).to.equal(N);
    const staged = await cassandra.execute(`SELECT count(*) AS n FROM ${keyspace}.checkpoint_stage WHERE region_id = ? ALLOW FILTERING`, [region]);
    expect(Number(staged.rows[0].get('n'))).to.equal(0);
    expect(await record(cassandra, 500).checkpoint(region)).to.equal(N);
    const now = await stored();
    expect(now.offset).to.equal('99');
    expect(matching(now.counts, 2)).to.equal(N);
  });

  it('killed (kill -9) at a random moment of a staged checkpoint: the record holds one whole cut, and the next checkpoint completes it', async () => {
    const N = 40_000;
    const ATOMIC = 5_000;
    const LEASE = 3_000; // the killed checkpointer's lock lease (60 s in production)
    await seed(N, 1, 41);
    const t0 = Date.now();
    await record(cassandra, ATOMIC).checkpoint(region);
    const took = Date.now() - t0; // the kill lands anywhere within a checkpoint's time
    const phases: string[] = [];
    for (let round = 0; round < 5; round++) {
      const prev = { plus: round + 1, offset: round === 0 ? 41 : 100 + round - 1 };
      const next = { plus: round + 2, offset: 100 + round };
      await seed(N, next.plus, next.offset);
      const delay = Math.floor(Math.random() * took);
      const out = await killAfterStarted('checkpoint-child.ts', [String(db), keyspace, region, String(ATOMIC), String(LEASE)], delay);
      // Whatever the moment: one whole cut, with its own offsets.
      const read = await record().readKey(region, 'all');
      const readPairs = read!.top.map((r) => [r.post_id, r.view_count] as [string, number]);
      const atNext = matching(readPairs, next.plus) === N;
      expect(atNext || matching(readPairs, prev.plus) === N, `round ${round}: readers see one whole cut`).to.equal(true);
      await restored.flushdb();
      await restoreUnderLock(restored, record(cassandra, ATOMIC, restored));
      const offset = Number(await restored.hget(regionOffsetsKey(region), '0'));
      const flat = await restored.zrange(regionTopKey(region), 0, -1, 'WITHSCORES');
      const pairs: [string, number][] = [];
      for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i], Number(flat[i + 1])]);
      const whole = offset === next.offset ? next : prev;
      expect([prev.offset, next.offset], `round ${round}: offsets`).to.include(offset);
      expect(matching(pairs, whole.plus), `round ${round}: counts of the cut at offset ${offset}`).to.equal(N);
      phases.push(`${delay} ms → ${out.includes('done') ? 'finished' : offset === next.offset ? 'committed' : 'not committed'}`);
      // The operator's restart: once the dead checkpointer's lease runs out, the next
      // checkpoint completes whatever was left.
      const rec = record(cassandra, ATOMIC);
      while ((await rec.checkpoint(region)) === 'busy') await new Promise((r) => setTimeout(r, 250));
      const now = await stored();
      expect(now.offset, `round ${round}: after the next checkpoint`).to.equal(String(next.offset));
      expect(matching(now.counts, next.plus)).to.equal(N);
    }
    console.log(`      checkpoint of ${N} entries: ${took} ms; kill -9 after ${phases.join('; ')}`);
  });
  it("runs on a worker's checkpoint thread: the cut reaches the record whole, a failure reaches the caller, a dead thread is started again", async () => {
    const env = { ...process.env, HH_REDIS_DB: String(db), HH_CASSANDRA_KEYSPACE: keyspace };
    const checkpointer = new Checkpointer(env);
    const missing = new Checkpointer({ ...env, HH_CASSANDRA_KEYSPACE: 'hh_no_such_keyspace' });
    try {
      await seed(5_000, 3, 77);
      expect(await checkpointer.checkpointAll()).to.equal(5_000);
      const first = await stored();
      expect(first.offset).to.equal('77');
      expect(matching(first.counts, 3)).to.equal(5_000);
      // A failure on the thread is the caller's error; the changes stay marked.
      await seed(10, 5, 80);
      await missing.checkpointAll().then(
        () => expect.fail('a checkpoint into a missing keyspace should fail'),
        (e: Error) => expect(e.message).to.match(/hh_no_such_keyspace/),
      );
      // The thread dies (as if it crashed): the next request starts another.
      await (checkpointer as unknown as { worker: Worker }).worker.terminate();
      expect(await checkpointer.checkpointAll()).to.equal(10);
      const second = await stored();
      expect(second.offset).to.equal('80');
      expect(matching(second.counts, 5)).to.equal(10);
      expect(matching(second.counts, 3)).to.equal(4_990);
    } finally {
      await checkpointer.close();
      await missing.close();
    }
  });
});
