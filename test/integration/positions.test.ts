/**
 * Where consumption resumes (Redis's applied marks) and the replay state after a rebuild,
 * on a real Redis (a database of its own).
 */
import { opsRedis } from '../../src/clients';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { advancePosition, readPositions, readRecovery, writeRebuildPositions } from '../../src/store/positions';
import { EPOCH_KEY, appliedKey } from '../../src/keys';
import { RebuildLock } from '../../src/store/rebuild-lock';
import { cfg, unique } from '../helpers';
import { freeRedisDb } from '../support/redis';

describe('applied positions and the replay after a rebuild (real Redis)', () => {
  let redis: Redis;
  const topic = unique('pos');

  before(async () => {
    redis = opsRedis(cfg, await freeRedisDb());
  });
  after(async () => {
    await redis.flushdb();
    redis.disconnect();
  });

  it('a rebuild records the offsets every restored region has, a from-the-start default, and what the replay must reach', async () => {
    await redis.set(EPOCH_KEY, 'old');
    await redis.hset(appliedKey(topic), '0', '999', '1', '999'); // marks of the lost state: replaced
    const lock = (await RebuildLock.tryAcquire(redis))!;
    await writeRebuildPositions(
      lock,
      topic,
      { epoch: 'e1', at: 5, as_of: 4 },
      new Map([
        [0, 100n],
        [1, 250n],
      ]),
      new Map([
        [0, 300n],
        [1, 251n],
        [2, 40n],
        [3, 0n],
      ]),
    );
    await lock.release();
    await redis.set(EPOCH_KEY, 'e1');
    const read = await readPositions(redis, topic, [0, 1, 2, 3]);
    expect(read.epoch).to.equal('e1');
    // Partition 2 is in no region's record: it replays from its beginning.
    expect(Object.fromEntries(read.next)).to.deep.equal({ 0: 101n, 1: 251n, 2: 0n, 3: 0n });
    const rec = await readRecovery(redis, topic);
    expect(rec).to.deep.equal({ epoch: 'e1', at: 5, as_of: 4, partitions: [0, 2] }); // 1 has nothing to replay, 3 is empty
  });

  it('advances only under its epoch, never backwards, and ends the recovery once every partition reached its target', async () => {
    expect(await advancePosition(redis, topic, 'old', 0, '299')).to.equal(false);
    expect((await readPositions(redis, topic, [0])).next.get(0)).to.equal(101n);
    expect(await advancePosition(redis, topic, 'e1', 0, '200')).to.equal(true);
    expect(await advancePosition(redis, topic, 'e1', 0, '150')).to.equal(true); // a slower member's older batch
    expect((await readPositions(redis, topic, [0])).next.get(0)).to.equal(201n);
    expect((await readRecovery(redis, topic))!.partitions).to.deep.equal([0, 2]);
    await advancePosition(redis, topic, 'e1', 0, '299');
    expect((await readRecovery(redis, topic))!.partitions).to.deep.equal([2]);
    await advancePosition(redis, topic, 'e1', 2, '39');
    expect(await readRecovery(redis, topic)).to.equal(null);
  });

  it('without marks or a default (a Redis never rebuilt), a partition takes the group offset', async () => {
    const other = unique('pos');
    expect((await readPositions(redis, other, [4])).next.get(4)).to.equal(null);
  });
});
