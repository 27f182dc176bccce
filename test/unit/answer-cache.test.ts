import { expect } from 'chai';
import sinon from 'sinon';
import { AnswerCache } from '../../src/api/cache';

describe('API answer cache', () => {
  afterEach(() => sinon.restore());

  it('shares one computation among identical requests in flight, and (ttl 0) computes again after it', async () => {
    const cache = new AnswerCache(0);
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
    const cache = new AnswerCache(50);
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
    const cache = new AnswerCache(1000);
    await cache.get('k', async () => Promise.reject(new Error('redis down'))).catch(() => undefined);
    await new Promise((r) => setImmediate(r));
    expect(await cache.get('k', async () => 'ok')).to.equal('ok');
  });
});
