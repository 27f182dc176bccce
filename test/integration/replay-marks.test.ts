/**
 * Where a rebuild resumes each partition when regions share it (real Redis and Cassandra):
 * a region with events on a partition but no checkpoint yet is in no record row, so only a
 * complete checkpoint round's mark may move the resume point past its events.
 */
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { ActorSystem, type OffsetEvent } from '../../src/actors/region-actor';
import { migrate } from '../../src/bootstrap/cassandra';
import { cassandraClient, opsRedis } from '../../src/clients';
import { EPOCH_KEY, regionMetaKey, regionTopKey } from '../../src/keys';
import { advancePosition, readPositions } from '../../src/store/positions';
import { RegionRecord } from '../../src/store/record';
import { cfg, unique } from '../helpers';
import { freeRedisDb, restoreUnderLock } from '../support/redis';

describe('rebuild resume points with regions sharing a partition (real Redis and Cassandra)', function () {
  this.timeout(60_000);
  const cassandra = cassandraClient(cfg, 'admin');
  const keyspace = unique('hh_marks').toLowerCase();
  const topic = unique('marks.views');
  const [A, B] = [unique('A'), unique('B')];
  const EPOCH = 'e0';
  let redis: Redis;
  let record: RegionRecord;

  before(async () => {
    redis = opsRedis(cfg, await freeRedisDb());
    await migrate(cfg, keyspace);
    record = new RegionRecord(redis, cassandra, { keyspace, windows: [], boundedK: 10, resume: { topic, logEnds: async () => new Map([[0, 10n]]) } });
  });
  after(async () => {
    await redis.flushdb();
    redis.disconnect();
    await cassandra.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await cassandra.shutdown();
  });
  beforeEach(async () => {
    await redis.flushdb();
    for (const t of ['region_counts', 'regions', 'replay_marks']) await cassandra.execute(`TRUNCATE ${keyspace}.${t}`);
    await redis.set(EPOCH_KEY, EPOCH);
    for (const r of [A, B]) await redis.hset(regionMetaKey(r), 'epoch', EPOCH);
    // Partition 0: B's events at offsets 0..4, A's at 5..9, all applied (the batch's mark is 9).
    const actors = new ActorSystem(redis, { windows: [], boundedK: 10, dedupHorizonMs: 600_000 });
    const ev = (i: number, region: string): OffsetEvent => ({
      offset: String(i),
      event: { event_id: `${region}-${i}`, post_id: 'p', region_id: region, timestamp: Date.now() },
    });
    await Promise.all([
      actors.actor(B).apply(
        0,
        [0, 1, 2, 3, 4].map((i) => ev(i, B)),
        EPOCH,
      ),
      actors.actor(A).apply(
        0,
        [5, 6, 7, 8, 9].map((i) => ev(i, A)),
        EPOCH,
      ),
    ]);
    expect(await advancePosition(redis, topic, EPOCH, 0, '9')).to.equal(true);
  });

  it('a Redis loss after only some regions were checkpointed replays the others from the beginning', async () => {
    expect(await record.checkpoint(A)).to.equal(1); // B's first checkpoint has not run yet
    await redis.flushdb(); // Redis loses everything
    await restoreUnderLock(redis, record);
    expect(await redis.zscore(regionTopKey(A), 'p')).to.equal('5');
    expect(await redis.exists(regionTopKey(B))).to.equal(0);
    // B's events (offsets 0..4) are below A's recorded offset 9: the replay must start at 0.
    expect((await readPositions(redis, topic, [0])).next.get(0)).to.equal(0n);
  });

  it('after a complete checkpoint round, the rebuild resumes after the lower of the round mark and each region offset', async () => {
    await record.checkpointAll();
    expect(await record.replayMarks(topic)).to.deep.equal(new Map([[0, 9n]]));
    await redis.flushdb();
    await restoreUnderLock(redis, record);
    expect(await redis.zscore(regionTopKey(A), 'p')).to.equal('5');
    expect(await redis.zscore(regionTopKey(B), 'p')).to.equal('5');
    // Both regions are recorded (A up to 9, B up to 4) and the round mark is 9: from 5 (A's
    // replayed events are fenced).
    expect((await readPositions(redis, topic, [0])).next.get(0)).to.equal(5n);
  });
});
