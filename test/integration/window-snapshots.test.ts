/**
 * Window snapshots on the real Redis and Cassandra: a large window is read in pages (no
 * whole-key ZRANGE), and a sliding window over large panes is summed in pages into a
 * private key that replaces the window's key in one step — exact against sums counted here,
 * and never seen half summed.
 */
import { rollPlan } from '../../src/store/window-roll';
import { windowTopK } from '../../src/store/window-sources';
import { expect } from 'chai';
import sinon from 'sinon';
import type { Redis } from 'ioredis';
import { cassandraClient, opsRedis } from '../../src/clients';
import {
  GLOBAL_DIRTY_KEY,
  globalMetaKey,
  globalTopKey,
  regionAssemblyKey,
  regionMetaKey,
  regionPrefix,
  regionSealedKey,
  regionTopKey,
  regionWindowKey,
  windowFinalField,
  windowId,
} from '../../src/keys';
import { ActorSystem } from '../../src/actors/region-actor';
import { mergeChanged } from '../../src/store/global-merge';
import { loadConfig, WINDOW_KEY_GRACE_MS } from '../../src/config';
import { freeRedisDb } from '../support/redis';
import { scripted } from '../../src/store/scripts';
import { SLIDING_STEP_MEMBERS, windowStore } from '../../src/store/window-snapshots';
import { byRank } from '../../src/ranking';
import { cfg, unique } from '../helpers';
import { killAfterStarted } from '../support/kill-child';
import { windowActivities } from '../../src/activities/windows';

