import { expect } from 'chai';
import { killAfterStarted } from '../support/kill-child';
import { opsRedis } from '../../src/clients';
import { Redis } from 'ioredis';
import * as sinon from 'sinon';
import type { Histogram } from 'prom-client';
import type { Client } from 'cassandra-driver';
import { ActorSystem, FLUSH_LIMITS, type OffsetEvent } from '../../src/actors/region-actor';
import { createMetrics } from '../../src/metrics';
import { RegionRecord } from '../../src/store/record';
import { advanceTrailing } from '../../src/store/trailing';
import { sealSessions } from '../../src/store/sessions';
import { loadConfig, trailingPaneMs } from '../../src/config';
import {
  regionBoundedKey,
  regionMetaKey,
  regionOffsetsKey,
  regionPaneKey,
  regionDirtyEntriesKey,
  lateMaskBit,
  regionPrefix,
  regionSeenKey,
  regionTopKey,
  regionTrailingKey,
  regionTrailingStateKey,
  regionWindowKey,
  regionSealedKey,
  regionUnrolledKey,
  windowFinalField,
  windowId,
} from '../../src/keys';
import { rollChildren, rollPlan } from '../../src/store/window-roll';
import { windowTopK } from '../../src/store/window-sources';
import { EpochChanged } from '../../src/actors/region-actor';
import { freeRedisDb, rankOrder } from '../support/redis';
import { prng } from '../../src/load/generator';
import { cfg, unique } from '../helpers';

const windows = loadConfig({ HH_WINDOWS: '1m,1h' }).ingest.windows;
const plan = rollPlan(windows);
// Recent event time (window keys and dedup sets expire relative to event time), minute-aligned.
const T0 = Math.floor(Date.now() / 60_000) * 60_000 - 120_000;
const hourOf = (t: number) => Math.floor(t / 3_600_000) * 3_600_000;

/** [a, b, c, d] -> [[a, b], [c, d]] */
const chunk = (flat: string[]): [string, string][] => Array.from({ length: flat.length / 2 }, (_, i) => [flat[2 * i], flat[2 * i + 1]]);

function ev(i: number, post: string, region: string, ts = T0, id = `e${i}`): OffsetEvent {
  return { offset: String(i), event: { event_id: id, post_id: post, region_id: region, timestamp: ts } };
}

