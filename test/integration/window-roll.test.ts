/**
 * Roll-ups of the coarser tumbling windows (store/window-roll.ts) on real Redis and Cassandra:
 * flushes write the minutes (and what is too late for a minute straight into its parents), a
 * FINAL minute is rolled page by page into its 5m and 1h windows, and every read of a parent
 * (its sum, its snapshots, the global merge, a rebuild from the record mid-roll) equals a
 * count of the events made independently here.
 */
import { expect } from 'chai';
import type { Redis } from 'ioredis';
import { ActorSystem, type OffsetEvent } from '../../src/actors/region-actor';
import { migrate } from '../../src/bootstrap/cassandra';
import { cassandraClient, opsRedis } from '../../src/clients';
import { loadConfig } from '../../src/config';
import { EPOCH_KEY, globalTopKey, lateMaskBit, regionMetaKey, regionUnrolledKey, regionWindowKey, windowId } from '../../src/keys';
import { mergeChanged } from '../../src/store/global-merge';
import { windowActivities } from '../../src/activities/windows';
import { RegionRecord } from '../../src/store/record';
import { ensureEpoch } from '../../src/store/rebuild';
import { rollChildren, rollPlan } from '../../src/store/window-roll';
import { windowStore } from '../../src/store/window-snapshots';
import { windowTopK } from '../../src/store/window-sources';
import { prng } from '../../src/load/generator';
import { cfg, unique } from '../helpers';
import { freeRedisDb } from '../support/redis';
import { killAfterStarted } from '../support/kill-child';

const windows = loadConfig({ HH_WINDOWS: '1m/10s/1h,5m/30s/2h,1h/5m/1d' }).ingest.windows;
const plan = rollPlan(windows)!;
const M = 60_000;
// The 5m window 20 minutes back (its minutes and hour keys live well past the test).
const T = Math.floor(Date.now() / (5 * M)) * 5 * M - 20 * M;
const HOUR = Math.floor(T / 3_600_000) * 3_600_000;

type Counts = Record<string, number>;
const add = (c: Counts, post: string, n = 1) => (c[post] = (c[post] ?? 0) + n);
const asCounts = (top: { post_id: string; view_count: number }[]) => Object.fromEntries(top.map((e) => [e.post_id, e.view_count]));
const zcounts = async (redis: Redis, key: string) => {
  const flat = await redis.zrange(key, 0, -1, 'WITHSCORES');
  const out: Counts = {};
  for (let i = 0; i < flat.length; i += 2) out[flat[i]] = Number(flat[i + 1]);
  return out;
};

