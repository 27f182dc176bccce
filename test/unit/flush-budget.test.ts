import { expect } from 'chai';
import { FlushBudget } from '../../src/actors/flush-budget';

/** How many events a flush over `posts` distinct posts may take within the budget. */
const eventsFor = (b: FlushBudget, posts: number) => Math.floor((b.limitUs - posts * b.usPerPost) / b.usPerEvent);

describe('flush budget: each flush sized to the time its script may hold Redis', () => {
  it('starts from its first estimates; with target 0 there is no budget', () => {
    const b = new FlushBudget(20);
    expect(b.limitUs).to.equal(20_000);
    expect(b.usPerEvent).to.equal(FlushBudget.START_US_PER_EVENT);
    expect(b.usPerPost).to.equal(FlushBudget.START_US_PER_POST);
    const off = new FlushBudget(0);
    off.observe(20_000, 2_000, 10_000_000, 10_000_000);
    expect(off.limitUs).to.equal(Infinity);
    expect(off.usPerEvent).to.equal(FlushBudget.START_US_PER_EVENT);
  });

  it('rises at once when a step runs over, by half the gap only; each step teaches its own estimate', () => {
    const b = new FlushBudget(20);
    // 4,000 events over 400 posts: the event step ran 4 µs per event, the post step as expected
    b.observe(4_000, 400, 16_000, 400 * FlushBudget.START_US_PER_POST);
    expect(b.usPerEvent).to.be.closeTo((FlushBudget.START_US_PER_EVENT + 4) / 2, 1e-9);
    expect(b.usPerPost).to.equal(FlushBudget.START_US_PER_POST);
    const before = b.usPerEvent;
    b.observe(4_000, 400, 16_000, 400 * FlushBudget.START_US_PER_POST);
    expect(b.usPerEvent).to.be.above(before).and.below(4);
  });

  it('falls back slowly (a fifth of the gap per flush) when flushes run under it', () => {
    const b = new FlushBudget(20);
    const seen: number[] = [];
    for (let i = 0; i < 40; i++) {
      b.observe(5_000, 500, 5_000 * 1.8, 500 * 5);
      seen.push(b.usPerEvent);
    }
    expect(seen[0]).to.be.closeTo(0.8 * FlushBudget.START_US_PER_EVENT + 0.2 * 1.8, 1e-9);
    for (let i = 1; i < seen.length; i++) expect(seen[i]).to.be.at.most(seen[i - 1]);
    expect(seen[seen.length - 1]).to.be.closeTo(1.8, 0.01);
    expect(b.usPerPost).to.be.closeTo(5, 0.05);
  });

  it('learns nothing from a step expected far below the target (mostly the call itself)', () => {
    const b = new FlushBudget(20);
    b.observe(10, 3, 5_000, 5_000);
    expect(b.usPerEvent).to.equal(FlushBudget.START_US_PER_EVENT);
    expect(b.usPerPost).to.equal(FlushBudget.START_US_PER_POST);
  });

  // The defect this design fixes: one estimate per unit over a fixed mix (a post as 32 events)
  // learned on flushes of many posts let a flush of many events over few posts run 2-3x the target.
  it('sizes a flush of many events over few posts right after flushes of as many posts as events', () => {
    const b = new FlushBudget(20);
    const truth = { event: 1.8, post: 5.5 };
    const run = (events: number, posts: number) => {
      const e = events * truth.event;
      const p = posts * truth.post;
      b.observe(events, posts, e, p);
      return (e + p) / 1000;
    };
    // A stream whose every event is a post of its own (each flush fills the budget).
    for (let i = 0; i < 30; i++) {
      const n = Math.floor(b.limitUs / (b.usPerEvent + b.usPerPost));
      run(n, n);
    }
    // Then 1,250 posts, many events each: the flush holds them all and as many events as fit.
    const events = eventsFor(b, 1_250);
    expect(run(events, 1_250)).to.be.at.most(20 * 1.05);
    expect(b.expected(events, 1_250)).to.be.closeTo(20_000, 1_000);
  });
});
