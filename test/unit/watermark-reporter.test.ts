import { expect } from 'chai';
import * as sinon from 'sinon';
import type { Redis } from 'ioredis';
import type { Client } from '@temporalio/client';
import { loadConfig } from '../../src/config';
import { crossesBoundary, WatermarkReporter } from '../../src/ingest/watermark-reporter';
import { Watermarks } from '../../src/ingest/watermarks';

const MIN = 60_000;

describe('crossesBoundary (which watermark moves a coordinator step acts on)', () => {
  const oneMinute = [{ sizeMs: MIN, latenessMs: 10_000 }];

  it('a window start or end, or an end plus the lateness, between the two watermarks', () => {
    expect(crossesBoundary(oneMinute, 10 * MIN + 11_000, 10 * MIN + 59_000), 'inside a minute, past its lateness').to.equal(false);
    expect(crossesBoundary(oneMinute, 10 * MIN + 59_000, 11 * MIN), 'reaching the next start').to.equal(true);
    expect(crossesBoundary(oneMinute, 11 * MIN + 1_000, 11 * MIN + 9_999), 'short of the lateness').to.equal(false);
    expect(crossesBoundary(oneMinute, 11 * MIN + 9_999, 11 * MIN + 10_000), 'the last window turns final').to.equal(true);
  });

  it('a sliding spec steps by its slide; any spec that crosses decides', () => {
    const sliding = [{ sizeMs: 5 * MIN, latenessMs: 30_000, slideMs: MIN }];
    expect(crossesBoundary(sliding, 12 * MIN + 40_000, 13 * MIN + 1)).to.equal(true);
    expect(crossesBoundary(sliding, 13 * MIN + 31_000, 13 * MIN + 59_000)).to.equal(false);
    const both = [...sliding, { sizeMs: 24 * 60 * MIN, latenessMs: 30 * MIN }];
    expect(crossesBoundary(both, 13 * MIN + 31_000, 13 * MIN + 59_000)).to.equal(false);
    expect(crossesBoundary(both, 29 * MIN + 31_000, 30 * MIN + 1_000), "the day's lateness").to.equal(true);
  });
});