describe('region actor flush (one atomic Redis step, real Redis)', () => {
  let redis: Redis;
  const EPOCH = 'test-epoch';
  /** A fresh region whose state belongs to EPOCH. */
  const region = async (tag: string) => {
    const r = unique(`act_${tag}`);
    await redis.hset(regionMetaKey(r), 'epoch', EPOCH);
    return r;
  };

  // An empty database of its own: the flushes also mark families for the global merge.
  before(async () => {
    redis = opsRedis(cfg, await freeRedisDb());
  });
  after(async () => {
    await redis.flushdb();
    redis.disconnect();
  });

  it('counts events into the exact, bounded and window keys, and records the fence', async () => {
    const r = await region('basic');
    const actors = new ActorSystem(redis, { windows, boundedK: 2, dedupHorizonMs: 3_600_000 });
    const res = await actors.actor(r).apply(0, [ev(0, 'a', r), ev(1, 'b', r), ev(2, 'a', r), ev(3, 'c', r, T0 + 61_000)], EPOCH);
    expect(res).to.include({ applied: 4, duplicates: 0, fenced: 0, fence: '3' });
    expect(await redis.zrevrange(regionTopKey(r), 0, -1, 'WITHSCORES')).to.deep.equal(['a', '2', 'c', '1', 'b', '1']);
    expect(await redis.zrevrange(regionBoundedKey(r), 0, -1, 'WITHSCORES')).to.deep.equal(['a', '2', 'c', '1']);
    expect(await redis.zrevrange(regionWindowKey(r, windowId('1m', T0)), 0, -1, 'WITHSCORES')).to.deep.equal(['a', '2', 'b', '1']);
    expect(await redis.zrevrange(regionWindowKey(r, windowId('1m', T0 + 60_000)), 0, -1, 'WITHSCORES')).to.deep.equal(['c', '1']);
    // 1h is rolled up from 1m: the flush writes only the minutes; the hour reads as its key plus them.
    const h0 = windowId('1h', hourOf(T0));
    const h1 = windowId('1h', hourOf(T0 + 61_000));
    expect(await redis.exists(regionWindowKey(r, h0)), 'the hour takes nothing from the flush').to.equal(0);
    const flatTop = async (id: string) => (await windowTopK(redis, r, id, plan, 10))!.top.flatMap((e) => [e.post_id, String(e.view_count)]);
    if (h0 === h1) expect(await flatTop(h0)).to.deep.equal(['a', '2', 'c', '1', 'b', '1']);
    else expect(await flatTop(h0)).to.deep.equal(['a', '2', 'b', '1']);
    expect(await redis.hget(regionOffsetsKey(r), '0')).to.equal('3');
    expect(await redis.pttl(regionWindowKey(r, windowId('1m', T0)))).to.be.greaterThan(0);
  });

  it('a late event skips only the windows it is late for (still in all-time, the other windows and the panes), also when the rest of the flush shares one window', async () => {
    const r = await region('late');
    const actors = new ActorSystem(redis, { windows, boundedK: 10, dedupHorizonMs: 3_600_000 });
    const t = T0 + 5_000;
    const late1m = (e: OffsetEvent): OffsetEvent => ({ ...e, lateMask: lateMaskBit(0) });
    const m = regionWindowKey(r, windowId('1m', T0));
    const h = regionWindowKey(r, windowId('1h', hourOf(T0)));
    const pane1m = regionPaneKey(r, '1m', t - (t % trailingPaneMs(60_000)));
    const pane1h = regionPaneKey(r, '1h', t - (t % trailingPaneMs(3_600_000)));
    const read = async (key: string) => Object.fromEntries(chunk(await redis.zrange(key, 0, -1, 'WITHSCORES')));
    // Every event in one window of each spec (each key takes all of them).
    await actors.actor(r).apply(0, [ev(0, 'a', r, t), ev(1, 'a', r, t), ev(2, 'b', r, t)], EPOCH);
    // One event late for 1m beside on-time ones; then a flush of only a late one.
    await actors.actor(r).apply(0, [late1m(ev(3, 'c', r, t)), ev(4, 'd', r, t)], EPOCH);
    await actors.actor(r).apply(0, [late1m(ev(5, 'e', r, t))], EPOCH);
    // All in one window again, onto counts already there: each key adds the deltas, not another key's totals.
    await actors.actor(r).apply(0, [ev(6, 'a', r, t), ev(7, 'b', r, t)], EPOCH);
    expect(await read(regionTopKey(r))).to.deep.equal({ a: '3', b: '2', c: '1', d: '1', e: '1' });
    expect(await read(m)).to.deep.equal({ a: '3', b: '2', d: '1' });
    // 1h is rolled up from 1m: its key takes only what is too late for its minute, its sum everything.
    expect(await read(h)).to.deep.equal({ c: '1', e: '1' });
    const hid = windowId('1h', hourOf(T0));
    const sum = async () => Object.fromEntries((await windowTopK(redis, r, hid, plan, 10))!.top.map((e) => [e.post_id, String(e.view_count)]));
    expect(await sum()).to.deep.equal({ a: '3', b: '2', c: '1', d: '1', e: '1' });
    expect(await read(pane1m)).to.deep.equal({ a: '3', b: '2', c: '1', d: '1', e: '1' });
    // 1h's panes (1 minute) are summed from 1m's (1 second) once the watermark passes them, not written by flushes.
    expect(await redis.exists(pane1h), "1h's pane before the watermark passed it").to.equal(0);
    await advanceTrailing(redis, r, windows, t - (t % 60_000) + 60_000);
    expect(await read(pane1h)).to.deep.equal({ a: '3', b: '2', c: '1', d: '1', e: '1' });
    // The checkpoint's entries say the same.
    expect(await redis.hgetall(regionDirtyEntriesKey(r, windowId('1m', T0)))).to.deep.equal({ a: '3', b: '2', d: '1' });
    expect(await redis.hgetall(regionDirtyEntriesKey(r, windowId('1h', hourOf(T0))))).to.deep.equal({ c: '1', e: '1' });
    // Once the minute is FINAL it is rolled into the hour: the key and its checkpoint entries hold the sum.
    await redis.hset(regionSealedKey(r), windowFinalField('1m'), String(T0));
    const report = await rollChildren(redis, r, plan!, T0, undefined, 2);
    expect(report).to.deep.include({ pages: 2, members: 3, refused: 0 });
    expect(await read(h)).to.deep.equal({ a: '3', b: '2', c: '1', d: '1', e: '1' });
    expect(await redis.hgetall(regionDirtyEntriesKey(r, hid))).to.deep.equal({ a: '3', b: '2', c: '1', d: '1', e: '1' });
    expect(await sum(), 'the minute no longer adds').to.deep.equal({ a: '3', b: '2', c: '1', d: '1', e: '1' });
    expect(await read(m), 'the minute keeps its counts').to.deep.equal({ a: '3', b: '2', d: '1' });
    expect(await redis.zcard(regionUnrolledKey(r, '1m'))).to.equal(0);
    // A later flush of that minute goes straight to the hour.
    await actors.actor(r).apply(0, [ev(8, 'b', r, t)], EPOCH);
    expect(await read(m)).to.deep.equal({ a: '3', b: '2', d: '1' });
    expect(await read(h)).to.deep.equal({ a: '3', b: '3', c: '1', d: '1', e: '1' });
  });

  it('skips a redelivered batch by the offset fence, and re-sent event_ids by dedup', async () => {
    const r = await region('fence');
    const a = new ActorSystem(redis, { windows, boundedK: 10, dedupHorizonMs: 3_600_000 }).actor(r);
    const batch = [ev(10, 'x', r), ev(11, 'y', r), ev(12, 'x', r)];
    await a.apply(3, batch, EPOCH);
    // Same records again (a rewind / redelivery), overlapping a new one: only offset 13 counts.
    const again = await a.apply(3, [...batch, ev(13, 'y', r)], EPOCH);
    expect(again).to.include({ applied: 1, fenced: 3, duplicates: 0, fence: '13' });
    // The same events re-sent by a producer: new offsets, same event_ids.
    const resent = await a.apply(3, [ev(20, 'x', r, T0, 'e10'), ev(21, 'y', r, T0, 'e11')], EPOCH);
    expect(resent).to.include({ applied: 0, duplicates: 2, fenced: 0, fence: '21' });
    // Another partition has its own fence.
    const other = await a.apply(4, [ev(0, 'z', r)], EPOCH);
    expect(other).to.include({ applied: 1, fenced: 0 });
    expect(await redis.zrevrange(regionTopKey(r), 0, -1, 'WITHSCORES')).to.deep.equal(['y', '2', 'x', '2', 'z', '1']);
  });

  it('refuses to write under another epoch, and reports it', async () => {
    const r = await region('epoch');
    const a = new ActorSystem(redis, { windows, boundedK: 10, dedupHorizonMs: 3_600_000 }).actor(r);
    let err: unknown;
    await a.apply(0, [ev(0, 'a', r)], 'an-older-epoch').catch((e) => (err = e));
    expect(err).to.be.instanceOf(EpochChanged);
    expect((err as EpochChanged).epoch).to.equal(EPOCH);
    expect(await redis.exists(regionTopKey(r))).to.equal(0);
  });

  it('keeps the bounded key equal to the exact top K under a random stream (ties by post_id)', async () => {
    const r = await region('bounded');
    const K = 15;
    const a = new ActorSystem(redis, { windows: [], boundedK: K, dedupHorizonMs: 3_600_000 }).actor(r);
    const rand = prng(42);
    let offset = 0;
    for (let b = 0; b < 40; b++) {
      const batch: OffsetEvent[] = [];
      const n = 1 + Math.floor(rand() * 200);
      for (let i = 0; i < n; i++) {
        // Skewed: low post numbers are hot, but the tail keeps climbing into the top K.
        const post = `p${Math.floor(Math.pow(rand(), 2) * 120)}`;
        batch.push(ev(offset, post, r, T0, `b${offset}`));
        offset++;
      }
      await a.apply(0, batch, EPOCH);
    }
    const exact = await redis.zrevrange(regionTopKey(r), 0, K - 1, 'WITHSCORES');
    const bounded = await redis.zrevrange(regionBoundedKey(r), 0, -1, 'WITHSCORES');
    expect(await redis.zcard(regionBoundedKey(r))).to.equal(K);
    expect(bounded).to.deep.equal(exact);
    expect(exact).to.deep.equal(rankOrder(exact));
  });
});

