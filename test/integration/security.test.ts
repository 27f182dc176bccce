import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { createApi, type ApiDeps } from '../../src/api/app';
import { Credentials } from '../../src/api/auth';
import { KNOWN_FOR_MS } from '../../src/api/rate-limit';
import { ReadService } from '../../src/api/read-service';
import { cassandraClient, opsRedis } from '../../src/clients';
import { migrate } from '../../src/bootstrap/cassandra';
import { AuditLog, type AuditEntry } from '../../src/store/audit';
import { redisRateLimiter, type RateLimiter } from '../../src/store/rate-limit';
import { rateLimitKey } from '../../src/keys';
import { cfg, unique } from '../helpers';
import { freeRedisDb } from '../support/redis';

const PRODUCER = 'producer-key-0123456789abcdef';
const ADMIN = 'admin-token-0123456789abcdef';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('security: rate limiters against their definitions (real Redis)', () => {
  let redis: Redis;
  before(async () => {
    redis = opsRedis(cfg, await freeRedisDb());
  });
  after(async () => {
    await redis.flushdb();
    redis.disconnect();
  });
  const serverNow = async () => {
    const [s, us] = await redis.time();
    return Number(s) * 1000 + Math.floor(Number(us) / 1000);
  };

  it('token bucket: a full bucket passes `burst` requests at once, then one per 1/rate s; other clients are unaffected', async () => {
    const limit = redisRateLimiter(redis, { algorithm: 'token-bucket', ratePerSecond: 10, burst: 5 });
    const a = unique('tb-a');
    const first = [];
    for (let i = 0; i < 7; i++) first.push(await limit(a));
    expect(first.map((d) => d.allowed)).to.deep.equal([true, true, true, true, true, false, false]);
    expect(first[4].remaining).to.equal(0);
    expect(first[5].retryMs).to.be.within(1, 100); // one token at 10/s: at most 100 ms away
    expect((await limit(unique('tb-b'))).allowed).to.equal(true);
    await sleep(first[5].retryMs + 20);
    expect((await limit(a)).allowed).to.equal(true);
    expect((await limit(a)).allowed).to.equal(false);
    // The bucket never holds more than `burst`, however long the client was quiet.
    await sleep(1_000);
    const after = [];
    for (let i = 0; i < 6; i++) after.push((await limit(a)).allowed);
    expect(after).to.deep.equal([true, true, true, true, true, false]);
  });

  it('fixed window: at most N requests in each aligned window, a fresh N in the next', async () => {
    const w = 400;
    const limit = redisRateLimiter(redis, { algorithm: 'fixed-window', perWindow: 3, windowMs: w });
    const c = unique('fw');
    // Start just after a window boundary (server clock) so the round fits in one window.
    await sleep(w - ((await serverNow()) % w) + 5);
    const got = [];
    for (let i = 0; i < 5; i++) got.push(await limit(c));
    expect(got.map((d) => d.allowed)).to.deep.equal([true, true, true, false, false]);
    expect(got[3].retryMs).to.equal(got[3].resetMs).and.be.within(1, w);
    await sleep(got[3].retryMs + 5);
    expect((await limit(c)).allowed).to.equal(true);
  });

  it('a call of cost n (a batch the API let through) counts as many as still fit, and is allowed only when all of them fit', async () => {
    const tb = redisRateLimiter(redis, { algorithm: 'token-bucket', ratePerSecond: 1, burst: 5 });
    const a = unique('cost-tb');
    expect(await tb(a, 3)).to.include({ allowed: true, remaining: 2 });
    expect(await tb(a, 3)).to.include({ allowed: false, remaining: 0 }); // 2 of the 3 fit
    expect((await tb(a)).allowed).to.equal(false);

    const w = 2_000;
    const fw = redisRateLimiter(redis, { algorithm: 'fixed-window', perWindow: 5, windowMs: w });
    const f = unique('cost-fw');
    await sleep(w - ((await serverNow()) % w) + 5); // the round in one window
    expect(await fw(f, 3)).to.include({ allowed: true, remaining: 2 });
    expect(await fw(f, 3)).to.include({ allowed: false, remaining: 0 });
    expect((await fw(f)).allowed).to.equal(false);

    const sw = redisRateLimiter(redis, { algorithm: 'sliding-window', perWindow: 5, windowMs: 60_000 });
    const c = unique('cost-sw');
    expect(await sw(c, 3)).to.include({ allowed: true, remaining: 2 });
    expect(await redis.zcard(rateLimitKey(c)), 'each request logged').to.equal(3);
    expect(await sw(c, 3)).to.include({ allowed: false, remaining: 0 });
    expect(await redis.zcard(rateLimitKey(c)), 'the two that fit logged').to.equal(5);
    expect((await sw(c)).allowed).to.equal(false);
  });

  it('sliding window: at most N accepted requests in any window of w ms, whatever the alignment', async () => {
    const w = 500;
    const limit = redisRateLimiter(redis, { algorithm: 'sliding-window', perWindow: 4, windowMs: w });
    const c = unique('sw');
    // Each accepted request is logged with the limiter's own clock (its zset score): read back
    // after every call (entries live w ms, far longer than a call).
    const logged = new Map<string, number>();
    let allowed = 0;
    const t0 = Date.now();
    while (Date.now() - t0 < 1_600) {
      if ((await limit(c)).allowed) allowed++;
      const flat = await redis.zrange(rateLimitKey(c), 0, -1, 'WITHSCORES');
      for (let i = 0; i < flat.length; i += 2) logged.set(flat[i], Number(flat[i + 1]));
      await sleep(15);
    }
    const accepted = [...logged.values()];
    expect(accepted.length).to.equal(allowed);
    // The definition: any (t - w, t] holds at most 4 accepted requests ...
    for (const t of accepted) expect(accepted.filter((u) => u > t - w && u <= t).length).to.be.at.most(4);
    // ... and the limit is used: 4 per window over ~3 windows.
    expect(accepted.length).to.be.within(9, 16);
    const log = await redis.zcard(rateLimitKey(c));
    expect(log).to.be.at.most(4);
  });
});

