import { expect } from 'chai';
import { addToTruth, generateEvents, prng, regionNames, truthTopK, zipfSampler, type Truth } from '../../src/load/generator';

describe('load generator', () => {
  const opts = { events: 20_000, regions: 4, posts: 1000, zipf: 1.1, seed: 5 };

  it('is deterministic for a seed (ids, regions, posts) and differs across seeds', () => {
    const strip = (seed: number) => [...generateEvents({ ...opts, seed }, () => 0)];
    expect(strip(5)).to.deep.equal(strip(5));
    expect(strip(6).map((e) => e.post_id)).to.not.deep.equal(strip(5).map((e) => e.post_id));
    expect(new Set(strip(5).map((e) => e.event_id)).size).to.equal(opts.events);
  });

  it('draws Zipf ranks: rank 1 about 2^s times as often as rank 2', () => {
    const sample = zipfSampler(1000, 1.0, prng(1));
    const counts = new Array(1000).fill(0);
    for (let i = 0; i < 200_000; i++) counts[sample()]++;
    expect(counts[0] / counts[1]).to.be.within(1.8, 2.2);
    expect(counts[0]).to.be.greaterThan(counts[9] * 8);
  });

  it('names regions and counts the truth per region and post', () => {
    expect(regionNames(3)).to.deep.equal(['NA', 'EU', 'APAC']);
    expect(regionNames(10, 't_')[9]).to.equal('t_R9');
    const truth: Truth = {};
    let n = 0;
    for (const e of generateEvents(opts)) {
      addToTruth(truth, e);
      n++;
    }
    const total = Object.values(truth)
      .flatMap((m) => Object.values(m))
      .reduce((a, b) => a + b, 0);
    expect(total).to.equal(n);
    expect(Object.keys(truth)).to.have.members(regionNames(4));
  });

  it('orders the truth top-K by count desc, then post_id desc (the documented tie rule)', () => {
    expect(truthTopK({ a: 2, b: 5, c: 2, d: 1 }, 3)).to.deep.equal([
      { post_id: 'b', view_count: 5 },
      { post_id: 'c', view_count: 2 },
      { post_id: 'a', view_count: 2 },
    ]);
  });
});