/** A suite's own empty Redis database with one region whose state belongs to `epoch` (set up in before, flushed in after). */
function ownRegion(tag: string): { redis: Redis; region: string; epoch: string } {
  const own = { redis: undefined as unknown as Redis, region: unique(tag), epoch: `${tag}-epoch` };
  before(async () => {
    own.redis = opsRedis(cfg, await freeRedisDb());
    await own.redis.hset(regionMetaKey(own.region), 'epoch', own.epoch);
  });
  after(async () => {
    await own.redis.flushdb();
    own.redis.disconnect();
  });
  return own;
}

describe('region actor flush of a large batch (real Redis)', () => {
  const own = ownRegion('big');

  it('applies 30,000 events of one partition batch (in bounded flushes; more values than a JS call takes as arguments)', async () => {
    const specs = loadConfig({}).ingest;
    const actor = new ActorSystem(own.redis, {
      windows: specs.windows,
      sessions: loadConfig({ HH_WINDOWS: '1m,gap1m' }).ingest.sessions,
      boundedK: 10,
      dedupHorizonMs: 48 * 3_600_000,
    }).actor(own.region);
    const batch = Array.from({ length: 30_000 }, (_, i) => ev(i, `p${i % 500}`, own.region, T0 + (i % 60) * 1000, `big${i}`));
    const res = await actor.apply(0, batch, own.epoch);
    expect(res).to.include({ applied: 30_000, fence: '29999' });
    expect(await own.redis.zscore(regionTopKey(own.region), 'p0')).to.equal('60');
  });
});

describe('bounded mode (Space-Saving leaderboards, real Redis)', () => {
  const own = ownRegion('ss');

  it('keeps at most K posts per leaderboard, never under-counts, and holds every post above N/K', async () => {
    const K = 50;
    const windows = loadConfig({ HH_WINDOWS: '1h' }).ingest.windows;
    const actor = new ActorSystem(own.redis, { windows, boundedK: K, dedupHorizonMs: 48 * 3_600_000, mode: 'bounded' }).actor(own.region);
    const rnd = prng(21);
    const truth: Record<string, number> = {};
    let n = 0;
    let batch: OffsetEvent[] = [];
    for (let b = 0; b < 40; b++) {
      batch = [];
      for (let i = 0; i < 500; i++, n++) {
        const post = `p${Math.floor(1 / (rnd() + 0.002))}`; // heavy head, long tail of distinct posts
        truth[post] = (truth[post] ?? 0) + 1;
        batch.push(ev(n, post, own.region, T0, `ss${n}`));
      }
      await actor.apply(0, batch, own.epoch);
    }
    // A redelivered batch (fenced) and a re-sent event (duplicate) change nothing.
    const before = await own.redis.zrange(regionTopKey(own.region), 0, -1, 'WITHSCORES');
    expect(await actor.apply(0, batch, own.epoch)).to.include({ applied: 0, fenced: 500 });
    expect(await actor.apply(0, [{ ...batch[0], offset: String(n) }], own.epoch)).to.include({ applied: 0, duplicates: 1 });
    expect(await own.redis.zrange(regionTopKey(own.region), 0, -1, 'WITHSCORES')).to.deep.equal(before);
    for (const key of [regionTopKey(own.region), regionWindowKey(own.region, windowId('1h', Math.floor(T0 / 3_600_000) * 3_600_000))]) {
      const flat = await own.redis.zrange(key, 0, -1, 'WITHSCORES');
      expect(flat.length / 2).to.be.at.most(K);
      const est = new Map<string, number>();
      for (let i = 0; i < flat.length; i += 2) est.set(flat[i], Number(flat[i + 1]));
      const min = Math.min(...est.values());
      for (const [post, c] of est) {
        expect(c, post).to.be.at.least(truth[post]);
        expect(c - truth[post], post).to.be.at.most(min);
      }
      for (const [post, c] of Object.entries(truth)) if (c > n / K) expect(est.has(post), `${post} (${c} of ${n})`).to.equal(true);
    }
    expect(Object.keys(truth).length).to.be.greaterThan(K * 4);
    expect(await own.redis.exists(regionBoundedKey(own.region))).to.equal(0);
  });

  it('records every change for the checkpoint: a kept post at its count, -1 for one evicted (also one that entered and left in one flush)', async () => {
    const r = unique('ss_dirty');
    await own.redis.hset(regionMetaKey(r), 'epoch', own.epoch);
    const actor = new ActorSystem(own.redis, { windows: [], boundedK: 3, dedupHorizonMs: 3_600_000, mode: 'bounded' }).actor(r);
    const posts = (list: string[], from: number) => list.map((p, i) => ev(from + i, p, r, T0, `${r}-${from + i}`));
    await actor.apply(0, posts(['a', 'a', 'a', 'a', 'a', 'b', 'b', 'b', 'c'], 0), own.epoch);
    // One flush: a is kept (6); d replaces the lowest, c (1 + 1 = 2); e then replaces d, now the lowest (2 + 1 = 3).
    await actor.apply(0, posts(['a', 'd', 'e'], 9), own.epoch);
    expect(await own.redis.zrevrange(regionTopKey(r), 0, -1, 'WITHSCORES')).to.deep.equal(['a', '6', 'e', '3', 'b', '3']);
    expect(await own.redis.hgetall(`${regionPrefix(r)}dirty:all`)).to.deep.equal({ a: '6', b: '3', c: '-1', d: '-1', e: '3' });
    // The same evictions one flush each, for comparison: f replaces b (the lowest of the tied 3s by post_id: 3 + 1), then g replaces e (3 + 1).
    await actor.apply(0, posts(['f'], 12), own.epoch);
    await actor.apply(0, posts(['g'], 13), own.epoch);
    expect(await own.redis.zrevrange(regionTopKey(r), 0, -1, 'WITHSCORES')).to.deep.equal(['a', '6', 'g', '4', 'f', '4']);
    expect(await own.redis.hgetall(`${regionPrefix(r)}dirty:all`)).to.deep.equal({ a: '6', b: '-1', c: '-1', d: '-1', e: '-1', f: '4', g: '4' });
  });
});

/**
 * Asserts a region's trailing key of `spec` at watermark `wm` equals a recount of `applied`
 * over the panes it must cover; returns that range.
 */
