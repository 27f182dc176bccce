/**
 * Rebuilding Redis from the record while other processes race it and Redis is lost again
 * mid-way (real Redis and Cassandra). The record is written by real checkpoints; what every
 * region must end with is counted independently from the events applied.
 */
import { expect } from 'chai';
import { Redis } from 'ioredis';
import sinon from 'sinon';
import { ActorSystem, type OffsetEvent } from '../../src/actors/region-actor';
import { migrate } from '../../src/bootstrap/cassandra';
import { cassandraClient, opsRedis } from '../../src/clients';
import { EPOCH_KEY, REBUILD_LOCK_KEY, REGIONS_KEY, regionMetaKey } from '../../src/keys';
import { RegionRecord } from '../../src/store/record';
import { ensureEpoch } from '../../src/store/rebuild';
import { cfg, unique } from '../helpers';
import { freeRedisDb, leaderboard } from '../support/redis';

describe('the rebuild from the record, raced and interrupted (real Redis and Cassandra)', function () {
  this.timeout(120_000);
  const keyspace = unique('hh_rebuild').toLowerCase();
  const regions = [unique('R1'), unique('R2'), unique('R3')];
  const EPOCH = 'e0';
  const truth: Record<string, Record<string, number>> = {};
  const cassandra = cassandraClient(cfg, 'admin');
  const clients: Redis[] = [];
  const cassandras = [cassandra];
  const sandbox = sinon.createSandbox();
  let db: number;
  let redis: Redis;
  const newClient = () => {
    const c = opsRedis(cfg, db);
    clients.push(c);
    return c;
  };
  const newRecord = (r: Redis, c = cassandra) => new RegionRecord(r, c, { keyspace, windows: [], boundedK: 10 });
  const quiet = () => undefined;

  before(async () => {
    db = await freeRedisDb();
    redis = newClient();
    await redis.flushdb();
    await migrate(cfg, keyspace);
    await redis.set(EPOCH_KEY, EPOCH);
    const actors = new ActorSystem(redis, { windows: [], boundedK: 10, dedupHorizonMs: 600_000 });
    // Each region its own counts (region i: posts p0..p(9+i), post j viewed j+1+i times).
    let offset = 0;
    for (const [i, region] of regions.entries()) {
      await redis.hset(regionMetaKey(region), 'epoch', EPOCH);
      truth[region] = {};
      const events: OffsetEvent[] = [];
      for (let j = 0; j < 10 + i; j++) {
        const post = `p${j}`;
        for (let n = 0; n < j + 1 + i; n++) {
          events.push({ offset: String(offset++), event: { event_id: `${region}-${post}-${n}`, post_id: post, region_id: region, timestamp: Date.now() } });
          truth[region][post] = (truth[region][post] ?? 0) + 1;
        }
      }
      await actors.actor(region).apply(i, events, EPOCH);
    }
    const record = newRecord(redis);
    for (const region of regions)
      expect(await record.checkpoint(region))
        .to.be.a('number')
        .above(0);
    for (const region of regions) expect(await leaderboard(redis, region), region).to.deep.equal(truth[region]);
  });
  afterEach(async () => {
    sandbox.restore();
    await redis.del(EPOCH_KEY, REBUILD_LOCK_KEY);
  });
  after(async () => {
    await redis.flushdb();
    for (const c of clients) c.disconnect();
    await cassandra.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    for (const c of cassandras) await c.shutdown();
  });

  /** Every region back exactly, under the epoch Redis publishes. */
  const expectRestored = async (epoch: string) => {
    expect(await redis.get(EPOCH_KEY)).to.equal(epoch);
    expect((await redis.smembers(REGIONS_KEY)).sort()).to.deep.equal([...regions].sort());
    for (const region of regions) {
      expect(await leaderboard(redis, region), `${region} in Redis`).to.deep.equal(truth[region]);
      expect(await redis.hget(regionMetaKey(region), 'epoch'), `${region}'s epoch`).to.equal(epoch);
    }
  };

  /**
   * A Cassandra client for one record whose read of the Nth region's rows first runs
   * `before` (a Redis loss in the middle of that record's rebuild).
   */
  const interruptedAt = (nth: number, before: () => Promise<void>) => {
    const client = cassandraClient(cfg, 'admin');
    cassandras.push(client);
    const execute = client.execute.bind(client);
    const seen = new Set<string>();
    let fired = false;
    sandbox.stub(client, 'execute').callsFake((async (query: string, params?: unknown[], options?: object) => {
      if (/FROM \S+\.region_counts WHERE/.test(query) && Array.isArray(params)) {
        seen.add(String(params[0]));
        if (seen.size === nth && !fired) {
          fired = true;
          await before();
        }
      }
      return execute(query, params as never, options as never);
    }) as never);
    return client;
  };

  it('a rebuild that ends while another process waits for the lock is not run again by it', async () => {
    await redis.flushdb();
    const [a, b] = [newClient(), newClient()];
    const [recordA, recordB] = [newRecord(a), newRecord(b)];
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const restoreA = recordA.restoreAll.bind(recordA);
    sandbox.stub(recordA, 'restoreAll').callsFake(async (...args: Parameters<RegionRecord['restoreAll']>) => {
      await gate; // A holds the lock, not yet rebuilt
      return restoreA(...args);
    });
    const restoreB = sandbox.spy(recordB, 'restoreAll');
    const first = ensureEpoch(a, recordA, quiet);
    while (!(await redis.exists(REBUILD_LOCK_KEY))) await new Promise((r) => setTimeout(r, 5));
    // B reads "no epoch" while A rebuilds; A then finishes and lets the lock go before B
    // tries to take it.
    const get = b.get.bind(b);
    let delayed = false;
    sandbox.stub(b, 'get').callsFake((async (key: string) => {
      const value = await get(key);
      if (key === EPOCH_KEY && !delayed) {
        delayed = true;
        open();
        await first;
      }
      return value;
    }) as never);
    const second = await ensureEpoch(b, recordB, quiet);
    expect(second).to.equal(await first);
    expect(restoreB.callCount, 'rebuilds by the process that waited').to.equal(0);
    await expectRestored(second);
  });

  it('Redis lost in the middle of a rebuild (FLUSHDB): the rebuild starts over, and publishes an epoch only over every region', async () => {
    await redis.flushdb();
    const a = newClient();
    const record = newRecord(
      a,
      interruptedAt(2, () => redis.flushdb().then(() => undefined)),
    );
    const epoch = await ensureEpoch(a, record, quiet);
    await expectRestored(epoch);
  });

  it('Redis lost in the middle of a rebuild while another process then rebuilds it: the first writes nothing more and takes the other epoch', async () => {
    await redis.flushdb();
    const [a, b] = [newClient(), newClient()];
    let other: Promise<string> | undefined;
    const recordA = newRecord(
      a,
      interruptedAt(2, async () => {
        await redis.flushdb(); // the lock goes with everything else
        other = ensureEpoch(b, newRecord(b), quiet); // a process that finds no epoch
        await other;
      }),
    );
    const epoch = await ensureEpoch(a, recordA, quiet);
    expect(epoch).to.equal(await other);
    await expectRestored(epoch);
  });
});
