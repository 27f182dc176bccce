import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { type Client } from '@temporalio/client';
import type { Admin } from 'kafkajs';
import { createApi } from '../../src/api/app';
import { ReadService } from '../../src/api/read-service';
import { Credentials } from '../../src/api/auth';
import { cassandraClient, temporalClient, opsRedis } from '../../src/clients';
import { kafkaClient } from '../../src/clients';
import { EPOCH_KEY, REGIONS_KEY, regionMetaKey, regionTopKey } from '../../src/keys';
import { RuntimeHealth } from '../../src/runtime/health';
import { cfg, unique } from '../helpers';
import { freeRedisDb } from '../support/redis';

describe('api (against the real stack)', function () {
  this.timeout(30_000);
  let redis: Redis;
  let server: Server;
  let base: string;
  let admin: Admin;
  let temporal: Client;
  const cassandra = cassandraClient(cfg, 'admin');
  const region = unique('R');

  before(async () => {
    // Its own database: a live state of its own (an epoch), touching nothing else.
    redis = opsRedis(cfg, await freeRedisDb());
    await redis.set(EPOCH_KEY, 'e1');
    admin = kafkaClient(cfg, 'api-test', 'admin', { retries: 0, requestTimeout: 1000 }).admin();
    await admin.connect();
    temporal = await temporalClient(cfg);
    const read = new ReadService({ redis, topic: cfg.kafka.topic, windows: cfg.ingest.windows, mode: 'exact', log: () => undefined });
    const health = new RuntimeHealth(cfg, { redis, kafkaAdmin: admin, cassandra, temporal }, async () => []);
    server = createApi({
      read,
      limits: { maxK: 1000, globalK: 50, boundedK: 100, mode: 'exact' },
      cacheMs: 0,
      health: () => health.report(),
      admin: { credentials: new Credentials({ producerKeys: [] }) },
      credentials: new Credentials({ producerKeys: [] }),
      log: () => undefined,
    }).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await redis.flushdb();
    redis.disconnect();
    server.close();
    await admin.disconnect();
    await temporal.connection.close();
    await cassandra.shutdown();
  });

  it('GET /healthz reports each dependency up with its version', async () => {
    const res = await fetch(`${base}/healthz`);
    const body = (await res.json()) as { status: string; dependencies: Record<string, { up: boolean; version: string }> };
    expect(res.status).to.equal(200);
    expect(body.status).to.equal('ok');
    expect(Object.keys(body.dependencies)).to.have.members(['redis', 'kafka', 'cassandra', 'temporal']);
    expect(body.dependencies.redis.version).to.match(/^7\./);
    expect(body.dependencies.kafka.version).to.match(/^3\.9/);
    expect(body.dependencies.cassandra.version).to.match(/^5\.0\./);
    expect(body.dependencies.temporal.version).to.match(/^1\.\d+\.\d+/);
  });

  it('GET /top-posts reads the region leaderboard', async () => {
    await redis.zadd(regionTopKey(region), 3, 'x', 10, 'y');
    await redis.sadd(REGIONS_KEY, region);
    await redis.hset(regionMetaKey(region), 'epoch', 'e1');
    const res = await fetch(`${base}/top-posts?region=${region}&k=1`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.equal('application/json; charset=utf-8');
    expect(await res.json()).to.deep.equal({
      region,
      timeframe: 'all',
      variant: 'exact',
      source: 'redis',
      status: 'live',
      metadata: 'none',
      top_posts: [{ post_id: 'y', author: null, view_count: 10, content: null }],
    });
  });

  for (const [q, param] of [
    ['region=NA&k=0', 'k'],
    ['region=NA&k=abc', 'k'],
    ['region=NA&k=100000', 'k'],
    ['k=5', 'region'],
    ['region=' + 'x'.repeat(129), 'region'],
    ['region=NA&timeframe=7m', 'timeframe'],
    ['region=NA&timeframe=1h&variant=bounded', 'variant'],
    ['region=global&variant=bounded', 'variant'],
    ['region=global&k=51', 'k'],
    ['region=NA&window=1h', 'window'],
    ['region=NA&window=7m:0', 'window'],
    ['region=NA&window=1h:60000', 'window'],
    ['region=NA&window=1h:0&timeframe=1h', 'window'],
  ]) {
    it(`GET /top-posts?${q} is a 400 naming ${param}`, async () => {
      const res = await fetch(`${base}/top-posts?${q}`);
      expect(res.status).to.equal(400);
      const body = (await res.json()) as { error: string; param: string };
      expect(body.param).to.equal(param);
      expect(body.error).to.contain(param);
    });
  }
});