describe('security: the API (producer keys, rate limits, audit; real Redis and Cassandra)', function () {
  this.timeout(30_000);
  let redis: Redis;
  let server: Server;
  let base: string;
  const cassandra = cassandraClient(cfg, 'admin');
  const keyspace = unique('hh_sec').toLowerCase();
  let audit: AuditLog;
  let limiter: RateLimiter;
  const audited: AuditEntry[] = [];

  before(async () => {
    redis = opsRedis(cfg, await freeRedisDb());
    await migrate(cfg, keyspace);
    audit = new AuditLog(cassandra, keyspace, () => undefined);
    limiter = redisRateLimiter(redis, { algorithm: 'token-bucket', ratePerSecond: 5, burst: 10 });
    const credentials = new Credentials({ producerKeys: [PRODUCER], adminToken: ADMIN });
    const deps: ApiDeps = {
      read: new ReadService({ redis, topic: 'unused', windows: cfg.ingest.windows, mode: 'exact', log: () => undefined }),
      limits: { maxK: 1000, globalK: 50, boundedK: 100, mode: 'exact' },
      cacheMs: 0,
      health: async () => ({ status: 'ok' }) as never,
      credentials,
      rateLimiter: (client, cost) => limiter(client, cost),
      admin: {
        credentials,
        forceRebuild: async () => ({ epoch: 'e2', dropped: 3, restored: 4 }),
        audit: async (e) => {
          audited.push(e);
          await audit.record(e);
        },
      },
      events: {
        credentials,
        producer: { send: async () => [] } as never,
        topic: 'unused',
        maxEvents: 10,
        maxBodyBytes: 1024 * 1024,
        time: { maxAheadMs: 300_000, maxAgeMs: 86_400_000 },
      },
      log: () => undefined,
    };
    server = createApi(deps).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await redis.flushdb();
    redis.disconnect();
    server.close();
    await cassandra.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await cassandra.shutdown();
  });
  beforeEach(async () => {
    await redis.flushdb(); // every test starts with full buckets
    // and with what the API learned of them expired (a decision is trusted KNOWN_FOR_MS).
    await new Promise((r) => setTimeout(r, KNOWN_FOR_MS + 50));
  });

  const event = () => ({ event_id: unique('e'), post_id: 'p1', region_id: 'NA', timestamp: Date.now() });
  const post = (auth?: string) =>
    fetch(`${base}/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
      body: JSON.stringify([event()]),
    });

  it('POST /events: 401 without a producer key or with a wrong one (named, with WWW-Authenticate); 202 with it', async () => {
    for (const auth of [undefined, 'Bearer nope', `Bearer ${ADMIN}`, PRODUCER, `Basic ${PRODUCER}`]) {
      const res = await post(auth);
      expect(res.status, String(auth)).to.equal(401);
      expect(res.headers.get('www-authenticate')).to.equal('Bearer');
      expect(await res.json()).to.include({ param: 'authorization' });
    }
    expect((await post(`Bearer ${PRODUCER}`)).status).to.equal(202);
  });

  it('429 with Retry-After and RateLimit-* headers once a client exceeds its bucket; other clients are unaffected; health is never limited', async () => {
    const statuses: number[] = [];
    let refused: Response | undefined;
    for (let i = 0; i < 14; i++) {
      const res = await fetch(`${base}/top-posts?region=NA`);
      statuses.push(res.status);
      if (i === 0) {
        expect(res.headers.get('ratelimit-limit')).to.equal('10');
        expect(res.headers.get('ratelimit-remaining')).to.equal('9');
      }
      if (res.status === 429) refused ??= res;
    }
    expect(statuses.slice(0, 10).every((s) => s !== 429)).to.equal(true);
    expect(statuses.slice(10).some((s) => s === 429)).to.equal(true);
    expect(refused!.headers.get('retry-after')).to.match(/^[1-9]\d*$/);
    expect(refused!.headers.get('ratelimit-remaining')).to.equal('0');
    expect(await refused!.json()).to.deep.include({ param: 'rate' });
    // The producer (known by its key, not its address) has its own bucket.
    expect((await post(`Bearer ${PRODUCER}`)).status).to.equal(202);
    // A made-up key does not buy a fresh bucket: still the address's, still refused.
    expect((await fetch(`${base}/top-posts?region=NA`, { headers: { authorization: 'Bearer made-up-key-0000000000' } })).status).to.equal(429);
    expect((await fetch(`${base}/healthz`)).status).to.equal(200);
  });

  it('lets requests pass (and says so) while the limiter cannot decide', async () => {
    const real = limiter;
    limiter = () => Promise.reject(new Error('redis down'));
    try {
      const res = await fetch(`${base}/top-posts?region=NA`);
      expect(res.status).to.not.equal(429);
      expect(res.headers.get('ratelimit-limit')).to.equal(null);
    } finally {
      limiter = real;
    }
  });

  it('audits every admin action: refused without the token, ok with it — in Cassandra and the log', async () => {
    const day = new Date().toISOString().slice(0, 10);
    expect((await fetch(`${base}/admin/rebuild`, { method: 'POST' })).status).to.equal(401);
    expect((await fetch(`${base}/admin/rebuild`, { method: 'POST', headers: { authorization: `Bearer ${PRODUCER}` } })).status).to.equal(401);
    const ok = await fetch(`${base}/admin/rebuild`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(ok.status).to.equal(200);
    const bad = await fetch(`${base}/admin/windows/nonsense/recompute`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(bad.status).to.equal(400);
    const rows = await audit.day(day);
    expect(rows.map((r) => [r.action, r.outcome]).reverse()).to.deep.equal([
      ['rebuild', 'refused'],
      ['rebuild', 'refused'],
      ['rebuild', 'ok'],
      ['recompute', 'failed'],
    ]);
    expect(rows[1].who).to.match(/^admin@/);
    expect(rows[1].detail).to.equal(JSON.stringify({ epoch: 'e2', dropped: 3, restored: 4 }));
    expect(rows.every((r) => !JSON.stringify(r).includes(ADMIN))).to.equal(true);
    expect(audited).to.have.length(4);
  });
});