describe('WatermarkReporter (signals a coordinator only when a step would act)', () => {
  let t: number;
  let signals: { region: string; watermark: number; earliest: number }[];
  const start = Date.UTC(2026, 11, 5, 10, 0, 0);

  function reporter(env: Record<string, string> = {}) {
    const loaded = loadConfig({ HH_TOPK_MODE: 'bounded', HH_WINDOWS: '1m/10s/1h,5m/30s/2h', HH_WATERMARK_DELAY: '5s', ...env });
    // Bounded mode: an exact one first moves the trailing timeframes in Redis, not what this checks.
    const cfg = { ...loaded, ingest: { ...loaded.ingest, mode: 'bounded' as const } };
    const watermarks = new Watermarks(5_000, 30_000, () => t);
    const redis = { hset: sinon.stub().resolves(1) } as unknown as Redis;
    const client = {
      workflow: {
        signalWithStart: sinon
          .stub()
          .callsFake(async (_type: string, o: { signalArgs: [{ watermark: number; earliest: number }]; args: [{ region: string }] }) => {
            signals.push({ region: o.args[0].region, watermark: o.signalArgs[0].watermark, earliest: o.signalArgs[0].earliest });
          }),
      },
    } as unknown as Client;
    const r = new WatermarkReporter({ cfg, redis, watermarks, held: () => [0], temporal: { client, taskQueue: 'q' }, log: () => undefined });
    return { r, watermarks };
  }

  beforeEach(() => {
    t = start;
    signals = [];
  });

  it('tells the first report, then only moves that cross a boundary or name events behind the last told watermark', async () => {
    const { r, watermarks } = reporter({ HH_WINDOWS: '1m/10s/1h' });
    // Events up to 10:00:20 (watermark 10:00:15).
    t = start + 20_000;
    watermarks.observe(0, start + 20_000, [['NA', start + 1_000]], false);
    await r.report();
    expect(signals.map((s) => s.watermark)).to.deep.equal([start + 15_000]);
    // More events within the minute: the watermark moves, no window starts, closes or turns final.
    for (const at of [30_000, 40_000, 50_000, 60_000]) {
      t = start + at;
      watermarks.observe(0, start + at, [['NA', start + at - 5_000]], false);
      await r.report();
    }
    expect(signals, 'moves inside the minute').to.have.length(1);
    // 10:01:05 - 5 s: the watermark reaches 10:01:00, the 1m window closes and the next starts.
    t = start + 65_000;
    watermarks.observe(0, start + 65_000, [['NA', start + 61_000]], false);
    await r.report();
    expect(signals.map((s) => s.watermark)).to.deep.equal([start + 15_000, start + 60_000]);
    // It names the earliest event time of the reports not signalled: the coordinator hears of every event's time.
    expect(signals[1].earliest).to.equal(start + 25_000);
    // An event behind the watermark last told (a late one from a backlog): its window may not exist yet.
    t = start + 66_000;
    watermarks.observe(0, start + 66_000, [['NA', start + 500]], false);
    await r.report();
    expect(signals).to.have.length(3);
    expect(signals[2].earliest).to.equal(start + 500);
    // 10:01:10: the window of 10:00 turns final (lateness 10 s).
    t = start + 75_000;
    watermarks.observe(0, start + 75_000, [['NA', start + 70_000]], false);
    await r.report();
    expect(signals.map((s) => s.watermark)).to.deep.equal([start + 15_000, start + 60_000, start + 61_000, start + 70_000]);
  });

  it('an idle region is told only at its boundaries (its watermark moves by processing time)', async () => {
    const { r, watermarks } = reporter();
    t = start + 5_000;
    watermarks.observe(0, start + 5_000, [['EU', start + 5_000]], true);
    await r.report(); // the first report: watermark 10:00:00
    // Idle for ten minutes, a report every 2 s: the 1m windows start, close and turn final
    // each minute, the 5m ones every five; nothing else.
    for (let at = 7_000; at <= 605_000; at += 2_000) {
      t = start + at;
      await r.report();
    }
    // The coordinator heard of the first report; the jump once idle (10:00:00 → 10:00:30: the
    // first 1m and 5m windows final); each minute's start and end (10:01 ... 10:10); the 1m
    // windows' finals (10:01:10 ... 10:09:10) and the first 5m window's (10:05:30): 22 of 287 moves.
    expect(signals).to.have.length(22);
  });

  it('with session specs every move is told (sessions seal at gaps, not on a grid)', async () => {
    const { r, watermarks } = reporter({ HH_TOPK_MODE: 'exact', HH_WINDOWS: '1m/10s/1h,gap30s' });
    t = start + 5_000;
    watermarks.observe(0, start + 5_000, [['SA', start + 5_000]], true);
    for (let at = 7_000; at <= 27_000; at += 2_000) {
      t = start + at;
      watermarks.observe(0, start + at, [['SA', start + at]], true);
      await r.report();
    }
    expect(signals).to.have.length(11);
  });

  it('a failed signal is sent again at the next report', async () => {
    const { r, watermarks } = reporter();
    t = start + 20_000;
    watermarks.observe(0, start + 20_000, [['OC', start + 1_000]], false);
    await r.report();
    const stub = (r as unknown as { deps: { temporal: { client: { workflow: { signalWithStart: sinon.SinonStub } } } } }).deps.temporal.client.workflow
      .signalWithStart;
    stub.onCall(1).rejects(new Error('Temporal unavailable'));
    t = start + 65_000;
    watermarks.observe(0, start + 65_000, [['OC', start + 61_000]], false);
    await r.report(); // crosses 10:01: fails
    t = start + 67_000;
    await r.report(); // the move is still due (the failed round recorded nothing): sent now
    expect(signals.map((s) => s.watermark)).to.deep.equal([start + 15_000, start + 60_000]);
  });
});