describe('window snapshots in pages (real Redis and Cassandra)', function () {
  this.timeout(120_000);
  const cassandra = cassandraClient(cfg, 'admin');
  const table = `${cfg.cassandra.keyspace}.views_by_region_and_window`;
  const region = unique('ws');
  const SLIDE = 60_000;
  const START = 1_800_000_000_000;
  const id = windowId('5m@1m', START);
  let redis: Redis;
  const store = () => windowStore(redis, cassandra, cfg.cassandra.keyspace);

  /** Pane i holds posts p(i*step) .. p(i*step + n - 1), post p(j) counted j % 7 + i + 1 times; returns the expected sums. */
  async function panes(count: number, n: number, step: number): Promise<Map<string, number>> {
    const sums = new Map<string, number>();
    for (let i = 0; i < count; i++) {
      const key = regionWindowKey(region, windowId('1m', START + i * SLIDE));
      const args: (string | number)[] = [];
      for (let j = i * step; j < i * step + n; j++) {
        const c = (j % 7) + i + 1;
        args.push(c, `p${j}`);
        sums.set(`p${j}`, (sums.get(`p${j}`) ?? 0) + c);
      }
      for (let k = 0; k < args.length; k += 2000) await redis.zadd(key, ...args.slice(k, k + 2000));
    }
    return sums;
  }

  /** Calls of a Redis command so far, from the server's own counts (the scripts' calls included). */
  const calls = async (cmd: string): Promise<number> => Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(await redis.info('commandstats'))?.[1] ?? 0);

  /** A window's persisted snapshot, gone. */
  const deleteSnapshot = (r: string, spec: string, start: number) =>
    cassandra.execute(`DELETE FROM ${table} WHERE region_id = ? AND window_spec = ? AND window_start = ?`, [r, spec, new Date(start)], { prepare: true });
  /** The panes' persisted snapshots, gone (a test's snapshot must not leak into the next one's). */
  const deleteSnapshots = async () => {
    for (let i = 0; i < 5; i++) await deleteSnapshot(region, '1m', START + i * SLIDE);
  };
  /** Pane sizes the sliding tests run at: summed by one ZUNIONSTORE, and in pages. */
  const SIZES = [
    [400, 'one ZUNIONSTORE'],
    [3_000, 'in pages'],
  ] as const;

  const asMap = (flat: string[]) => {
    const m = new Map<string, number>();
    for (let i = 0; i < flat.length; i += 2) m.set(flat[i], Number(flat[i + 1]));
    return m;
  };

  before(() => {
    redis = opsRedis(cfg);
  });
  afterEach(async () => {
    sinon.restore();
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${regionPrefix(region)}*`, 'COUNT', 1000);
      keys.push(...batch);
      cursor = next;
    } while (cursor !== '0');
    if (keys.length) await redis.del(...keys);
    await redis.srem(GLOBAL_DIRTY_KEY, id);
    await deleteSnapshots();
  });
  after(async () => {
    redis.disconnect();
    await cassandra.shutdown();
  });

  it('names the windows whose keys hold counts (a coordinator starts an earlier window only then)', async () => {
    await redis.zadd(regionWindowKey(region, windowId('1m', START)), 3, 'p1');
    await redis.zadd(regionWindowKey(region, windowId('1m', START + 2 * SLIDE)), 1, 'p2');
    const { countedWindows } = windowActivities({ redis });
    const ids = [0, 1, 2, 3].map((i) => windowId('1m', START + i * SLIDE));
    expect(await countedWindows({ region, ids })).to.deep.equal([ids[0], ids[2]]);
    expect(await countedWindows({ region, ids: [] })).to.deep.equal([]);
  });

  /** The key of pane 0 and its counts as Cassandra must hold them, after a persist returned `snap`. */
  const expectPersisted = async (snap: { posts: number; events: number; top: unknown[] }) => {
    const want = asMap(await redis.zrange(regionWindowKey(region, windowId('1m', START)), 0, -1, 'WITHSCORES'));
    const rows = await store().readWindow(region, windowId('1m', START));
    expect(new Map(rows.map((r) => [r.post_id, r.view_count]))).to.deep.equal(want);
    expect(rows.length).to.equal(want.size);
    expect(snap.posts).to.equal(want.size);
    expect(snap.events).to.equal([...want.values()].reduce((a, n) => a + n, 0));
    expect(snap.top).to.deep.equal(
      [...want]
        .map(([post_id, view_count]) => ({ post_id, view_count }))
        .sort(byRank)
        .slice(0, 10),
    );
  };

  it("persists a 12,000-post window read in pages: Cassandra holds exactly the key's counts", async () => {
    await panes(1, 12_000, 0);
    const zrange = sinon.spy(redis, 'zrange');
    const zscan = sinon.spy(redis, 'zscan');
    const snap = await store().persistWindow(region, '1m', START);
    expect(zrange.called, 'a whole-key ZRANGE').to.equal(false);
    expect(zscan.callCount).to.be.greaterThan(5);
    await expectPersisted(snap);
    expect(snap.posts).to.equal(12_000);
  });

  it('reads the window once when ZSCAN returns each post once; a page returned again (as while Redis resizes the set) makes it read again, dropping repeats', async () => {
    await panes(1, 12_000, 0);
    const real = redis.zscan.bind(redis);
    let n = 0;
    // The second call returns the first page again, and the same cursor (the scan goes on from where it was).
    sinon.stub(redis, 'zscan').callsFake((async (key: string, cursor: string, count: 'COUNT', page: number) => {
      n++;
      if (n !== 2) return real(key, cursor, count, page);
      const [, again] = await real(key, '0', count, page);
      return [cursor, again];
    }) as never);
    const snap = await store().persistWindow(region, '1m', START);
    const pages = n;
    await expectPersisted(snap);
    expect(pages, 'read twice').to.be.greaterThan(24);
    sinon.restore();
    // Without a repeat: one read.
    const zscan = sinon.spy(redis, 'zscan');
    await expectPersisted(await store().persistWindow(region, '1m', START));
    expect(zscan.callCount).to.be.within(6, pages / 2);
  });

  it('a post counted into the window during the read (a late event within its lateness) is in the snapshot', async () => {
    await panes(1, 12_000, 0);
    let beats = 0;
    const key = regionWindowKey(region, windowId('1m', START));
    const snap = await store().persistWindow(region, '1m', START, () => {
      // After the first page: 300 new posts (ZSCAN may already have passed where they land).
      if (++beats === 2) void redis.zadd(key, ...Array.from({ length: 300 }, (_, i) => [1, `late${i}`]).flat());
    });
    await expectPersisted(snap);
    expect(snap.posts).to.equal(12_300);
  });

  it('sums small panes with one ZUNIONSTORE', async () => {
    const small = await panes(5, 400, 100); // 2,000 members in all
    const unions = await calls('zunionstore');
    expect(await store().assembleSliding(region, id, '1m', START, 5 * SLIDE, SLIDE, START + 3_600_000)).to.equal(small.size);
    expect((await calls('zunionstore')) - unions).to.equal(1);
    expect(asMap(await redis.zrange(regionWindowKey(region, id), 0, -1, 'WITHSCORES'))).to.deep.equal(small);
  });

  it("keeps a sum made after the window's own TTL (the workflow held up past it) until it is persisted and expired", async () => {
    for (const [n, label] of SIZES) {
      const sums = await panes(5, n, n / 4);
      const past = Date.now() - 1_000;
      expect(await store().assembleSliding(region, id, '1m', START, 5 * SLIDE, SLIDE, past), label).to.equal(sums.size);
      expect(asMap(await redis.zrange(regionWindowKey(region, id), 0, -1, 'WITHSCORES')), label).to.deep.equal(sums);
      expect(await redis.pttl(regionWindowKey(region, id)), `${label}: it still expires`).to.be.greaterThan(0);
      const snap = await store().persistWindow(region, '5m@1m', START);
      expect(snap.posts, label).to.equal(sums.size);
      expect(asMap((await store().readWindow(region, id)).flatMap((r) => [r.post_id, String(r.view_count)])), `${label}: the snapshot`).to.deep.equal(sums);
      await store().expireWindow(region, id);
      expect(await redis.exists(regionWindowKey(region, id)), label).to.equal(0);
      for (let i = 0; i < 5; i++) await redis.del(regionWindowKey(region, windowId('1m', START + i * SLIDE)));
      await deleteSnapshot(region, '5m@1m', START);
    }
  });

  it("keeps a tumbling window's key past its TTL (the workflow held up past it) until it is persisted and expired", async () => {
    // Its own database: the flush also marks the region and its windows for the global merge.
    const own = opsRedis(cfg, await freeRedisDb());
    const r = unique('ws_held');
    const windows = loadConfig({ HH_WINDOWS: '1s/100ms/1s' }).ingest.windows;
    // Events of a window whose TTL (end + 1 s) already passed, not late (the watermark is
    // behind them: a backlog read after downtime), and the window's workflow not yet run.
    const t = Date.now() - 5_000;
    const start = t - (t % 1000);
    const w = windowId('1s', start);
    try {
      await own.hset(regionMetaKey(r), 'epoch', 'e');
      const events = ['a', 'b', 'a', 'c', 'a'].map((post, i) => ({
        offset: String(i),
        event: { event_id: `h${i}`, post_id: post, region_id: r, timestamp: t },
      }));
      await new ActorSystem(own, { windows, boundedK: 10, dedupHorizonMs: 60_000 }).actor(r).apply(0, events, 'e');
      const ttl = await own.pttl(regionWindowKey(r, w));
      expect(ttl, 'the key still lives, with an expiry').to.be.greaterThan(0);
      expect(ttl).to.be.at.most(WINDOW_KEY_GRACE_MS);
      const held = windowStore(own, cassandra, cfg.cassandra.keyspace);
      expect(await held.persistWindow(r, '1s', start)).to.include({ posts: 3, events: 5 });
      expect(asMap((await held.readWindow(r, w)).flatMap((x) => [x.post_id, String(x.view_count)]))).to.deep.equal(
        new Map([
          ['a', 3],
          ['b', 1],
          ['c', 1],
        ]),
      );
      // The window's global merge lives as long, and goes with it.
      await mergeChanged(own, 10);
      expect(await own.zrange(globalTopKey(w), 0, -1)).to.have.members(['a', 'b', 'c']);
      await held.expireWindow(r, w);
      expect(await own.exists(regionWindowKey(r, w), globalTopKey(w), globalMetaKey(w))).to.equal(0);
    } finally {
      await own.flushdb();
      own.disconnect();
      await deleteSnapshot(r, '1s', start);
    }
  });

  it("a window's FINAL snapshot is its final count: a flush after it (its batch triaged against an older watermark) does not write to the window", async () => {
    const own = opsRedis(cfg, await freeRedisDb());
    const r = unique('ws_final');
    const windows = loadConfig({ HH_WINDOWS: '1m/10s/1h,5m/30s/2h' }).ingest.windows;
    const t = Math.floor(Date.now() / 300_000) * 300_000 - 600_000; // a 5m window's first minute, 10 minutes ago
    const w = windowId('1m', t);
    const next = windowId('1m', t + 60_000);
    const five = windowId('5m', t);
    const event = (i: number, post: string, ts: number) => ({ offset: String(i), event: { event_id: `f${i}`, post_id: post, region_id: r, timestamp: ts } });
    try {
      await own.hset(regionMetaKey(r), 'epoch', 'e');
      const actor = new ActorSystem(own, { windows, boundedK: 10, dedupHorizonMs: 60_000 }).actor(r);
      await actor.apply(0, [event(0, 'a', t + 1), event(1, 'b', t + 2), event(2, 'a', t + 3)], 'e');
      const held = windowStore(own, cassandra, cfg.cassandra.keyspace, rollPlan(windows));
      // The CLOSED snapshot stops nothing; the FINAL one marks the window (and the earlier ones of its spec).
      await held.persistWindow(r, '1m', t);
      expect(await own.hget(regionSealedKey(r), windowFinalField('1m'))).to.equal(null);
      expect(await held.persistWindow(r, '1m', t, undefined, true)).to.include({ posts: 2, events: 3 });
      // A batch triaged before the watermark that made the window final (lateMask 0: not late for it) flushes now.
      const res = await actor.apply(0, [event(3, 'a', t + 4), event(4, 'c', t + 5), event(5, 'c', t + 60_001)], 'e');
      expect(res.applied).to.equal(3);
      const key = asMap(await own.zrange(regionWindowKey(r, w), 0, -1, 'WITHSCORES'));
      expect(key, "the final window's key is its FINAL snapshot").to.deep.equal(
        new Map([
          ['a', 2],
          ['b', 1],
        ]),
      );
      expect(asMap((await held.readWindow(r, w)).flatMap((x) => [x.post_id, String(x.view_count)]))).to.deep.equal(key);
      expect(res.windowRefused, 'the two events of the final window').to.equal(2);
      // Every other key takes them: all-time, the next minute, the 5m window (not final).
      expect(asMap(await own.zrange(regionTopKey(r), 0, -1, 'WITHSCORES'))).to.deep.equal(
        new Map([
          ['a', 3],
          ['b', 1],
          ['c', 2],
        ]),
      );
      expect(asMap(await own.zrange(regionWindowKey(r, next), 0, -1, 'WITHSCORES'))).to.deep.equal(new Map([['c', 1]]));
      // 5m is rolled up from 1m: the final minute was rolled into its key at its FINAL persist, the
      // two events refused by it went straight there, and the next minute is added when read.
      expect(asMap(await own.zrange(regionWindowKey(r, five), 0, -1, 'WITHSCORES'))).to.deep.equal(
        new Map([
          ['a', 3],
          ['b', 1],
          ['c', 1],
        ]),
      );
      expect(new Map((await windowTopK(own, r, five, rollPlan(windows), 10))!.top.map((e) => [e.post_id, e.view_count]))).to.deep.equal(
        new Map([
          ['a', 3],
          ['b', 1],
          ['c', 2],
        ]),
      );
      // The mark never moves back (a retried or late persist of an earlier window).
      await held.persistWindow(r, '1m', t - 60_000, undefined, true);
      expect(await own.hget(regionSealedKey(r), windowFinalField('1m'))).to.equal(String(t));
    } finally {
      await own.flushdb();
      own.disconnect();
      await deleteSnapshot(r, '1m', t);
      await deleteSnapshot(r, '1m', t - 60_000);
    }
  });

  it("sums a pane whose key expired (the workflow held up past the pane's TTL) from its persisted snapshot", async () => {
    for (const [n, label] of SIZES) {
      const sums = await panes(5, n, n / 4);
      const gone = regionWindowKey(region, windowId('1m', START + 2 * SLIDE));
      await store().persistWindow(region, '1m', START + 2 * SLIDE);
      await redis.pexpire(gone, 1);
      while (await redis.exists(gone)) await new Promise((r) => setTimeout(r, 5));
      expect(await store().assembleSliding(region, id, '1m', START, 5 * SLIDE, SLIDE, START + 3_600_000), label).to.equal(sums.size);
      expect(asMap(await redis.zrange(regionWindowKey(region, id), 0, -1, 'WITHSCORES')), label).to.deep.equal(sums);
      const left = await redis.scan('0', 'MATCH', `${regionPrefix(region)}assembling:*:pane:*`, 'COUNT', 10_000);
      expect(left[1], `${label}: the copies of expired panes`).to.deep.equal([]);
      for (let i = 0; i < 5; i++) await redis.del(regionWindowKey(region, windowId('1m', START + i * SLIDE)));
      await deleteSnapshots();
    }
  });

  it('sums large panes in pages, exactly, with the expiry and the merge mark, and leaves no keys of its own', async () => {
    const large = await panes(5, 3_000, 1_000); // 15,000 members in all, posts shared by up to 3 panes
    expect(15_000).to.be.greaterThan(SLIDING_STEP_MEMBERS);
    const [unions, scans] = [await calls('zunionstore'), await calls('zscan')];
    const n = await store().assembleSliding(region, id, '1m', START, 5 * SLIDE, SLIDE, START + 3_600_000);
    expect((await calls('zunionstore')) - unions, 'whole-key ZUNIONSTOREs').to.equal(0);
    expect((await calls('zscan')) - scans, 'ZSCAN pages').to.be.greaterThan(10);
    expect(n).to.equal(large.size);
    expect(asMap(await redis.zrange(regionWindowKey(region, id), 0, -1, 'WITHSCORES'))).to.deep.equal(large);
    expect(await redis.pexpiretime(regionWindowKey(region, id))).to.equal(START + 3_600_000 + WINDOW_KEY_GRACE_MS);
    expect(await redis.sismember(GLOBAL_DIRTY_KEY, id)).to.equal(1);
    const left = await redis.scan('0', 'MATCH', `${regionPrefix(region)}assembling:*`, 'COUNT', 10_000);
    expect(left[1], "the assembly's own keys").to.deep.equal([]);
  });

  it('readers see the old sum or the new one, never a part of the new', async () => {
    await panes(5, 3_000, 1_000);
    const key = regionWindowKey(region, id);
    await redis.zadd(key, 1, 'old-only');
    const reader = opsRedis(cfg);
    const seen = new Set<string>();
    let done = false;
    const reads = (async () => {
      while (!done) {
        const [[, card], [, old]] = (await reader.multi().zcard(key).zscore(key, 'old-only').exec()) as [[null, number], [null, string | null]];
        seen.add(old === null ? `new:${card}` : `old:${card}`);
      }
    })();
    const n = await store().assembleSliding(region, id, '1m', START, 5 * SLIDE, SLIDE, START + 3_600_000);
    done = true;
    await reads;
    reader.disconnect();
    expect(
      [...seen].every((s) => s === 'old:1' || s === `new:${n}`),
      [...seen].join(' '),
    ).to.equal(true);
  });

  it("killed (kill -9) at a random moment of a paged sum (one pane summed from its snapshot): the key holds the old sum or the new, the retry is exact, the dead attempt's keys expire", async () => {
    const sums = await panes(5, 10_000, 2_000);
    // The first pane expired after it was persisted: each attempt sums it from a copy of its snapshot.
    const expired = regionWindowKey(region, windowId('1m', START));
    await store().persistWindow(region, '1m', START);
    await redis.pexpire(expired, 1);
    while (await redis.exists(expired)) await new Promise((r) => setTimeout(r, 5));
    const key = regionWindowKey(region, id);
    const args = [region, id, String(START), String(SLIDE), '5', String(START + 3_600_000)];
    const t0 = performance.now();
    await store().assembleSliding(region, id, '1m', START, 5 * SLIDE, SLIDE, START + 3_600_000);
    const took = performance.now() - t0;
    const outcomes: string[] = [];
    for (let round = 0; round < 4; round++) {
      await redis.del(key);
      await redis.zadd(key, 1, 'old-only');
      const delay = Math.floor(Math.random() * 1.5 * took);
      const out = await killAfterStarted('sliding-child.ts', args, delay);
      const now = asMap(await redis.zrange(key, 0, -1, 'WITHSCORES'));
      const old = now.size === 1 && now.get('old-only') === 1;
      if (!old) expect(now, `round ${round}: neither the old sum nor the new`).to.deep.equal(sums);
      outcomes.push(`${delay} ms → ${out.includes('done') ? 'finished' : old ? 'old sum kept' : 'swapped'}`);
      let cursor = '0';
      do {
        const [next, left] = await redis.scan(cursor, 'MATCH', `${regionPrefix(region)}assembling:*`, 'COUNT', 1000);
        for (const k of left) expect(await redis.pttl(k), `${k} outlives its attempt`).to.be.within(1, 600_000);
        cursor = next;
      } while (cursor !== '0');
      // The retry (Temporal's, on another worker): exact.
      await store().assembleSliding(region, id, '1m', START, 5 * SLIDE, SLIDE, START + 3_600_000);
      expect(asMap(await redis.zrange(key, 0, -1, 'WITHSCORES')), `round ${round}: the retry`).to.deep.equal(sums);
    }
    console.log(`      a paged sum of 5 x 10,000-post panes, one copied from its snapshot: ${Math.round(took)} ms; kill -9 after ${outcomes.join('; ')}`);
  });

  it('two attempts at once (a retry while the first still runs) each put a whole sum in place', async () => {
    const sums = await panes(5, 3_000, 1_000);
    const [a, b] = await Promise.all([0, 1].map(() => store().assembleSliding(region, id, '1m', START, 5 * SLIDE, SLIDE, START + 3_600_000)));
    expect([a, b]).to.deep.equal([sums.size, sums.size]);
    expect(asMap(await redis.zrange(regionWindowKey(region, id), 0, -1, 'WITHSCORES'))).to.deep.equal(sums);
  });

  it('adds a member once when ZSCAN returns it again (a page read twice within one scan), and copies it once into the sum', async () => {
    await panes(1, 3_000, 0);
    const marker = regionAssemblyKey(region, id, 'twice');
    const pane = regionWindowKey(region, windowId('1m', START));
    const s = scripted(redis);
    const counts = `${marker}:counts`;
    const sum = `${marker}:sum`;
    const step = (cursor: string) => s.hhSlidingAssemble(marker, counts, `${marker}:seen:0`, pane, 'step', cursor, 100, 60_000).then(String);
    const convert = (cursor: string) => s.hhSlidingAssemble(marker, counts, sum, sum, 'convert', cursor, 100, 60_000).then(String);
    await redis.set(marker, '1', 'PX', 60_000);
    let cursor = await step('0');
    expect(cursor).to.not.equal('0');
    cursor = await step('0'); // the first page again
    while (cursor !== '0') cursor = await step(cursor);
    // The copy into the sorted set: a page HSCAN returns again sets the same scores again.
    cursor = await convert('0');
    expect(cursor).to.not.equal('0');
    cursor = await convert('0');
    while (cursor !== '0') cursor = await convert(cursor);
    expect(await redis.exists(counts), 'the hash is dropped once copied').to.equal(0);
    expect(asMap(await redis.zrange(sum, 0, -1, 'WITHSCORES'))).to.deep.equal(asMap(await redis.zrange(pane, 0, -1, 'WITHSCORES')));
  });

  it("stops with LOST when the attempt's keys are wiped midway; the window's key is untouched and a new attempt is exact", async () => {
    const sums = await panes(5, 3_000, 1_000);
    const key = regionWindowKey(region, id);
    await redis.zadd(key, 1, 'old-only');
    const s = scripted(redis);
    const real = s.hhSlidingAssemble.bind(s);
    let calls = 0;
    sinon.stub(s, 'hhSlidingAssemble').callsFake(async (...a: Parameters<typeof real>) => {
      if (++calls === 4) await redis.del(a[0], a[1]);
      return real(...a);
    });
    let err: Error | undefined;
    await store()
      .assembleSliding(region, id, '1m', START, 5 * SLIDE, SLIDE, START + 3_600_000)
      .catch((e: Error) => (err = e));
    expect(err?.message).to.match(/LOST/);
    expect(await redis.zrange(key, 0, -1)).to.deep.equal(['old-only']);
    sinon.restore();
    await store().assembleSliding(region, id, '1m', START, 5 * SLIDE, SLIDE, START + 3_600_000);
    expect(asMap(await redis.zrange(key, 0, -1, 'WITHSCORES'))).to.deep.equal(sums);
  });
});
