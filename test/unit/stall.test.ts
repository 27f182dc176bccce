import { expect } from 'chai';
import { StallWatch, type StallProbe } from '../../src/ingest/stall';

describe('StallWatch (an ingest member stuck while Redis answers)', () => {
  let t: number;
  const clock = () => t;
  const probe = (p: Partial<StallProbe>): StallProbe => ({ pendingSince: null, unfetchedSince: new Map(), backpressure: false, ...p });
  const none = async () => [] as number[];
  beforeEach(() => {
    t = 1_000_000;
  });

  it('a batch pending longer than the limit is a stall; within it, none', async () => {
    const w = new StallWatch(10_000, clock);
    t += 9_000;
    expect(await w.check(probe({ pendingSince: 1_000_000 }), none)).to.equal(null);
    t += 2_000;
    expect(await w.check(probe({ pendingSince: 1_000_000 }), none)).to.deep.equal({ kind: 'pending', forMs: 11_000 });
  });

  it('time with Redis unreachable or rebuilding does not count: pending time counts from after it', async () => {
    const w = new StallWatch(10_000, clock);
    t += 8_000;
    w.waitingOnRedis();
    t += 9_000;
    expect(await w.check(probe({ pendingSince: 1_000_000 }), none)).to.equal(null);
    t += 2_000;
    expect(await w.check(probe({ pendingSince: 1_000_000 }), none)).to.deep.equal({ kind: 'pending', forMs: 11_000 });
  });

  it('a region waiting for a checkpoint (backpressure) is not a stall', async () => {
    const w = new StallWatch(10_000, clock);
    t += 30_000;
    expect(await w.check(probe({ pendingSince: 1_000_000, backpressure: true }), none)).to.equal(null);
    t += 5_000;
    expect(await w.check(probe({ pendingSince: 1_000_000 }), none)).to.equal(null);
  });

  it('a process that did not run (a late tick: stopped, paused) is not a stall', async () => {
    const w = new StallWatch(10_000, clock);
    w.tick(1_000);
    t += 1_000;
    w.tick(1_000);
    t += 20_000; // SIGSTOP for 20 s
    w.tick(1_000);
    expect(await w.check(probe({ pendingSince: 1_000_000 }), none)).to.equal(null);
    for (let i = 0; i < 11; i++) {
      t += 1_000;
      w.tick(1_000);
    }
    expect((await w.check(probe({ pendingSince: 1_000_000 }), none))?.kind).to.equal('pending');
  });

  it('a partition not fetched for longer than the limit is a stall only when records wait past where it resumes', async () => {
    const w = new StallWatch(10_000, clock);
    const unfetchedSince = new Map([
      [0, 1_000_000],
      [3, 1_000_000],
      [5, 1_015_000],
    ]);
    t += 20_000;
    const asked: number[][] = [];
    // Partitions 0 and 3 are quiet past the limit (5 is not); only 3 has records waiting.
    const stall = await w.check(probe({ unfetchedSince }), async (parts) => {
      asked.push(parts);
      return parts.filter((p) => p === 3);
    });
    expect(asked).to.deep.equal([[0, 3]]);
    expect(stall).to.deep.equal({ kind: 'unfetched', forMs: 20_000, partitions: [3] });
    // Caught up (nothing waits): idle, not stuck.
    expect(await w.check(probe({ unfetchedSince }), none)).to.equal(null);
  });

  it('while a batch is in flight (within the limit) quiet partitions are not asked about: fetching waits for it', async () => {
    const w = new StallWatch(10_000, clock);
    t += 20_000;
    let asked = false;
    const stall = await w.check(probe({ pendingSince: t - 1_000, unfetchedSince: new Map([[0, 1_000_000]]) }), async () => {
      asked = true;
      return [0];
    });
    expect(stall).to.equal(null);
    expect(asked).to.equal(false);
  });
});
