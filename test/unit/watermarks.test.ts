import { expect } from 'chai';
import { Watermarks, type WatermarkSnapshot } from '../../src/ingest/watermarks';
import { lateMask } from '../../src/ingest/triage';
import { loadConfig } from '../../src/config';

describe('event-time watermarks', () => {
  it('is the max event time minus the out-of-orderness bound, and never moves back', () => {
    let now = 1_000_000;
    const w = new Watermarks(5000, 10_000, () => now);
    expect(w.of(0)).to.equal(undefined);
    w.observe(0, 100_000, [['NA', 90_000]], false);
    expect(w.of(0)).to.equal(95_000);
    w.observe(0, 80_000, [['NA', 80_000]], false); // out of order: no step back
    expect(w.of(0)).to.equal(95_000);
    now += 60_000; // not caught up: no processing-time advance however long it waits
    expect(w.of(0)).to.equal(95_000);
  });

  it('advances an idle, caught-up partition by processing time after the timeout', () => {
    let now = 1_000_000;
    const w = new Watermarks(5000, 10_000, () => now);
    w.observe(1, 900_000, [['EU', 900_000]], true);
    expect(w.of(1)).to.equal(895_000);
    now += 9_999;
    expect(w.of(1)).to.equal(895_000);
    now += 1;
    expect(w.of(1)).to.equal(now - 5000);
  });

  it('does not advance by processing time while a batch of the partition is still being applied', () => {
    // A partition went quiet, then a batch of new events came in and is flushing slowly
    // (a busy Redis): its events must not find their windows closed when they land.
    let now = 1_000_000;
    let flushing = false;
    const w = new Watermarks(
      500,
      1000,
      () => now,
      (p) => p === 3 && flushing,
    );
    w.observe(3, 999_000, [['NA', 999_000]], true);
    now += 5000; // idle: by processing time
    expect(w.of(3)).to.equal(now - 500);
    const held = now - 500;
    flushing = true; // a batch stamped `now` taken
    now += 10_000;
    expect(w.of(3), 'while its batch flushes').to.equal(held);
    flushing = false;
    w.observe(3, held + 500, [['NA', held + 500]], true); // applied
    expect(w.of(3)).to.equal(held);
    now += 1000; // idle again after the timeout
    expect(w.of(3)).to.equal(now - 500);
  });

  it('never passes the clock, whatever event time it saw (one bad event cannot make the rest late)', () => {
    let now = 1_000_000;
    const w = new Watermarks(5000, 10_000, () => now);
    w.observe(0, 4_102_444_800_000, [['NA', 4_102_444_800_000]], false); // year 2100
    expect(w.of(0)).to.equal(now - 5000);
    now += 1000;
    w.observe(0, now, [['NA', now]], false);
    expect(w.of(0)).to.equal(now - 5000);
    expect(lateMask(now - 1000, loadConfig({ HH_WINDOWS: '1m/10s/1h' }).ingest.windows, w.of(0))).to.equal(0);
  });

  it('gives a region the lowest watermark of its partitions and its earliest new event time', () => {
    const w = new Watermarks(0, 10_000, () => 1000);
    w.observe(0, 50, [['NA', 10]], false);
    w.observe(
      1,
      30,
      [
        ['NA', 20],
        ['EU', 25],
      ],
      false,
    );
    expect(Object.fromEntries(w.regions())).to.deep.equal({ NA: { watermark: 30, earliest: 10 }, EU: { watermark: 30, earliest: 25 } });
    w.taken('NA', 10);
    expect(w.regions().get('NA')).to.deep.equal({ watermark: 30, earliest: 30 });
    w.retain(new Set([0]));
    expect(w.regions().get('NA')).to.deep.equal({ watermark: 50, earliest: 50 });
  });

  it('lets the member that takes over a quiet partition carry its watermark on by processing time', () => {
    let now = 1_000_000;
    const before = new Watermarks(5000, 10_000, () => now);
    before.observe(3, 990_000, [['NA', 990_000]], true);
    const snap = before.snapshot(3)!;
    expect(snap).to.deep.equal({ max: 990_000, regions: ['NA'], earliest: { NA: 990_000 } });
    const after = new Watermarks(5000, 10_000, () => now); // the new owner: no batch will come
    after.seed(3, snap);
    expect(after.regions().get('NA')!.watermark).to.equal(985_000);
    now += 10_000;
    expect(after.regions().get('NA')!.watermark).to.equal(now - 5000);
    after.seed(3, { max: 0, regions: ['EU'] }); // has state already: ignored
    expect([...after.regions().keys()]).to.deep.equal(['NA']);
  });

  it('hands the next owner the earliest event times its coordinator has not been told of (they are not read again)', () => {
    const now = 1_000_000;
    const before = new Watermarks(5000, 10_000, () => now);
    // Applied here; the report round that wrote this snapshot could not signal the coordinator
    // (Temporal down), then the partition moved on: the next owner resumes after these events.
    before.observe(3, 990_000, [['NA', 940_000]], true);
    const after = new Watermarks(5000, 10_000, () => now);
    after.seed(3, JSON.parse(JSON.stringify(before.snapshot(3))) as WatermarkSnapshot);
    expect(after.regions().get('NA')).to.deep.equal({ watermark: 985_000, earliest: 940_000 });
    // Once reported, nothing is pending: the snapshot carries none.
    before.taken('NA', 940_000);
    expect(before.snapshot(3)).to.deep.equal({ max: 990_000, regions: ['NA'] });
  });

  it('marks the window specs an event is beyond the allowed lateness of', () => {
    const windows = loadConfig({ HH_WINDOWS: '1m/10s/1h,1h/5m/1d' }).ingest.windows;
    const t = 3_600_000 * 100 + 30_000; // 30 s into an hour (and into its first minute)
    expect(lateMask(t, windows, undefined)).to.equal(0);
    expect(lateMask(t, windows, t + 39_999)).to.equal(0); // minute ends at +30 s, lateness 10 s
    expect(lateMask(t, windows, t + 40_000)).to.equal(0b01);
    expect(lateMask(t, windows, t + 3_600_000)).to.equal(0b01); // the hour ends at +59:30, lateness 5 min
    expect(lateMask(t, windows, t + 3_870_000)).to.equal(0b11);
  });
});
