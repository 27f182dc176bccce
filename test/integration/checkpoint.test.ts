/**
 * The checkpoint's cut on real Redis: the flush-recorded counts and the offsets are taken
 * in one step, read in pages, and reach the record whole or not at all (the Cassandra
 * client is a sinon stub here: what matters is what would be written).
 */
import { opsRedis } from '../../src/clients';
import { expect } from 'chai';
import sinon from 'sinon';
import { Redis } from 'ioredis';
import { Client as CassandraClient, type Client } from 'cassandra-driver';
import { RECORD_BUCKETS, RegionRecord, recordBucket } from '../../src/store/record';
import { loadConfig } from '../../src/config';
import { REGIONS_KEY, regionDirtyEntriesKey, regionDirtyKey, regionInflightEntriesKey, regionInflightKey, regionOffsetsKey } from '../../src/keys';
import { freeRedisDb } from '../support/redis';
import { decodeCounts } from '../support/cassandra-wire';
import { cfg, unique } from '../helpers';

describe('checkpoint cut (real Redis)', () => {
  let redis: Redis;
  const region = unique('cut');
  const ENTRIES = 12_000; // several HSCAN pages

  before(async () => {
    redis = opsRedis(cfg, await freeRedisDb());
  });
  beforeEach(async () => {
    await redis.flushdb();
    const fields: string[] = [];
    for (let i = 0; i < ENTRIES; i++) fields.push(`p${i}`, String(i + 1));
    await redis.hset(regionDirtyEntriesKey(region, 'all'), ...fields);
    await redis.sadd(regionDirtyKey(region), 'all');
    await redis.hset(regionOffsetsKey(region), '3', '41');
  });
  after(async () => {
    await redis.flushdb();
    redis.disconnect();
  });

  const record = (cassandra: { execute: sinon.SinonStub; batch: sinon.SinonStub }) =>
    new RegionRecord(redis, cassandra as unknown as Client, { keyspace: 'ks', windows: loadConfig({}).ingest.windows, boundedK: 10 });

  it('writes every entry of the cut with the offsets taken with it, in one batch, and clears the cut', async () => {
    const cassandra = { execute: sinon.stub().resolves({ rows: [] }), batch: sinon.stub().resolves() };
    expect(await record(cassandra).checkpoint(region)).to.equal(ENTRIES);
    expect(cassandra.batch.callCount).to.equal(1);
    const queries = cassandra.batch.firstCall.args[0] as { params: unknown[] }[];
    // The offsets row, then one map of counts per bucket of posts holding every entry once.
    expect(queries).to.have.length(1 + Math.min(ENTRIES, RECORD_BUCKETS));
    expect(String((queries[0].params[1] as Record<string, unknown>)[3])).to.equal('41');
    const written = new Map<string, number>();
    for (const q of queries.slice(1))
      for (const [post, count] of decodeCounts(q.params[2])) {
        expect(written.has(post), `${post} written twice`).to.equal(false);
        expect(q.params[5]).to.equal(recordBucket(post));
        written.set(post, Number(String(count)));
      }
    expect(written.size).to.equal(ENTRIES);
    expect([...written.values()].reduce((a, b) => a + b, 0)).to.equal((ENTRIES * (ENTRIES + 1)) / 2);
    expect(await redis.exists(regionDirtyKey(region), regionInflightKey(region))).to.equal(0);
  });

  it('folds a cut that never committed back into the changes in pages (newer counts win), not inside the cut script', async () => {
    const failing = { execute: sinon.stub().resolves({ rows: [] }), batch: sinon.stub().rejects(new Error('Cassandra timed out')) };
    await record(failing)
      .checkpoint(region)
      .then(
        () => expect.fail('the batch failed'),
        (e: Error) => expect(e.message).to.match(/timed out/),
      );
    expect(await redis.hlen(regionInflightEntriesKey(region, 'all')), 'the uncommitted cut').to.equal(ENTRIES);
    // Flushes after the failed cut: half the posts counted again, a new post.
    const again: string[] = [];
    for (let i = 0; i < ENTRIES / 2; i++) again.push(`p${i}`, String(10 * (i + 1)));
    await redis.hset(regionDirtyEntriesKey(region, 'all'), ...again, `p${ENTRIES}`, '7');
    await redis.sadd(regionDirtyKey(region), 'all');
    await redis.hset(regionOffsetsKey(region), '3', '57');
    // When the cut script runs, nothing of the old cut is left for it to merge (it would
    // HSET each of the 6,001 changes into the old cut's 12,000 within one call).
    const cutScript = (redis as unknown as { hhCheckpoint: (...a: unknown[]) => Promise<unknown> }).hhCheckpoint.bind(redis);
    const leftAtCut: number[] = [];
    sinon.stub(redis as unknown as { hhCheckpoint: () => Promise<unknown> }, 'hhCheckpoint').callsFake(async (...a: unknown[]) => {
      leftAtCut.push(await redis.exists(regionInflightEntriesKey(region, 'all')));
      return cutScript(...a);
    });
    const cassandra = { execute: sinon.stub().resolves({ rows: [] }), batch: sinon.stub().resolves() };
    try {
      expect(await record(cassandra).checkpoint(region)).to.equal(ENTRIES + 1);
    } finally {
      sinon.restore();
    }
    expect(leftAtCut, 'the old cut still there when the cut script ran').to.deep.equal([0]);
    const queries = cassandra.batch.firstCall.args[0] as { params: unknown[] }[];
    expect(String((queries[0].params[1] as Record<string, unknown>)[3])).to.equal('57');
    const written = new Map<string, number>();
    for (const q of queries.slice(1)) for (const [post, count] of decodeCounts(q.params[2])) written.set(post, count);
    const want = new Map<string, number>();
    for (let i = 0; i < ENTRIES; i++) want.set(`p${i}`, i < ENTRIES / 2 ? 10 * (i + 1) : i + 1);
    want.set(`p${ENTRIES}`, 7);
    expect(written).to.deep.equal(want);
    expect(await redis.exists(regionDirtyKey(region), regionInflightKey(region), regionInflightEntriesKey(region, 'all'))).to.equal(0);
  });

  it('refuses a Cassandra client that would encode its maps of counts as empty maps (no encoding.map option)', () => {
    const plain = new CassandraClient({ contactPoints: ['127.0.0.1:1'], localDataCenter: 'dc1' });
    expect(() => new RegionRecord(redis, plain, { keyspace: 'ks', windows: [], boundedK: 10 })).to.throw(/maps as Map/);
    const withMaps = new CassandraClient({ contactPoints: ['127.0.0.1:1'], localDataCenter: 'dc1', encoding: { map: Map } });
    expect(() => new RegionRecord(redis, withMaps, { keyspace: 'ks', windows: [], boundedK: 10 })).to.not.throw();
  });

  it('writes nothing when Redis loses the cut while it is being read', async () => {
    const cassandra = { execute: sinon.stub().resolves({ rows: [] }), batch: sinon.stub().resolves() };
    const rec = record(cassandra);
    const hscan = redis.hscan.bind(redis);
    const stub = sinon.stub(redis, 'hscan').callsFake(async (...args: Parameters<Redis['hscan']>) => {
      const page = await hscan(...args);
      if (stub.callCount === 1) await redis.flushdb(); // lost after the first page
      return page;
    });
    try {
      await rec.checkpoint(region).then(
        () => expect.fail('the checkpoint should refuse a partial cut'),
        (e: Error) => expect(e.message).to.match(/cut changed while it was read/),
      );
    } finally {
      stub.restore();
    }
    expect(cassandra.batch.callCount).to.equal(0);
  });

  it('runs one timed round per interval whatever the number of workers asking, and tells the others when it succeeded', async () => {
    await redis.sadd(REGIONS_KEY, region);
    const stubs = [0, 1].map(() => ({ execute: sinon.stub().resolves({ rows: [] }), batch: sinon.stub().resolves() }));
    const [a, b] = stubs.map((c) => record(c));
    const t0 = Date.now();
    const rounds = await Promise.all([a.checkpointRound(400), b.checkpointRound(400)]);
    const ran = rounds.filter((r) => r.written !== null);
    expect(ran).to.have.length(1);
    expect(ran[0].written).to.equal(ENTRIES);
    expect(stubs[0].batch.callCount + stubs[1].batch.callCount).to.equal(1);
    // The skipping worker learns of the round from Redis (its gauge of the last success).
    const later = await (rounds[0].written === null ? a : b).checkpointRound(400);
    expect(later.written).to.equal(null);
    expect(later.lastOk).to.be.within(t0, Date.now());
    // Once the interval is over, the next ask runs the next round (nothing changed: 0 written).
    await new Promise((r) => setTimeout(r, 400));
    expect((await b.checkpointRound(400)).written).to.equal(0);
  });
});