describe('roll-ups of the coarser windows from the finest (real Redis and Cassandra)', function () {
  this.timeout(120_000);
  const keyspace = unique('hh_roll').toLowerCase();
  const cassandra = cassandraClient(cfg, 'admin');
  const EPOCH = 'e0';
  let redis: Redis;

  before(async () => {
    redis = opsRedis(cfg, await freeRedisDb());
    await migrate(cfg, keyspace);
  });
  after(async () => {
    await redis.flushdb();
    redis.disconnect();
    await cassandra.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await cassandra.shutdown();
  });

  /** A region's events over the 5m window's minutes: `perMinute` events of 60 Zipf-ish posts each, plus the truths. */
  const stream = (region: string, seed: number, perMinute: number) => {
    const rnd = prng(seed);
    const minutes: OffsetEvent[][] = [];
    let offset = 0;
    for (let m = 0; m < 5; m++) {
      const list: OffsetEvent[] = [];
      for (let i = 0; i < perMinute; i++) {
        const post = `p${Math.floor(60 * rnd() ** 2)}`;
        list.push({
          offset: String(offset++),
          event: { event_id: `${region}-${m}-${i}`, post_id: post, region_id: region, timestamp: T + m * M + Math.floor(rnd() * M) },
        });
      }
      minutes.push(list);
    }
    return minutes;
  };

  it('a parent reads as its key plus its children not yet rolled, exactly, at every page of a roll, through its snapshots, the merge and a rebuild mid-roll', async () => {
    const regions = [unique('RA'), unique('RB')];
    await redis.set(EPOCH_KEY, EPOCH);
    const actors = new ActorSystem(redis, { windows, boundedK: 10, dedupHorizonMs: 3_600_000 });
    const store = windowStore(redis, cassandra, keyspace, plan);
    const record = new RegionRecord(redis, cassandra, { keyspace, windows, boundedK: 10, mode: 'exact' });
    const five = windowId('5m', T);
    const hour = windowId('1h', HOUR);
    const truth: Record<string, Counts> = {};
    const minuteTruth: Record<string, Counts[]> = {};
    const global: Counts = {};

    const expectExact = async (region: string, why: string) => {
      const sum5 = await windowTopK(redis, region, five, plan, 1000);
      expect(asCounts(sum5!.top), `${region} 5m ${why}`).to.deep.equal(truth[region]);
      const sumH = await windowTopK(redis, region, hour, plan, 1000);
      expect(asCounts(sumH!.top), `${region} 1h ${why}`).to.deep.equal(truth[region]);
    };

    for (const [r, region] of regions.entries()) {
      await redis.hset(regionMetaKey(region), 'epoch', EPOCH);
      truth[region] = {};
      minuteTruth[region] = [];
      const minutes = stream(region, r + 1, 400);
      let offset = 10_000;
      for (const [m, list] of minutes.entries()) {
        await actors.actor(region).apply(0, list, EPOCH);
        minuteTruth[region][m] = {};
        for (const e of list) {
          add(truth[region], e.event.post_id);
          add(minuteTruth[region][m], e.event.post_id);
          add(global, e.event.post_id);
        }
        await expectExact(region, `after minute ${m}`);
        if (m < 3) {
          // Minute m turns FINAL: rolled in at its FINAL persist.
          await store.persistWindow(region, '1m', T + m * M, undefined, true);
          await expectExact(region, `after minute ${m} was rolled`);
          // An event of that minute after it: straight into its parents; one too late for its
          // minute (triage's late mask), also into its parents.
          const late = (post: string, lateMask = 0): OffsetEvent => ({
            offset: String(offset++),
            event: { event_id: `${region}-late-${offset}`, post_id: post, region_id: region, timestamp: T + m * M + 5 },
            lateMask,
          });
          await actors.actor(region).apply(1, [late('p1'), late('q-late', lateMaskBit(0))], EPOCH);
          add(truth[region], 'p1');
          add(truth[region], 'q-late');
          add(global, 'p1');
          add(global, 'q-late');
          expect(await zcounts(redis, regionWindowKey(region, windowId('1m', T + m * M))), 'a FINAL minute takes nothing').to.deep.equal(
            minuteTruth[region][m],
          );
          await expectExact(region, `after late events of minute ${m}`);
        }
      }
    }
    // Minute 3 turns FINAL; region A rolls it 7 members at a time, checked at every page.
    const [A, B] = regions;
    await redis.hset(`region:{${A}}:sealed`, 'final:1m', String(T + 3 * M));
    for (let pages = 0; ; pages++) {
      const r = await rollChildren(redis, A, plan, T + 3 * M, undefined, 7, 1);
      if (r.pages === 0) break;
      await expectExact(A, `after roll page ${pages}`);
      if (pages === 2) {
        // The record mid-roll: a checkpoint, then Redis loses the region; the rebuild restores
        // the counts and the roll's progress together.
        expect(await record.checkpoint(A)).to.be.a('number');
        await redis.del(EPOCH_KEY);
        for (const k of await redis.keys(`region:{${A}}:*`)) await redis.del(k);
        const epoch = await ensureEpoch(redis, record, () => undefined);
        await redis.hset(regionMetaKey(B), 'epoch', epoch); // B stood outside the record here
        await redis.hset(`region:{${A}}:sealed`, 'final:1m', String(T + 3 * M)); // marks are not in the record
        await expectExact(A, 'after the rebuild mid-roll');
        expect(await redis.zscore(regionUnrolledKey(A, '1m'), String(T + 3 * M)), 'the minute being rolled is rolled on').to.not.equal(null);
      }
      if (pages > 500) throw new Error('the roll does not end');
    }
    // The global merge of a rolled window: the regions' sums, summed.
    await redis.sadd('global:dirty', five);
    await mergeChanged(redis, 1000, Date.now(), undefined, plan);
    expect(await zcounts(redis, globalTopKey(five))).to.deep.equal(global);

    // The 5m window closes (minute 4 is not FINAL yet): its snapshot sums key and minute.
    for (const region of regions) {
      const closing = await store.persistWindow(region, '5m', T);
      expect(closing.events, `${region} closing snapshot`).to.equal(Object.values(truth[region]).reduce((a, n) => a + n, 0));
      expect(asCounts(await store.readWindow(region, five)), `${region} closing snapshot rows`).to.deep.equal(truth[region]);
      // FINAL: every minute made FINAL and rolled first; the key is then the whole count.
      await store.persistWindow(region, '5m', T, undefined, true);
      expect(await zcounts(redis, regionWindowKey(region, five)), `${region} 5m key at FINAL`).to.deep.equal(truth[region]);
      expect(asCounts(await store.readWindow(region, five)), `${region} FINAL snapshot rows`).to.deep.equal(truth[region]);
      expect(await redis.zcard(regionUnrolledKey(region, '1m')), `${region}: no minute left to roll`).to.equal(0);
      await expectExact(region, 'at the end');
      // A recompute of a window whose children are all rolled restores its key from the snapshot.
      await store.restoreWindow(region, hour, HOUR + 3_600_000 + 86_400_000);
    }
  });

  it('killed (kill -9) at a random moment of a roll, the parents read exactly; the next roll finishes exactly', async () => {
    const db = Number((redis.options as { db?: number }).db ?? 0);
    const HH_WINDOWS = '1m/10s/1h,5m/30s/2h,1h/5m/1d';
    let midRoll = 0;
    for (const delay of [0, 5, 15, 30, 60]) {
      const region = unique(`RK${delay}`);
      await redis.hset(regionMetaKey(region), 'epoch', EPOCH);
      const actors = new ActorSystem(redis, { windows, boundedK: 10, dedupHorizonMs: 3_600_000 });
      const minutes = stream(region, 20 + delay, 3000);
      const truth: Counts = {};
      for (const list of minutes.slice(0, 3)) {
        await actors.actor(region).apply(0, list, EPOCH);
        for (const e of list) add(truth, e.event.post_id);
      }
      await redis.hset(`region:{${region}}:sealed`, 'final:1m', String(T + 2 * M));
      const five = windowId('5m', T);
      // Pages of 3 members: the roll of three minutes is many script calls, killed somewhere among them.
      const out = await killAfterStarted('roll-child.ts', [String(db), region, String(T + 2 * M), '3', HH_WINDOWS], delay);
      const sum = async () => asCounts((await windowTopK(redis, region, five, plan, 1000))!.top);
      // Killed between pages: some rolled, some not.
      if (
        !out.includes('done') &&
        (await redis.hget(`region:{${region}}:sealed`, 'rolled:1m')) !== null &&
        (await redis.zcard(regionUnrolledKey(region, '1m'))) > 0
      )
        midRoll++;
      expect(await sum(), `after a kill ${delay} ms in (${out.trim().replace(/\n/g, ' ')})`).to.deep.equal(truth);
      await rollChildren(redis, region, plan, T + 2 * M);
      expect(await zcounts(redis, regionWindowKey(region, five)), 'the key alone, once the roll finished').to.deep.equal(truth);
      expect(await sum()).to.deep.equal(truth);
    }
    expect(midRoll, 'kills that landed mid-roll').to.be.greaterThan(0);
  });

  it('a window whose children are not all rolled refuses a recompute (its snapshot and its children would count twice)', async () => {
    const region = unique('RC');
    await redis.set(EPOCH_KEY, EPOCH);
    await redis.hset(regionMetaKey(region), 'epoch', EPOCH);
    const actors = new ActorSystem(redis, { windows, boundedK: 10, dedupHorizonMs: 3_600_000 });
    await actors.actor(region).apply(0, stream(region, 9, 20)[0], EPOCH);
    const store = windowStore(redis, cassandra, keyspace, plan);
    let err: Error | undefined;
    await store.restoreWindow(region, windowId('5m', T), T + 5 * M + 7_200_000).catch((e: Error) => (err = e));
    expect(err?.message).to.match(/still has 1 window\(s\) of 1m to roll in/);
    const { countedWindows } = windowActivities({ redis, roll: plan });
    expect(await countedWindows({ region, ids: [windowId('5m', T), windowId('5m', T + 5 * M)] }), 'a parent holding counts only in its children').to.deep.equal(
      [windowId('5m', T)],
    );
  });
});
