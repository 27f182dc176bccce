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
    const cache = new AnswerCache<string>(50, 0);
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

  it('an answer read again for longer than waitMs is answered by the previous one, up to ttl + staleMs old; a quick read answers new', async () => {
    const clock = sinon.useFakeTimers({ toFake: ['performance', 'setTimeout', 'clearTimeout'] });
    const cache = new AnswerCache<string>(50, 1000, 20, 0);
    expect(await cache.get('k', async () => 'v1')).to.equal('v1');
    clock.tick(60);
    let release!: (s: string) => void;
    const slow = () => new Promise<string>((r) => (release = r));
    const first = cache.get('k', slow); // expired: a new read starts, and takes long
    const second = cache.get('k', slow);
    await clock.tickAsync(20);
    expect(await first).to.equal('v1');
    expect(await second).to.equal('v1');
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
    const cache = new AnswerCache<string>(50);
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
});
