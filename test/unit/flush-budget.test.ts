import { expect } from 'chai';
import { FlushBudget } from '../../src/actors/flush-budget';

describe('flush budget: each flush sized to the time its script may hold Redis', () => {
  const MAX = FlushBudget.units(20_000, 2_000);
  const start = Math.floor(20_000 / FlushBudget.START_US_PER_UNIT);

  it('starts from its first estimate, within the fixed limits', () => {
    expect(new FlushBudget(20, MAX).limit).to.equal(start);
    expect(new FlushBudget(10_000, MAX).limit).to.equal(MAX);
  });

  it('shrinks at once when a flush runs over the target, and by half the gap only', () => {
    const b = new FlushBudget(20, MAX);
    const units = b.limit;
    b.observe(units, 80_000); // four times the target
    const after = b.limit;
    expect(after).to.be.below(units / 2);
    // half the gap: the estimate is between the old one and the sample
    expect(b.estimate).to.be.closeTo((FlushBudget.START_US_PER_UNIT + 80_000 / units) / 2, 1e-9);
    // a second flush as slow per unit brings it closer to the target still
    b.observe(after, (80_000 / units) * after);
    expect(b.limit).to.be.below(after);
  });

  it('grows back slowly when flushes run under it, never past the fixed limits', () => {
    const b = new FlushBudget(20, MAX);
    const limits: number[] = [];
    for (let i = 0; i < 60; i++) {
      const units = b.limit;
      b.observe(units, units * 0.1); // 0.1 µs per unit: thirty times cheaper than the start
      limits.push(b.limit);
    }
    expect(limits[0]).to.be.below(start * 1.3); // one cheap flush moves it by a fifth of the gap
    for (let i = 1; i < limits.length; i++) expect(limits[i]).to.be.at.least(limits[i - 1]);
    expect(limits[limits.length - 1]).to.equal(MAX);
  });

  it('learns nothing from a flush far below the budget (its time is mostly the call itself)', () => {
    const b = new FlushBudget(20, MAX);
    b.observe(10, 5_000);
    expect(b.limit).to.equal(start);
  });

  it('always lets one post through, and with target 0 holds the fixed limits only', () => {
    const b = new FlushBudget(20, MAX);
    b.observe(b.limit, 10_000_000);
    b.observe(b.limit, 10_000_000);
    expect(b.limit).to.be.at.least(FlushBudget.units(1, 1));
    const off = new FlushBudget(0, MAX);
    off.observe(MAX, 10_000_000);
    expect(off.limit).to.equal(MAX);
  });
});
