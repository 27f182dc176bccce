import { expect } from 'chai';
import sinon from 'sinon';
import { AnswerCache } from '../../src/api/cache';

describe('API answer cache', () => {
  afterEach(() => sinon.restore());

  it('shares one computation among identical requests in flight, and (ttl 0) computes again after it', async () => {
    const cache = new AnswerCache<string>(0);
    let release!: (s: string) => void;
    const compute = sinon.stub().callsFake(() => new Promise<string>((r) => (release = r)));
    const a = cache.get('k', compute);
    const b = cache.get('k', compute);
    release('one');
    expect(await a).to.equal('one');
    expect(await b).to.equal('one');
    expect(compute.callCount).to.equal(1);
    const c = cache.get('k', async () => 'two');
    expect(await c).to.equal('two');
  });

  it('reuses an answer for its ttl, then computes again; keys are separate', async () => {
    const clock = sinon.useFakeTimers({ toFake: ['performance'] });
    const cache = new AnswerCache<string>(50, { staleMs: 0, warmMs: 0 });
    let n = 0;
    const compute = async () => `v${++n}`;
    expect(await cache.get('k', compute)).to.equal('v1');
    clock.tick(49);
    expect(await cache.get('k', compute)).to.equal('v1');
    expect(await cache.get('other', compute)).to.equal('v2');
    clock.tick(1);
    expect(await cache.get('k', compute)).to.equal('v3');
  });

  it('does not keep a failure', async () => {
    const cache = new AnswerCache<string>(1000);
    await cache.get('k', async () => Promise.reject(new Error('redis down'))).catch(() => undefined);
    await new Promise((r) => setImmediate(r));
    expect(await cache.get('k', async () => 'ok')).to.equal('ok');
  });

  it('the caller that starts a read gets the previous answer after waitMs if the read takes longer, callers during the read get it at once, up to ttl + staleMs old; a quick read answers new', async () => {
    const clock = sinon.useFakeTimers({ toFake: ['performance', 'setTimeout', 'clearTimeout'] });
    const cache = new AnswerCache<string>(50, { staleMs: 1000, waitMs: 20, swrMs: 0, warmMs: 0 });
    expect(await cache.get('k', async () => 'v1')).to.equal('v1');
    clock.tick(60);
    let release!: (s: string) => void;
    const slow = () => new Promise<string>((r) => (release = r));
    const first = cache.get('k', slow); // expired: a new read starts, and takes long
    let second: string | undefined;
    void cache.get('k', slow).then((v) => (second = v));
    await Promise.resolve();
    await Promise.resolve();
    expect(second, 'a caller during the read: the previous answer at once, before any timer').to.equal('v1');
    await clock.tickAsync(20);
    expect(await first).to.equal('v1');
    await clock.tickAsync(1000); // the previous answer is now 1,080 ms old: callers wait
    let third: string | undefined;
    void cache.get('k', slow).then((v) => (third = v));
    await clock.tickAsync(100);
    expect(third).to.equal(undefined);
    release('v2');
    await clock.tickAsync(0);
    expect(third).to.equal('v2');
    clock.tick(60);
    expect(await cache.get('k', async () => 'v3'), 'a quick read answers with the new value').to.equal('v3');
  });

  it('by default a request arriving within twice the ttl while its answer is read again gets the previous one at once, without waiting for the read; past that it waits for the new one', async () => {
    const clock = sinon.useFakeTimers({ toFake: ['performance', 'setTimeout', 'clearTimeout'] });
    const cache = new AnswerCache<string>(50, { warmMs: 0 });
    expect(await cache.get('k', async () => 'v1')).to.equal('v1');
    clock.tick(60); // within twice its ttl
    let release!: (s: string) => void;
    const slow = () => new Promise<string>((r) => (release = r));
    const got: string[] = [];
    void cache.get('k', slow).then((v) => got.push(v)); // expired: it starts the read
    void cache.get('k', slow).then((v) => got.push(v)); // arrives during the read
    await Promise.resolve();
    await Promise.resolve();
    expect(got, 'answered before any timer ran and before the read finished').to.deep.equal(['v1', 'v1']);
    release('v2');
    await clock.tickAsync(0);
    expect(await cache.get('k', slow)).to.equal('v2');
    // Asked for rarely (past twice its ttl): the read is waited for, and answers new.
    clock.tick(150);
    expect(await cache.get('k', async () => 'v3')).to.equal('v3');
  });

  it('with ttl 0 never serves a previous answer', async () => {
    const cache = new AnswerCache<string>(0);
    expect(await cache.get('k', async () => 'v1')).to.equal('v1');
    let release!: (s: string) => void;
    const p = cache.get('k', () => new Promise<string>((r) => (release = r)));
    release('v2');
    expect(await p).to.equal('v2');
  });

  describe('kept warm (an answer asked for within warmMs is read again every ttl without a caller)', () => {
    it('reads it again every ttl while it was asked for within warmMs, so a request after a quiet spell finds it fresh; then stops', async () => {
      const clock = sinon.useFakeTimers({ toFake: ['performance', 'setTimeout', 'clearTimeout'] });
      const cache = new AnswerCache<string>(50); // warmMs 1000 by default
      let n = 0;
      const compute = sinon.stub().callsFake(async () => `v${++n}`);
      expect(await cache.get('k', compute)).to.equal('v1');
      await clock.tickAsync(300); // nobody asks for 300 ms (a burst of requests every few hundred ms)
      expect(compute.callCount, 'read again every 50 ms').to.be.within(6, 7);
      expect(cache.ready('k', compute), 'the next burst finds the last read, fresh, at once').to.equal(`v${n}`);
      await clock.tickAsync(2000); // asked for last at 300 ms: read until 1,300 ms, then no more
      const after = compute.callCount;
      expect(after).to.be.within(25, 28);
      await clock.tickAsync(1000);
      expect(compute.callCount, 'not asked for within warmMs: no more reads').to.equal(after);
      expect(cache.ready('k', compute), 'too old to answer at once').to.equal(undefined);
    });

    it('keeps at most maxWarm keys warm, and a failed read ends the chain of its key', async () => {
      const clock = sinon.useFakeTimers({ toFake: ['performance', 'setTimeout', 'clearTimeout'] });
      const cache = new AnswerCache<string>(50, { maxWarm: 1 });
      const a = sinon.stub().resolves('a');
      const b = sinon.stub().resolves('b');
      await cache.get('a', a);
      await cache.get('b', b);
      await clock.tickAsync(200);
      expect(a.callCount, 'a: warm').to.be.within(4, 5);
      expect(b.callCount, 'b: one key is warm already').to.equal(1);
      a.rejects(new Error('redis down'));
      await clock.tickAsync(200);
      expect(a.callCount, 'the failed read is not retried by itself').to.be.within(5, 6);
      const failedAt = a.callCount;
      await clock.tickAsync(500);
      expect(a.callCount).to.equal(failedAt);
      expect(cache.ready('a', a), 'a failure is not kept').to.equal(undefined);
    });
  });

  it('while a read is out, every caller but the one that started it gets the previous answer at once up to ttl + staleMs old (ready and get alike)', async () => {
    const clock = sinon.useFakeTimers({ toFake: ['performance', 'setTimeout', 'clearTimeout'] });
    const cache = new AnswerCache<string>(50, { warmMs: 0 });
    await cache.get('k', async () => 'v1');
    clock.tick(60);
    let release!: (s: string) => void;
    const slow = sinon.stub().callsFake(() => new Promise<string>((r) => (release = r)));
    expect(cache.ready('k', slow), 'within ttl + swr: the read starts behind it').to.equal('v1');
    clock.tick(200); // the read is still out: v1 is 260 ms old, past ttl + swr
    expect(cache.ready('k', slow), 'the fast path answers at once').to.equal('v1');
    let got: string | undefined;
    void cache.get('k', slow).then((v) => (got = v));
    await Promise.resolve();
    await Promise.resolve();
    expect(got, 'get too, before any timer').to.equal('v1');
    clock.tick(900); // 1,160 ms old: past ttl + staleMs
    expect(cache.ready('k', slow)).to.equal(undefined);
    expect(slow.callCount, 'one read all along').to.equal(1);
    release('v2');
    await Promise.resolve();
    await Promise.resolve();
    expect(cache.ready('k', slow)).to.equal('v2');
  });

  describe('ready (the synchronous answer of the API fast path)', () => {
    it('answers only what get would answer at once, and never starts a read for a key it does not hold', async () => {
      const clock = sinon.useFakeTimers({ toFake: ['performance'] });
      const cache = new AnswerCache<string>(50);
      const compute = sinon.stub().resolves('v1');
      expect(cache.ready('k', compute), 'unknown key').to.equal(undefined);
      expect(compute.callCount, 'no read for an unknown key (a request that may yet be refused costs none)').to.equal(0);
      let release!: (s: string) => void;
      void cache.get('k', () => new Promise<string>((r) => (release = r)));
      expect(cache.ready('k', compute), 'first read still out: nothing to answer at once').to.equal(undefined);
      release('v1');
      await Promise.resolve();
      await Promise.resolve();
      expect(cache.ready('k', compute), 'fresh').to.equal('v1');
      clock.tick(49);
      expect(cache.ready('k', compute)).to.equal('v1');
      expect(compute.callCount).to.equal(0);
    });

    it('within twice the ttl serves the previous answer and starts its read again (once); past that answers nothing and starts nothing', async () => {
      const clock = sinon.useFakeTimers({ toFake: ['performance'] });
      const cache = new AnswerCache<string>(50, { warmMs: 0 });
      await cache.get('k', async () => 'v1');
      clock.tick(60);
      let release!: (s: string) => void;
      const slow = sinon.stub().callsFake(() => new Promise<string>((r) => (release = r)));
      expect(cache.ready('k', slow)).to.equal('v1');
      expect(cache.ready('k', slow), 'during the read').to.equal('v1');
      expect(slow.callCount, 'one read, shared').to.equal(1);
      expect(await cache.get('k', slow), 'get shares the same read (the previous one at once)').to.equal('v1');
      expect(slow.callCount).to.equal(1);
      release('v2');
      await Promise.resolve();
      await Promise.resolve();
      expect(cache.ready('k', slow)).to.equal('v2');
      clock.tick(101); // past ttl + swr
      const later = sinon.stub().resolves('v3');
      expect(cache.ready('k', later)).to.equal(undefined);
      expect(later.callCount, 'too old to serve: get reads it (and waits)').to.equal(0);
      expect(await cache.get('k', later)).to.equal('v3');
    });

    it('with ttl 0 never answers at once', async () => {
      const cache = new AnswerCache<string>(0);
      await cache.get('k', async () => 'v1');
      expect(cache.ready('k', async () => 'v2')).to.equal(undefined);
    });
  });
});
