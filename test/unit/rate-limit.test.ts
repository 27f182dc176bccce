import { expect } from 'chai';
import * as sinon from 'sinon';
import express from 'express';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createRateLimit, KNOWN_FOR_MS } from '../../src/api/rate-limit';
import { Credentials } from '../../src/api/auth';
import { errorHandler } from '../../src/api/errors';
import type { RateDecision } from '../../src/store/rate-limit';

/** A limiter whose decisions the test releases by hand, in order. */
function heldLimiter() {
  const waiting: ((d: RateDecision) => void)[] = [];
  const limiter = sinon.spy((_client: string, _cost?: number) => new Promise<RateDecision>((resolve) => waiting.push(resolve)));
  /** The requests each call counted, in call order. */
  const costs = () => limiter.args.map((a) => a[1] ?? 1);
  const decide = (remaining: number, allowed = remaining >= 0) =>
    waiting.shift()!({ allowed, limit: 100, remaining: Math.max(0, remaining), resetMs: 1000, retryMs: allowed ? 0 : 1000 });
  return { limiter, decide, waiting, costs };
}

describe('rate limit middleware: clients far from their limit do not wait for Redis', () => {
  let server: Server;
  let base: string;
  let held: ReturnType<typeof heldLimiter>;
  const served = () => fetch(`${base}/x`);

  beforeEach(async () => {
    held = heldLimiter();
    const app = express();
    app.use(createRateLimit({ limiter: held.limiter, credentials: new Credentials({ producerKeys: [] }), timeoutMs: 5_000, headroom: 0.25 }).middleware);
    app.get('/x', (_req, res) => res.send('ok'));
    app.use(errorHandler(() => undefined));
    server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(() => server.close());

  const settle = () => new Promise((r) => setTimeout(r, 30));

  it('the first request waits for its decision; the next ones pass at once, and are each counted: one call at a time, the ones let through meanwhile together', async () => {
    const first = served();
    await settle();
    expect(held.waiting.length, 'the first request waits').to.equal(1);
    held.decide(90);
    const r1 = await first;
    expect(r1.status).to.equal(200);
    expect(r1.headers.get('ratelimit-remaining')).to.equal('90');
    // The background count of the second never comes back during the next four: they pass anyway.
    const rs = [];
    for (let i = 0; i < 5; i++) rs.push(await served());
    expect(rs.map((r) => r.status)).to.deep.equal([200, 200, 200, 200, 200]);
    expect(rs.map((r) => r.headers.get('ratelimit-remaining'))).to.deep.equal(['89', '88', '87', '86', '85']);
    expect(held.costs(), 'the first, then the second (its call still out)').to.deep.equal([1, 1]);
    held.decide(89);
    await settle();
    expect(held.costs(), 'the four let through meanwhile, counted by one call').to.deep.equal([1, 1, 4]);
    held.decide(85);
    await settle();
    expect(held.limiter.callCount, 'nothing left to count').to.equal(3);
    // Counted, the client is known again: the next request passes at once and is counted alone.
    expect((await served()).headers.get('ratelimit-remaining')).to.equal('84');
    expect(held.costs()).to.deep.equal([1, 1, 4, 1]);
    held.decide(84);
  });

  it('a decision is trusted for KNOWN_FOR_MS: after a pause within it the next request passes at once; after a longer one it waits', async () => {
    const clock = sinon.useFakeTimers({ toFake: ['Date'] });
    try {
      const first = served();
      await settle();
      held.decide(90);
      expect((await first).status).to.equal(200);
      clock.tick(KNOWN_FOR_MS - 100); // a pause (a page polled a few times a second)
      const r = await served();
      expect(r.status, 'passed at once: its background count is still out').to.equal(200);
      expect(held.waiting.length, 'its count, in the background').to.equal(1);
      held.decide(89);
      await settle();
      clock.tick(KNOWN_FOR_MS + 1);
      const late = served();
      await settle();
      expect(held.waiting.length, 'a decision older than that: the request waits for its own').to.equal(1);
      held.decide(88);
      expect((await late).status).to.equal(200);
    } finally {
      clock.restore();
    }
  });

  it('near the limit every request waits for its decision, and a refusal is a 429', async () => {
    const first = served();
    await settle();
    held.decide(25); // 25 of 100 left: not above the headroom (25 %)
    await first;
    const second = served();
    await settle();
    expect(held.waiting.length, 'the second request waits').to.equal(1);
    held.decide(-1);
    const r2 = await second;
    expect(r2.status).to.equal(429);
    expect(r2.headers.get('retry-after')).to.equal('1');
    const third = served();
    await settle();
    expect(held.waiting.length, 'after a refusal too').to.equal(1);
    held.decide(-1);
    expect((await third).status).to.equal(429);
  });

  it('requests let through count against the headroom until their decisions come back', async () => {
    const first = served();
    await settle();
    held.decide(30); // 30 left: 4 more may pass at once (30 - undecided - 1 > 25)
    await first;
    for (let i = 0; i < 4; i++) expect((await served()).status).to.equal(200);
    const fifth = served();
    await settle();
    // Four undecided: one counted by the call out, three queued - and counted by the fifth's
    // call, which waits (a decision never misses requests already served).
    expect(held.costs()).to.deep.equal([1, 1, 4]);
    expect(held.waiting.length).to.equal(2);
    held.decide(29); // the second's count
    held.decide(-1); // the fifth's: the three before it took what was left
    expect((await fifth).status).to.equal(429);
    await settle();
    expect(held.limiter.callCount, 'nothing left to count').to.equal(3);
  });

  it('a refusal learned in the background makes the next request wait', async () => {
    const first = served();
    await settle();
    held.decide(90);
    await first;
    expect((await served()).status).to.equal(200); // passed at once
    held.decide(-1); // its decision: another process spent the bucket meanwhile
    await settle();
    const next = served();
    await settle();
    expect(held.waiting.length, 'the next request waits').to.equal(1);
    held.decide(-1);
    expect((await next).status).to.equal(429);
  });
});

describe('rate limit middleware: a busy client far from its limit', () => {
  it('is counted by at most one call every countEveryMs, every request still counted', async () => {
    const limiter = sinon.spy(async (_client: string, _cost?: number): Promise<RateDecision> => ({
      allowed: true,
      limit: 1_000_000,
      remaining: 900_000,
      resetMs: 1000,
      retryMs: 0,
    }));
    const app = express();
    app.use(createRateLimit({ limiter, credentials: new Credentials({ producerKeys: [] }), countEveryMs: 50 }).middleware);
    app.get('/x', (_req, res) => res.send('ok'));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const t0 = Date.now();
      const statuses: number[] = [];
      // 10 callers at once, 30 requests each.
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          for (let i = 0; i < 30; i++) statuses.push((await fetch(`${base}/x`)).status);
        }),
      );
      const ms = Date.now() - t0;
      await new Promise((r) => setTimeout(r, 150)); // the last counts go out
      expect(statuses.filter((s) => s === 200)).to.have.length(300);
      const costs = limiter.args.map((a) => a[1] ?? 1);
      expect(
        costs.reduce((a, b) => a + b, 0),
        'every request counted',
      ).to.equal(300);
      // The first requests wait for their decisions (at most one per caller); after that, one call per 50 ms.
      expect(limiter.callCount).to.be.at.most(10 + Math.ceil(ms / 50) + 2);
    } finally {
      server.close();
    }
  });
});