async function expectTrailingRecount(
  redis: Redis,
  region: string,
  spec: { name: string; sizeMs: number },
  applied: { ts: number; post: string }[],
  wm: number,
  what: string,
): Promise<{ lo: number; hi: number }> {
  const P = trailingPaneMs(spec.sizeMs);
  const hi = Math.floor(wm / P) * P - P; // the panes the watermark has passed
  const lo = hi - spec.sizeMs + P;
  const want: Record<string, number> = {};
  for (const e of applied) {
    const pane = Math.floor(e.ts / P) * P;
    if (pane >= lo && pane <= hi) want[e.post] = (want[e.post] ?? 0) + 1;
  }
  const flat = await redis.zrange(regionTrailingKey(region, spec.name), 0, -1, 'WITHSCORES');
  const got: Record<string, number> = {};
  for (let i = 0; i < flat.length; i += 2) got[flat[i]] = Number(flat[i + 1]);
  expect(got, what).to.deep.equal(want);
  return { lo, hi };
}

describe('trailing timeframes (pane add/subtract in Redis, real Redis)', () => {
  const specs = loadConfig({ HH_WINDOWS: '1m,1h' }).ingest.windows;
  const own = ownRegion('trail');
  const EPOCH = own.epoch;
  let redis: Redis;
  let r: string;
  before(() => ({ redis, region: r } = own));

  // 1m,1h: 1h's panes (1 minute) are summed from 1m's (1 second); 1m,5m,1h: 5m's (5 seconds) from 1m's, 1h's from 5m's.
  for (const [windowsSpec, budget] of [
    ['1m,1h', undefined],
    ['1m,1h', 5],
    ['1m,5m,1h', undefined],
    ['1m,5m,1h', 5],
  ] as const)
    it(`equals a recount of the events in the last size of panes before the watermark's pane, after every watermark step (${windowsSpec}; ${budget ? `${budget} members per call` : 'moves in one call'})`, async () => {
      const specs = loadConfig({ HH_WINDOWS: windowsSpec }).ingest.windows;
      const rnd = prng(11);
      const r = `${own.region}-b${budget ?? 0}-${specs.length}`;
      await redis.hset(regionMetaKey(r), 'epoch', EPOCH);
      const actor = new ActorSystem(redis, { windows: specs, boundedK: 10, dedupHorizonMs: 48 * 3_600_000 }).actor(r);
      const applied: { ts: number; post: string }[] = [];
      let wm = Date.now() - 2 * 3_600_000;
      let offset = 0;
      for (let step = 0; step < 150; step++) {
        // Events around the watermark: most recent, some late (up to 70 min behind), some ahead.
        const batch: OffsetEvent[] = [];
        const n = Math.floor(rnd() * 40);
        for (let i = 0; i < n; i++) {
          const late = rnd() < 0.2 ? rnd() * 70 * 60_000 : rnd() * 90_000;
          const ts = Math.floor(wm - late + rnd() * 8_000);
          const post = `p${Math.floor(rnd() * rnd() * 30)}`;
          batch.push(ev(offset, post, r, ts, `t${offset}`));
          applied.push({ ts, post });
          offset++;
        }
        if (batch.length) await actor.apply(0, batch, EPOCH);
        // Steps from a second to ten minutes, sometimes a jump past a whole hour.
        wm += rnd() < 0.03 ? 3_700_000 : Math.floor(1000 + rnd() * (rnd() < 0.5 ? 20_000 : 600_000));
        await advanceTrailing(redis, r, specs, wm, { budget });
        for (const spec of specs) {
          const { lo, hi } = await expectTrailingRecount(redis, r, spec, applied, wm, `step ${step}, ${spec.name}`);
          expect(await redis.hget(regionTrailingStateKey(r), spec.name)).to.equal(`${lo}:${hi}`);
        }
      }
    });

  it('moves panes of thousands of posts exactly, in and out, in steps of a bounded number of members', async () => {
    const spec = specs[0]; // 1m: panes of trailingPaneMs(1m)
    const P = trailingPaneMs(spec.sizeMs);
    const region = `${r}-big`;
    await redis.hset(regionMetaKey(region), 'epoch', EPOCH);
    const actor = new ActorSystem(redis, { windows: [spec], boundedK: 10, dedupHorizonMs: 48 * 3_600_000 }).actor(region);
    const base = Math.floor((Date.now() - 3_600_000) / P) * P;
    // Three consecutive panes: 2,500 posts, 1,500 of the same posts, 1,200 others; counts 1–3.
    const applied: { ts: number; post: string }[] = [];
    const batch: OffsetEvent[] = [];
    const add = (pane: number, post: string, n: number) => {
      for (let i = 0; i < n; i++) {
        const ts = base + pane * P + ((batch.length * 7) % P);
        batch.push(ev(batch.length, post, region, ts, `big${batch.length}`));
        applied.push({ ts, post });
      }
    };
    for (let i = 0; i < 2500; i++) add(0, `a${i}`, 1 + (i % 3));
    for (let i = 0; i < 1500; i++) add(1, `a${i}`, 1 + (i % 2));
    for (let i = 0; i < 1200; i++) add(2, `b${i}`, 1);
    for (let i = 0; i < batch.length; i += 5000) await actor.apply(0, batch.slice(i, i + 5000), EPOCH);
    // The watermark passes pane 0, then 1, then 2, then leaves them all behind, one pane a step.
    const steps = spec.sizeMs / P + 4;
    for (let step = 1; step <= steps; step++) {
      const wm = base + (step + 1) * P;
      let calls = 0;
      await advanceTrailing(redis, region, [spec], wm, { budget: 300, onStep: async () => void calls++ });
      if (step <= 3) expect(calls, `step ${step}: a pane of >1,000 posts is folded over several calls`).to.be.greaterThan(4);
      await expectTrailingRecount(redis, region, spec, applied, wm, `step ${step}`);
      expect(await redis.pttl(regionTrailingKey(region, spec.name)), 'a trailing key never expires').to.be.at.most(-1);
    }
  });

  /**
   * A region with `n` posts in each of panes 0..2 of `spec` (1m), counts 1-3, moved twice
   * (the spare then lags the live key by one move: pane 0 against panes 0-1); returns its
   * events and first pane.
   */
  async function threePanes(region: string, n: number) {
    const spec = specs[0];
    const P = trailingPaneMs(spec.sizeMs);
    await redis.hset(regionMetaKey(region), 'epoch', EPOCH);
    const system = new ActorSystem(redis, { windows: [spec], boundedK: 10, dedupHorizonMs: 48 * 3_600_000 });
    const actor = system.actor(region);
    const base = Math.floor((Date.now() - 3_600_000) / P) * P;
    const applied: { ts: number; post: string }[] = [];
    const batch: OffsetEvent[] = [];
    for (let pane = 0; pane < 3; pane++)
      for (let i = 0; i < n; i++)
        for (let c = 0; c <= (i + pane) % 3; c++) {
          const ts = base + pane * P + ((batch.length * 13) % P);
          batch.push(ev(batch.length, `q${(i * 7 + pane) % (2 * n)}`, region, ts, `${region}-${batch.length}`));
          applied.push({ ts, post: batch[batch.length - 1].event.post_id });
        }
    for (let i = 0; i < batch.length; i += 5000) await actor.apply(0, batch.slice(i, i + 5000), EPOCH);
    await advanceTrailing(redis, region, [spec], base + P);
    await advanceTrailing(redis, region, [spec], base + 2 * P);
    return { spec, P, actor, base, applied, next: batch.length };
  }

  it('readers see the old range until the whole move is done, never a half-folded key', async () => {
    const region = `${r}-swap`;
    const { spec, P, base, applied } = await threePanes(region, 800);
    const before = await redis.zrange(regionTrailingKey(region, spec.name), 0, -1, 'WITHSCORES');
    let calls = 0;
    const changed = await advanceTrailing(redis, region, [spec], base + 3 * P, {
      budget: 200,
      onStep: async () => {
        calls++;
        expect(await redis.zrange(regionTrailingKey(region, spec.name), 0, -1, 'WITHSCORES'), `between calls (${calls})`).to.deep.equal(before);
      },
    });
    expect(changed).to.deep.equal([spec.name]);
    expect(calls).to.be.greaterThan(4);
    await expectTrailingRecount(redis, region, spec, applied, base + 3 * P, 'after the swap');
  });

  it('a flush into a pane a move is folding cancels the move; the next move rebuilds the spare exactly', async () => {
    const region = `${r}-cancel`;
    const { spec, P, actor, base, applied, next } = await threePanes(region, 600);
    // Not serialized with the actor (as another process during a rebalance): a late event
    // into pane 2, which the next move folds in, lands between two of its calls.
    let calls = 0;
    const late = ev(next, 'q-late', region, base + 2 * P + 5, `${region}-late`);
    const changed = await advanceTrailing(redis, region, [spec], base + 3 * P, {
      budget: 200,
      onStep: async () => {
        if (++calls === 2) await actor.apply(0, [late], EPOCH);
      },
    });
    applied.push({ ts: late.event.timestamp, post: 'q-late' });
    expect(changed, 'cancelled').to.deep.equal([]);
    await expectTrailingRecount(redis, region, spec, applied, base + 2 * P, 'the live key kept its range');
    expect(await advanceTrailing(redis, region, [spec], base + 3 * P, { budget: 200 })).to.deep.equal([spec.name]);
    await expectTrailingRecount(redis, region, spec, applied, base + 3 * P, 'moved on the second try');
    expect(await advanceTrailing(redis, region, [spec], base + 4 * P, { budget: 200 })).to.deep.equal([spec.name]);
    await expectTrailingRecount(redis, region, spec, applied, base + 4 * P, 'and the move after it');
  });

  it('killed (kill -9) at a random moment of a stepped move: the live key holds one whole range, and the next move is exact', async function () {
    this.timeout(180_000);
    const BUDGET = 20;
    // How long such a move takes here: the kill lands anywhere within it.
    const probe = await threePanes(`${r}-killprobe`, 4000);
    const t0 = Date.now();
    await advanceTrailing(redis, `${r}-killprobe`, [probe.spec], probe.base + 3 * probe.P, { budget: BUDGET });
    const took = Date.now() - t0;
    const db = (redis.options.db ?? 0).toString();
    const outcomes: string[] = [];
    for (let round = 0; round < 5; round++) {
      const region = `${r}-kill${round}`;
      const { spec, P, base, applied } = await threePanes(region, 4000);
      const delay = Math.floor(Math.random() * took * 1.5); // a child's first calls also load the script
      const out = await killAfterStarted('trailing-child.ts', [db, region, String(base + 3 * P), String(BUDGET)], delay);
      // Whatever the moment: readers see the range before the move or the one after it, whole.
      const range = await redis.hget(regionTrailingStateKey(region), spec.name);
      const wm = range === `${base - 57 * P}:${base + 2 * P}` ? base + 3 * P : base + 2 * P;
      await expectTrailingRecount(redis, region, spec, applied, wm, `round ${round}: the live key after the kill`);
      outcomes.push(`${delay} ms → ${out.includes('done') ? 'finished' : wm === base + 3 * P ? 'swapped' : 'not swapped'}`);
      // The operator's restart: the next moves complete it, exactly.
      await advanceTrailing(redis, region, [spec], base + 3 * P, { budget: BUDGET });
      await expectTrailingRecount(redis, region, spec, applied, base + 3 * P, `round ${round}: the move after the restart`);
      await advanceTrailing(redis, region, [spec], base + 4 * P, { budget: BUDGET });
      await expectTrailingRecount(redis, region, spec, applied, base + 4 * P, `round ${round}: and the one after it (the spare)`);
    }
    console.log(`      a stepped move of 2 x 4,000-post panes, ${BUDGET} members per call: ${took} ms; kill -9 after ${outcomes.join('; ')}`);
  });

  /**
   * Roll-ups (1m,1h: 1h's panes, one minute, are summed from 1m's, one second): a region with
   * `n` posts spread over the 60 one-second panes of one minute, counts 1-3; returns its events.
   */
  async function oneMinute(region: string, n: number) {
    const specs = loadConfig({ HH_WINDOWS: '1m,1h' }).ingest.windows;
    await redis.hset(regionMetaKey(region), 'epoch', EPOCH);
    const actor = new ActorSystem(redis, { windows: specs, boundedK: 10, dedupHorizonMs: 48 * 3_600_000 }).actor(region);
    const M = 60_000;
    const base = Math.floor((Date.now() - 3_600_000) / M) * M;
    const applied: { ts: number; post: string }[] = [];
    const batch: OffsetEvent[] = [];
    for (let i = 0; i < n; i++)
      for (let c = 0; c <= i % 3; c++) {
        const ts = base + ((i * 7 + c) % 60) * 1000 + c;
        batch.push(ev(batch.length, `m${i}`, region, ts, `${region}-${batch.length}`));
        applied.push({ ts, post: `m${i}` });
      }
    for (let i = 0; i < batch.length; i += 5000) await actor.apply(0, batch.slice(i, i + 5000), EPOCH);
    const recount = (from: number, to: number) => {
      const want: Record<string, string> = {};
      for (const a of applied) if (a.ts >= from && a.ts < to) want[a.post] = String(Number(want[a.post] ?? 0) + 1);
      return want;
    };
    const paneOf = async (start: number) => Object.fromEntries(chunk(await redis.zrange(regionPaneKey(region, '1h', start), 0, -1, 'WITHSCORES')));
    return { specs, actor, M, base, applied, next: batch.length, recount, paneOf };
  }

  it("sums a coarser spec's pane from its source's panes once the watermark passes it, in steps of a bounded number of members; a flush into the pane being summed starts it again, exactly", async () => {
    const region = `${r}-roll`;
    const { specs, actor, M, base, applied, next, recount, paneOf } = await oneMinute(region, 1500);
    expect(await redis.exists(regionPaneKey(region, '1h', base)), 'not written by the flushes').to.equal(0);
    // Not serialized with the actor (as another process during a rebalance): a late event into the
    // minute's first second, which the roll has already summed, lands between two of its calls.
    const late = ev(next, 'm-late', region, base + 500, `${region}-late`);
    let calls = 0;
    await advanceTrailing(redis, region, specs, base + M, {
      budget: 200,
      onStep: async () => {
        if (++calls === 4) await actor.apply(0, [late], EPOCH);
      },
    });
    applied.push({ ts: late.event.timestamp, post: 'm-late' });
    expect(calls, 'a pane of 1,500 posts is summed over several calls').to.be.greaterThan(10);
    expect(await paneOf(base), 'the pane holds its minute, the late event once').to.deep.equal(recount(base, base + M));
    expect(await redis.hget(regionTrailingStateKey(region), '1h:rolled')).to.equal(String(base + M));
    for (const spec of specs) await expectTrailingRecount(redis, region, spec, applied, base + M, `${spec.name} after the roll`);
    // A late event into a pane already summed is written into it (and its source) by the flush.
    const later = ev(next + 1, 'm-later', region, base + 1_500, `${region}-later`);
    await actor.apply(0, [later], EPOCH);
    applied.push({ ts: later.event.timestamp, post: 'm-later' });
    expect(await paneOf(base), 'a late event after the roll').to.deep.equal(recount(base, base + M));
    await advanceTrailing(redis, region, specs, base + 2 * M, { budget: 200 });
    for (const spec of specs) await expectTrailingRecount(redis, region, spec, applied, base + 2 * M, `${spec.name} a minute on`);
  });

  it('a spec whose panes flushes wrote before roll-ups existed (a range, no roll mark) is summed only from past any pane an accepted event can reach', async () => {
    const region = `${r}-rollinit`;
    const { specs, actor, M, base, applied, next } = await oneMinute(region, 50);
    await advanceTrailing(redis, region, specs, base + M);
    // As the state of a region from before roll-ups: 1h's range, no mark; its panes were written by every flush.
    await redis.hdel(regionTrailingStateKey(region), '1h:rolled');
    const e = ev(next, 'm-next', region, base + M + 5_000, `${region}-next`);
    await actor.apply(0, [e], EPOCH);
    applied.push({ ts: e.event.timestamp, post: 'm-next' });
    const rolled = Number(await redis.hget(regionTrailingStateKey(region), '1h:rolled'));
    expect(rolled, 'past the clock plus the 5 minutes an event may be ahead').to.be.greaterThan(Date.now() + 300_000);
    expect(await redis.zscore(regionPaneKey(region, '1h', base + M), 'm-next'), 'written by the flush').to.equal('1');
    await advanceTrailing(redis, region, specs, base + 2 * M);
    for (const spec of specs) await expectTrailingRecount(redis, region, spec, applied, base + 2 * M, spec.name);
  });

  it('killed (kill -9) at a random moment of a stepped roll-up: the next advance is exact', async function () {
    this.timeout(180_000);
    const BUDGET = 20;
    const probe = await oneMinute(`${r}-rollprobe`, 1500);
    const t0 = Date.now();
    await advanceTrailing(redis, `${r}-rollprobe`, probe.specs, probe.base + probe.M, { budget: BUDGET });
    const took = Date.now() - t0;
    const db = (redis.options.db ?? 0).toString();
    const outcomes: string[] = [];
    for (let round = 0; round < 4; round++) {
      const region = `${r}-rollkill${round}`;
      const { specs, M, base, applied, recount, paneOf } = await oneMinute(region, 1500);
      const delay = Math.floor(Math.random() * took * 1.5);
      const out = await killAfterStarted('trailing-child.ts', [db, region, String(base + M), String(BUDGET), '1m,1h'], delay);
      const [rolled, cursor] = await redis.hmget(regionTrailingStateKey(region), '1h:rolled', '1h:roll');
      const when = rolled === String(base + M) ? 'after the roll' : cursor ? `mid-roll (at ${cursor})` : 'before the roll';
      outcomes.push(`${delay} ms → ${out.includes('done') ? 'finished' : when}`);
      // The operator's restart: the next advance completes it, exactly.
      await advanceTrailing(redis, region, specs, base + M, { budget: BUDGET });
      expect(await paneOf(base), `round ${round}: the summed pane`).to.deep.equal(recount(base, base + M));
      for (const spec of specs) await expectTrailingRecount(redis, region, spec, applied, base + M, `round ${round}: ${spec.name}`);
      await advanceTrailing(redis, region, specs, base + 2 * M, { budget: BUDGET });
      for (const spec of specs) await expectTrailingRecount(redis, region, spec, applied, base + 2 * M, `round ${round}: ${spec.name}, a minute on`);
    }
    console.log(`      a stepped roll-up of a 1,500-post minute, ${BUDGET} members per call: ${took} ms; kill -9 after ${outcomes.join('; ')}`);
  });

  it("serialized with the region's actor, a flush waits for the move (which is then not cancelled)", async () => {
    const region = `${r}-serial`;
    const { spec, P, actor, base, applied, next } = await threePanes(region, 600);
    let calls = 0;
    let flushed: Promise<unknown> | undefined;
    let flushedDuringMove = false;
    const late = ev(next, 'q-late', region, base + 2 * P + 5, `${region}-late`);
    const changed = await advanceTrailing(redis, region, [spec], base + 3 * P, {
      budget: 200,
      serialize: (fn) => actor.exclusive(fn),
      onStep: async () => {
        if (++calls === 2) flushed = actor.apply(0, [late], EPOCH).then(() => undefined);
        else if (calls > 2) flushedDuringMove ||= (await redis.zscore(regionTopKey(region), 'q-late')) !== null;
      },
    });
    expect(changed).to.deep.equal([spec.name]);
    expect(flushedDuringMove, 'the flush ran during the move').to.equal(false);
    await flushed;
    applied.push({ ts: late.event.timestamp, post: 'q-late' });
    await expectTrailingRecount(redis, region, spec, applied, base + 3 * P, 'the late event counted once');
    await advanceTrailing(redis, region, [spec], base + 4 * P, { serialize: (fn) => actor.exclusive(fn) });
    await expectTrailingRecount(redis, region, spec, applied, base + 4 * P, 'and in the spare too');
  });
});

