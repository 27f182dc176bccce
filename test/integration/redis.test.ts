import { expect } from 'chai';
import { opsRedis } from '../../src/clients';
import { Redis } from 'ioredis';
import { cfg, unique } from '../helpers';
import { regionTopKey } from '../../src/keys';

describe('redis (real server)', () => {
  let redis: Redis;
  const region = unique('r');
  before(() => {
    redis = opsRedis(cfg);
  });
  after(async () => {
    await redis.del(regionTopKey(region));
    redis.disconnect();
  });

  it('is Redis 7', async () => {
    const info = await redis.info('server');
    expect(/redis_version:(\d+)\./.exec(info)?.[1]).to.equal('7');
  });

  it('keeps a sorted-set leaderboard through pipelined ZINCRBY', async () => {
    const key = regionTopKey(region);
    const p = redis.pipeline();
    for (let i = 0; i < 100; i++) p.zincrby(key, 1, `post-${i % 7}`);
    await p.exec();
    const top = await redis.zrevrange(key, 0, 2, 'WITHSCORES');
    // 100 = 7*14 + 2: posts 0 and 1 get 15, the rest 14.
    expect(top).to.deep.equal(['post-1', '15', 'post-0', '15', 'post-6', '14']);
    expect(await redis.zcard(key)).to.equal(7);
  });

  it("keeps one region's keys in one cluster slot (hash tag)", async () => {
    const slot = (k: string) => redis.call('CLUSTER', 'KEYSLOT', k).catch(() => null);
    // CLUSTER KEYSLOT answers only in cluster mode; check the tag itself otherwise.
    const s = await slot(regionTopKey(region));
    if (s === null) expect(regionTopKey(region)).to.contain(`{${region}}`);
  });
});
