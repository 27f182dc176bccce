import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { expect } from 'chai';
import sinon from 'sinon';
import type { Redis } from 'ioredis';
import { createApi, type Api, type ApiDeps } from '../../src/api/app';
import { ReadService } from '../../src/api/read-service';
import { Credentials } from '../../src/api/auth';
import { opsRedis } from '../../src/clients';
import { EPOCH_KEY, REGIONS_KEY, regionMetaKey, regionTopKey } from '../../src/keys';
import { redisRateLimiter } from '../../src/store/rate-limit';
import { cfg, unique } from '../helpers';
import { freeRedisDb } from '../support/redis';

/**
 * GET /top-posts answered without Express when its answer is ready: the same answer and
 * headers as the Express route, and everything the route would refuse or limit still refused.
 * Real Redis behind the reads and the rate limiter.
 */
describe('api fast path: ready GET /top-posts answers without Express (real Redis)', function () {
  this.timeout(30_000);
  let redis: Redis;
  const region = unique('FP');
  const servers: Server[] = [];

  /** A server of the API with its answers reused for a minute, and a spy on Express's entry. */
  async function serve(limiter: ApiDeps['rateLimiter']): Promise<{ api: Api; base: string; express: sinon.SinonSpy }> {
    const credentials = new Credentials({ producerKeys: [] });
    const api = createApi({
      read: new ReadService({ redis, topic: 'unused', windows: cfg.ingest.windows, mode: 'exact', log: () => undefined }),
      limits: { maxK: 1000, globalK: 50, boundedK: 100, mode: 'exact' },
      cacheMs: 60_000,
      health: async () => ({ status: 'ok' }) as never,
      credentials,
      rateLimiter: limiter,
      admin: { credentials },
      log: () => undefined,
    });
    // Express's entry for every request it serves (not in its type definitions).
    const express = sinon.spy(api.app as unknown as { handle: (...args: unknown[]) => void }, 'handle');
    const server = api.listen(0, '127.0.0.1');
    servers.push(server);
    await new Promise((r) => server.once('listening', r));
    return { api, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, express };
  }

  before(async () => {
    redis = opsRedis(cfg, await freeRedisDb());
    await redis.set(EPOCH_KEY, 'e1');
    await redis.zadd(regionTopKey(region), 3, 'x', 10, 'y', 7, 'z');
    await redis.sadd(REGIONS_KEY, region);
    await redis.hset(regionMetaKey(region), 'epoch', 'e1');
  });
  after(async () => {
    for (const s of servers) s.close();
    await redis.flushdb();
    redis.disconnect();
  });

  it('a ready answer skips Express and is the route’s own: same body, same headers (request id, rate limit, JSON)', async () => {
    const { base, express } = await serve(redisRateLimiter(redis, { algorithm: 'token-bucket', ratePerSecond: 1000, burst: 2000 }));
    const url = `${base}/top-posts?region=${region}&k=2`;
    const first = await fetch(url, { headers: { 'x-request-id': 'req-1' } });
    expect(first.status).to.equal(200);
    expect(express.callCount, 'the first request reads the answer through Express').to.equal(1);
    const firstBody = await first.text();
    // Decisions of the limiter are known now: the next requests may pass at once.
    const second = await fetch(url, { headers: { 'x-request-id': 'req-2' } });
    const third = await fetch(url);
    expect(express.callCount, 'ready answers do not go through Express').to.equal(1);
    expect(second.status).to.equal(200);
    expect(await second.text()).to.equal(firstBody);
    expect(JSON.parse(firstBody).top_posts.map((p: { post_id: string }) => p.post_id)).to.deep.equal(['y', 'z']);
    expect(second.headers.get('x-request-id')).to.equal('req-2');
    expect(third.headers.get('x-request-id')).to.match(/^[0-9a-f-]{36}$/);
    await third.text();
    for (const h of ['content-type', 'content-length', 'ratelimit-limit', 'ratelimit-reset']) {
      expect(second.headers.get(h), h).to.equal(first.headers.get(h));
    }
    expect(Number(second.headers.get('ratelimit-remaining'))).to.be.lessThan(Number(first.headers.get('ratelimit-remaining')));
    const names = (r: Response) => {
      const all: string[] = [];
      r.headers.forEach((_v, h) => all.push(h));
      return all.filter((h) => h !== 'date').sort();
    };
    expect(names(second), 'the same header set').to.deep.equal(names(first));
  });

  it('whatever the route refuses is still refused by it (a 400 naming the parameter), also for a query whose answer is ready', async () => {
    const { base, express } = await serve(undefined);
    const ok = `${base}/top-posts?region=${region}&k=1`;
    expect((await fetch(ok)).status).to.equal(200);
    expect((await fetch(ok)).status).to.equal(200);
    const before = express.callCount;
    for (const [q, param] of [
      [`region=${region}&k=1&region=${region}`, 'region'],
      [`region=${region}&k=1&k=1`, 'k'],
      [`region=${region}&k=0`, 'k'],
      [`region=${region}&k=1&timeframe=7m`, 'timeframe'],
      [`region=${region}&k=1&window=1h:0&timeframe=1h`, 'window'],
    ]) {
      const res = await fetch(`${base}/top-posts?${q}`);
      expect(res.status, q).to.equal(400);
      expect(((await res.json()) as { param: string }).param, q).to.equal(param);
    }
    expect(express.callCount - before, 'each of them through Express').to.equal(5);
    // Other methods and paths as well.
    expect((await fetch(ok, { method: 'HEAD' })).status).to.equal(200);
    expect((await fetch(`${base}/top-posts/?region=${region}&k=1`)).status).to.equal(200);
    expect(express.callCount - before).to.equal(7);
  });

  it('the rate limit holds: once a client nears its bucket its requests wait for their decision, and past it they get 429 with Retry-After', async () => {
    // The same token bucket as the security suite: 10 at once, then 5 a second.
    const { base, express } = await serve(redisRateLimiter(redis, { algorithm: 'token-bucket', ratePerSecond: 5, burst: 10 }));
    const url = `${base}/top-posts?region=${region}&k=3`;
    const t0 = Date.now();
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 30; i++) {
      const res = await fetch(url);
      statuses.push(res.status);
      if (res.status === 429) retryAfter = res.headers.get('retry-after');
      await res.arrayBuffer();
    }
    const seconds = (Date.now() - t0) / 1000;
    const passed = statuses.filter((s) => s === 200).length;
    expect(passed, `${statuses.join(',')} in ${seconds} s`).to.be.at.most(10 + Math.ceil(5 * seconds) + 1);
    expect(statuses).to.include(429);
    expect(retryAfter).to.match(/^\d+$/);
    expect(express.callCount, 'near the limit the requests went through Express (the middleware decides)').to.be.at.least(30 - 10);
  });
});