describe('session windows (bucket runs sealed in Redis, real Redis)', () => {
  const spec = loadConfig({ HH_WINDOWS: '1m,gap30s/5s/1h' }).ingest.sessions[0];
  const own = ownRegion('sess');
  const EPOCH = own.epoch;
  let redis: Redis;
  let r: string;
  before(() => ({ redis, region: r } = own));

  /** Sessions by definition: runs of non-empty buckets, each starting less than a gap after the previous one ended. */
  function sessionsOf(events: { ts: number; post: string }[]) {
    const B = spec.bucketMs;
    const buckets = [...new Set(events.map((e) => Math.floor(e.ts / B) * B))].sort((a, b) => a - b);
    const runs: { start: number; end: number; counts: Record<string, number> }[] = [];
    for (const b of buckets) {
      const cur = runs[runs.length - 1];
      if (cur && b - cur.end < spec.gapMs) cur.end = b + B;
      else runs.push({ start: b, end: b + B, counts: {} });
    }
    for (const e of events) {
      const run = runs.find((x) => e.ts >= x.start && e.ts < x.end)!;
      run.counts[e.post] = (run.counts[e.post] ?? 0) + 1;
    }
    return runs;
  }

  it('seals exactly the sessions a gap plus the lateness behind the watermark; refuses writes into sealed sessions', async () => {
    expect(spec).to.include({ gapMs: 30_000, bucketMs: 1000, latenessMs: 5000 });
    const rnd = prng(5);
    const actor = new ActorSystem(redis, { windows: [], sessions: [spec], boundedK: 10, dedupHorizonMs: 48 * 3_600_000 }).actor(r);
    const t0 = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;
    const events: { ts: number; post: string }[] = [];
    let ts = t0;
    const batch: OffsetEvent[] = [];
    for (let i = 0; i < 3000; i++) {
      ts += rnd() < 0.02 ? 20_000 + Math.floor(rnd() * 40_000) : Math.floor(rnd() * 2000); // bursts and gaps around the 30 s gap
      const post = `p${Math.floor(rnd() * rnd() * 20)}`;
      events.push({ ts, post });
      batch.push(ev(i, post, r, ts, `s${i}`));
    }
    // Out of order within the batch: the order events arrive in does not matter.
    batch.sort(() => rnd() - 0.5);
    await actor.apply(0, batch, EPOCH);
    const truth = sessionsOf(events);
    expect(truth.length).to.be.greaterThan(10);

    const mid = truth[Math.floor(truth.length / 2)];
    const wm = mid.end + spec.gapMs + spec.latenessMs; // mid is the last session sealed at this watermark
    const sealed = await sealSessions(redis, r, spec, wm, -1);
    const expected = truth.filter((s) => s.end + spec.gapMs + spec.latenessMs <= wm);
    expect(sealed.map((s) => [s.start, s.end])).to.deep.equal(expected.map((s) => [s.start, s.end]));
    for (const s of expected) {
      const flat = await redis.zrange(regionWindowKey(r, `${spec.name}:${s.start}`), 0, -1, 'WITHSCORES');
      const got: Record<string, number> = {};
      for (let i = 0; i < flat.length; i += 2) got[flat[i]] = Number(flat[i + 1]);
      expect(got, `session ${s.start}`).to.deep.equal(s.counts);
    }
    // A caller that lost the answer asks again (same `after`): the same sessions; once it took them: none.
    expect(await sealSessions(redis, r, spec, wm, -1)).to.deep.equal(sealed);
    expect(await sealSessions(redis, r, spec, wm, mid.start)).to.deep.equal([]);

    // A write into a sealed session (its gap) is refused; after the mark it is a new session.
    const res = await actor.apply(
      0,
      [ev(10_000, 'late', r, mid.end + spec.gapMs - 1000, 'late-1'), ev(10_001, 'new', r, mid.end + spec.gapMs, 'new-1')],
      EPOCH,
    );
    expect(res.sessionRefused).to.equal(1);
    const rest = await sealSessions(redis, r, spec, Number.MAX_SAFE_INTEGER / 2, mid.start);
    expect(rest[0].start).to.equal(mid.end + spec.gapMs);
  });
});

describe('flush bounds, dedup horizon and backpressure (real Redis)', () => {
  const own = ownRegion('bounds');
  /** How many observations a histogram holds. */
  const observed = async (h: Histogram) => (await h.get()).values.find((v) => v.metricName?.endsWith('_count'))!.value;

  it('splits a batch of 5,000 new posts into flushes of at most 2,000 posts, applied in order and exactly', async () => {
    const metrics = createMetrics();
    // The fixed limits alone (no time budget).
    const actor = new ActorSystem(own.redis, { windows, boundedK: 10, dedupHorizonMs: 600_000, flushTargetMs: 0 }, metrics).actor(own.region);
    const batch = Array.from({ length: 5_000 }, (_, i) => ev(1_000 + i, `n${i}`, own.region, T0, `n${i}`));
    expect(await actor.apply(1, batch, own.epoch)).to.include({ applied: 5_000, fence: '5999' });
    const flushes = await observed(metrics.flushSeconds);
    expect(flushes).to.equal(Math.ceil(5_000 / FLUSH_LIMITS.maxPosts));
    expect(await own.redis.zcard(regionTopKey(own.region))).to.be.at.least(5_000);
    expect(await own.redis.hget(regionOffsetsKey(own.region), '1')).to.equal('5999');
  });

  it('sizes flushes to the time budget: a burst of new posts goes in many short script calls, exactly and in order', async () => {
    const metrics = createMetrics();
    // A 1 ms budget: the first flush takes ~40 posts (the starting estimates), the next ones what
    // the script's own clock says fits; even a script taking no time at all grows them by a
    // quarter per flush, so 2,500 posts need far more than the fixed limits' three flushes.
    const system = new ActorSystem(own.redis, { windows, boundedK: 10, dedupHorizonMs: 600_000, flushTargetMs: 1 }, metrics);
    const actor = system.actor(own.region);
    const batch = Array.from({ length: 5_000 }, (_, i) => ev(20_000 + i, `b${i % 2_500}`, own.region, T0, `b${i}`));
    expect(await actor.apply(9, batch, own.epoch)).to.include({ applied: 5_000, fence: '24999' });
    const scripts = await observed(metrics.flushScriptSeconds);
    const flushes = await observed(metrics.flushSeconds);
    expect(scripts).to.equal(flushes); // each flush's script reported its running time
    expect(flushes).to.be.at.least(10);
    expect(actor.budget.expected(FLUSH_LIMITS.maxEvents, FLUSH_LIMITS.maxPosts)).to.be.above(actor.budget.limitUs);
    // The process's other actors start from what this one learned.
    expect(system.actor(`${own.region}-other`).budget).to.equal(actor.budget);
    for (const post of ['b0', 'b1234', 'b2499']) expect(await own.redis.zscore(regionTopKey(own.region), post)).to.equal('2');
    expect(await own.redis.zcard(regionTopKey(own.region))).to.be.at.least(2_500);
    expect(await own.redis.hget(regionOffsetsKey(own.region), '9')).to.equal('24999');
  });

  it('remembers event ids for at least the dedup horizon (processing time); a re-send after twice the horizon counts again', async () => {
    const actor = new ActorSystem(own.redis, { windows, boundedK: 10, dedupHorizonMs: 300 }).actor(own.region);
    expect(await actor.apply(2, [ev(1, 'h', own.region, T0, 'h1')], own.epoch)).to.include({ applied: 1 });
    expect(await actor.apply(2, [ev(2, 'h', own.region, T0, 'h1')], own.epoch)).to.include({ applied: 0, duplicates: 1 });
    await new Promise((r) => setTimeout(r, 700)); // two generations later: forgotten
    expect(await actor.apply(2, [ev(3, 'h', own.region, T0, 'h1')], own.epoch)).to.include({ applied: 1 });
    expect(await own.redis.zscore(regionTopKey(own.region), 'h')).to.equal('2');
  });

  it('keeps remembered ids within one horizon and a slice (slices evicted as time passes), never forgetting one younger than the horizon', async () => {
    const H = 400;
    const slices = 4;
    const L = H / slices;
    const actor = new ActorSystem(own.redis, { windows: [], boundedK: 10, dedupHorizonMs: H, dedupSlices: slices }).actor(own.region);
    const seenKey = regionSeenKey(own.region);
    const batches: { ids: string[]; before: number; after: number }[] = [];
    let n = 0;
    let evictedSome = false;
    for (let b = 0; b < 60; b++) {
      const ids = Array.from({ length: 50 }, () => `s${n++}`);
      const before = Date.now();
      const res = await actor.apply(
        3,
        ids.map((id, j) => ev(b * 50 + j, `p${j % 7}`, own.region, T0, id)),
        own.epoch,
      );
      const after = Date.now();
      expect(res.applied).to.equal(50);
      batches.push({ ids, before, after });
      const checkAt = Date.now();
      const all = batches.flatMap((x) => x.ids);
      const member = await own.redis.smismember(seenKey, ...all);
      const isMember = new Map(all.map((id, i) => [id, member[i] === 1]));
      for (const x of batches) {
        // Applied within the horizon: still remembered.
        if (x.before >= checkAt - H) for (const id of x.ids) expect(isMember.get(id), `${id} forgotten too early`).to.equal(true);
        // Applied more than a horizon and a slice before this flush: evicted.
        if (x.after <= before - H - L) {
          for (const id of x.ids) expect(isMember.get(id), `${id} kept too long`).to.equal(false);
          evictedSome = true;
        }
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(evictedSome).to.equal(true);
    // What is left: at most a horizon and two slices of batches (the lists hold the same ids).
    const kept = await own.redis.scard(seenKey);
    expect(kept).to.be.at.most(batches.filter((x) => x.after > batches[batches.length - 1].before - H - 2 * L).length * 50);
  });

  it('waits for a checkpoint while too many entries wait for one (backpressure), then goes on exactly', async () => {
    const metrics = createMetrics();
    const actor = new ActorSystem(own.redis, { windows: [], boundedK: 10, dedupHorizonMs: 600_000, maxWaitingEntries: 100 }, metrics).actor(own.region);
    const cassandra = { execute: sinon.stub().resolves({ rows: [] }), batch: sinon.stub().resolves() };
    const record = new RegionRecord(own.redis, cassandra as unknown as Client, { keyspace: 'ks', windows: [], boundedK: 10 });
    const batches = [0, 1, 2].map((b) => Array.from({ length: 150 }, (_, i) => ev(10_000 + b * 150 + i, `bp${b}_${i}`, own.region, T0, `bp${b}_${i}`)));
    const applying = Promise.all(batches.map((b) => actor.apply(3, b, own.epoch)));
    // A checkpointer, as the runtime runs one: the waiting entries go to the record.
    let done = false;
    const checkpointer = (async () => {
      while (!done) {
        await record.checkpoint(own.region);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const results = await applying;
    done = true;
    await checkpointer;
    expect(results.map((r) => r.applied)).to.deep.equal([150, 150, 150]);
    expect((await metrics.backpressureSeconds.get()).values[0].value).to.be.greaterThan(0);
    expect(cassandra.batch.callCount).to.be.at.least(1);
  });
});
