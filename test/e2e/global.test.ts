/**
 * End to end (real Kafka, Redis, Cassandra, Temporal; 2 worker processes): the global
 * merge workflow's `global:top_k` is exact, also where a merge of regional top Ks is
 * wrong; trailing timeframes add and drop events as the watermark moves; sliding windows
 * are summed from their panes; a window is
 * addressable by id, from Redis while it lives and from its Cassandra snapshot after.
 */
import { temporalClient } from '../../src/clients';
import { expect } from 'chai';
import { type Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { mergeTruth, truthTopK, type Truth } from '../../src/load/generator';
import { globalMergeStatusQuery, globalMergeWorkflowId, windowStatusQuery, windowWorkflowId } from '../../src/workflows/definitions';
import { cfg as baseCfg, unique } from '../helpers';
import { Isolated } from '../../scripts/harness/isolated';
import { GLOBAL_DIRTY_KEY, REGIONS_KEY, globalMetaKey, regionWindowKey } from '../../src/keys';
import { dumpOnFailure } from '../support/failure';
import { eventually, startRuntime, waitDrained, type Runtime } from '../../scripts/harness/runtime';

interface TopBody {
  source: string;
  merge?: { entries_moved: number; entries_naive: number; regions: number };
  range?: { from: number; to: number } | null;
  top_posts: { post_id: string; view_count: number }[];
}

const K = 10;

describe('global merge, trailing timeframes and windows by id (end to end)', function () {
  this.timeout(300_000);
  const id = unique('glob');
  const iso = new Isolated(id, {
    HH_WORKERS: '2',
    HH_GLOBAL_K: String(K),
    HH_GLOBAL_MERGE_INTERVAL: '300ms',
    HH_WINDOWS: '2s/1s/15s,1m/10s/10m,4s@2s/1s/15s',
    HH_WATERMARK_DELAY: '500ms',
    HH_IDLE_TIMEOUT: '1s',
    HH_WATERMARK_REPORT_INTERVAL: '300ms',
  });
  const crafted = ['NA', 'EU', 'APAC', 'LATAM'].map((r) => `${id}_c${r}`);
  let randomRegions: string[] = [];
  let rt: Runtime;
  let client: Client;
  const truth: Truth = {};
  let T = 0;

  const get = async (q: string): Promise<TopBody> => {
    const res = await fetch(`${rt.api}/top-posts?${q}`);
    const body = (await res.json()) as TopBody & { error?: string };
    expect(res.status, `${q}: ${body.error}`).to.equal(200);
    return body;
  };
  const plain = (b: TopBody) => b.top_posts.map((p) => ({ post_id: p.post_id, view_count: p.view_count }));
  const globalTruth = () => {
    const sum: Record<string, number> = {};
    for (const posts of Object.values(truth)) for (const [p, n] of Object.entries(posts)) sum[p] = (sum[p] ?? 0) + n;
    return sum;
  };

  /**
   * What a failure needs to be explained, in a few lines: the merge workflow (its pending
   * activity, its last history events), the merge's keys, and the crafted events' windows.
   */
  const mergeState = async (): Promise<string> => {
    const out: string[] = [];
    const show = async (what: string, f: () => Promise<unknown>) => {
      try {
        out.push(`${what}: ${JSON.stringify(await f())}`);
      } catch (e) {
        out.push(`${what}: ${(e as Error).message}`);
      }
    };
    const handle = client.workflow.getHandle(globalMergeWorkflowId(iso.env.HH_TEMPORAL_TASK_QUEUE));
    out.push(`now: ${new Date().toISOString()}`);
    await show('merge workflow', async () => {
      const d = await handle.describe();
      const pending = d.raw.pendingActivities?.map((a) => ({ attempt: a.attempt, state: a.state, failure: a.lastFailure?.message }));
      return { status: d.status.name, historyLength: d.historyLength, pending };
    });
    await show('its last events', async () => {
      const events = (await handle.fetchHistory()).events ?? [];
      const at = (e: (typeof events)[number]) => Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6);
      return events.slice(-8).map((e) => `${new Date(at(e)).toISOString().slice(11, 23)} ${temporal.api.enums.v1.EventType[e.eventType ?? 0]}`);
    });
    await show('status query', async () => {
      const { merges, families, last } = await handle.query(globalMergeStatusQuery);
      return { merges, families, last_families: last && Object.keys(last.merged) };
    });
    await show('global:dirty', async () => {
      const n = await iso.redis.scard(GLOBAL_DIRTY_KEY);
      return { members: n, some: await iso.redis.srandmember(GLOBAL_DIRTY_KEY, 5) };
    });
    await show('regions', () => iso.redis.smembers(REGIONS_KEY));
    await show('global:meta', () => iso.redis.get(globalMetaKey('all')));
    // The crafted events' windows: each region's 2s and 4s@2s window workflows.
    const s0 = Math.floor(T / 2000) * 2000;
    for (const region of crafted) {
      for (const [spec, start] of [
        ['2s', s0],
        ['4s@2s', s0 - 2000],
        ['4s@2s', s0],
      ] as const) {
        await show(`${region} ${spec}:${start}`, async () => {
          const h = client.workflow.getHandle(windowWorkflowId(region, spec, start));
          const d = await h.describe();
          const q = await h.query(windowStatusQuery).then(
            (w) => w.state,
            (e: Error) => e.message,
          );
          return { status: d.status.name, closed: d.closeTime, state: q };
        });
      }
    }
    return out.map((l) => `    | ${l}`).join('\n');
  };

  before(async () => {
    await iso.setUp();
    client = await temporalClient(baseCfg);
    rt = await startRuntime(iso.env);
  });
  afterEach(async function () {
    dumpOnFailure(this, rt);
    // Into the failure's own message: the report at the end of the run shows it whole.
    const err = this.currentTest?.err;
    if (this.currentTest?.state === 'failed' && err) err.message += `\n    --- global merge ---\n${await mergeState()}`;
  });
  after(async () => {
    await client?.connection.close();
    await iso.tearDown(rt, [...crafted, ...randomRegions]);
  });

  it('ranks first the post that is K+1 in every region (a merge of regional top Ks misses it), with its exact count', async () => {
    // Each region: K local posts with 20 views, "hidden" with 19, a long tail of 1-2 views.
    T = Date.now();
    const messages: { key: string; value: string }[] = [];
    let n = 0;
    for (const region of crafted) {
      const add = (post: string, views: number) => {
        for (let i = 0; i < views; i++) {
          messages.push({ key: region, value: JSON.stringify({ event_id: `${id}-${n++}`, post_id: post, region_id: region, timestamp: T }) });
          (truth[region] ??= {})[post] = (truth[region]?.[post] ?? 0) + 1;
        }
      };
      for (let i = 0; i < K; i++) add(`${region}-local-${i}`, 20);
      add(`${id}-hidden`, 19);
      for (let i = 0; i < 300; i++) add(`${region}-tail-${i}`, 1 + (i % 2));
    }
    await iso.producer.send({ topic: iso.env.HH_KAFKA_TOPIC, acks: -1, messages });
    await waitDrained(iso.admin, iso.env.HH_KAFKA_GROUP, iso.env.HH_KAFKA_TOPIC);

    // The naive answer: merge each region's top K.
    const naive: Truth = {};
    for (const region of crafted) {
      naive[region] = Object.fromEntries(plain(await get(`region=${region}&k=${K}`)).map((p) => [p.post_id, p.view_count]));
    }
    const naiveTop = truthTopK(Object.assign({}, ...Object.values(naive).map((m) => m)), K).map((p) => p.post_id);
    expect(naiveTop).not.to.include(`${id}-hidden`);

    await eventually(async () => {
      const g = await get(`region=global&k=${K}`);
      expect(g.top_posts[0]).to.include({ post_id: `${id}-hidden`, view_count: 4 * 19 });
      expect(plain(g)).to.deep.equal(truthTopK(globalTruth(), K));
      expect(g.merge!.regions).to.equal(crafted.length);
      expect(g.merge!.entries_moved).to.be.below(g.merge!.entries_naive);
    }, 60_000);
  });

  it('a 1m window, rolled up from its 2-second windows, answers by id exactly before and after they are rolled into its key, per region and global', async () => {
    const region = crafted[3];
    const w = `1m:${Math.floor(T / 60_000) * 60_000}`;
    const want = truthTopK(truth[region], 1000);
    // Whether or not its 2-second window is rolled in yet: its key plus what is not.
    expect(plain(await get(`region=${region}&window=${w}&k=1000`))).to.deep.equal(want);
    // The 2-second window turns FINAL within seconds (the watermark moves by processing time),
    // and is rolled in at its FINAL persist: the minute's key then holds every event itself.
    await eventually(
      async () => {
        const flat = await iso.redis.zrevrange(regionWindowKey(region, w), 0, -1, 'WITHSCORES');
        const key = Array.from({ length: flat.length / 2 }, (_, i) => ({ post_id: flat[2 * i], view_count: Number(flat[2 * i + 1]) }));
        expect(truthTopK(Object.fromEntries(key.map((e) => [e.post_id, e.view_count])), 1000)).to.deep.equal(want);
        const g = await get(`region=global&window=${w}&k=${K}`);
        expect(g.top_posts[0]).to.include({ post_id: `${id}-hidden`, view_count: 76 });
      },
      60_000,
      500,
    );
    expect(plain(await get(`region=${region}&window=${w}&k=1000`))).to.deep.equal(want);
  });

  it('answers a window by id from Redis while it lives and from its Cassandra snapshot after its TTL', async () => {
    const region = crafted[1];
    const w = `2s:${Math.floor(T / 2000) * 2000}`;
    const live = await get(`region=${region}&window=${w}&k=1000`);
    expect(live.source).to.equal('redis');
    expect(plain(live)).to.deep.equal(truthTopK(truth[region], 1000));
    // TTL 15 s after the end; the window workflow persisted its snapshot when it closed.
    await eventually(
      async () => {
        const gone = await get(`region=${region}&window=${w}&k=1000`);
        expect(gone.source).to.equal('record');
        expect(plain(gone)).to.deep.equal(truthTopK(truth[region], 1000));
        const g = await get(`region=global&window=${w}&k=${K}`);
        expect(g.source).to.equal('record');
        expect(g.top_posts[0]).to.include({ post_id: `${id}-hidden`, view_count: 76 });
      },
      90_000,
      1000,
    );
  });
  it('trailing timeframes hold the events of their last panes: 2s drops them as the watermark moves on, 1m still has them', async () => {
    const region = crafted[0];
    // The watermark moves by processing time (idle timeout 1 s): within seconds T is more than 2 s behind.
    await eventually(async () => {
      const short = await get(`region=${region}&timeframe=2s&k=1000`);
      expect(short.range!.from).to.be.greaterThan(T);
      expect(short.top_posts).to.deep.equal([]);
      const long = await get(`region=${region}&timeframe=1m&k=1000`);
      expect(long.range!.from).to.be.at.most(T);
      expect(long.range!.to).to.be.greaterThan(T);
      expect(plain(long)).to.deep.equal(truthTopK(truth[region], 1000));
      expect(plain(await get(`region=global&timeframe=1m&k=${K}`))).to.deep.equal(truthTopK(globalTruth(), K));
    }, 60_000);
  });

  it('keeps global:top_k equal to the ground truth under a random Zipf stream', async () => {
    const stream = { events: 60_000, regions: 6, posts: 5_000, seed: 5, prefix: `${id}_r` };
    randomRegions = Object.keys(await iso.produce(stream).then((t) => (mergeTruth(truth, t), t)));
    await waitDrained(iso.admin, iso.env.HH_KAFKA_GROUP, iso.env.HH_KAFKA_TOPIC);
    await eventually(async () => {
      expect(plain(await get(`region=global&k=${K}`))).to.deep.equal(truthTopK(globalTruth(), K));
    }, 60_000);
    const status = await client.workflow.getHandle(globalMergeWorkflowId(iso.env.HH_TEMPORAL_TASK_QUEUE)).query(globalMergeStatusQuery);
    expect(status.merges).to.be.greaterThan(1);
    expect(status.moved).to.be.below(status.naive);
  });

  it('sums each sliding window from its panes: both 4s@2s windows that contain the events hold all of them', async () => {
    const region = crafted[2];
    const s0 = Math.floor(T / 2000) * 2000;
    await eventually(
      async () => {
        for (const start of [s0 - 2000, s0]) {
          const w = await get(`region=${region}&window=4s@2s:${start}&k=1000`);
          expect(plain(w), `4s@2s:${start}`).to.deep.equal(truthTopK(truth[region], 1000));
        }
        const g = await get(`region=global&window=4s@2s:${s0}&k=${K}`);
        expect(g.top_posts[0]).to.include({ post_id: `${id}-hidden`, view_count: 76 });
      },
      60_000,
      500,
    );
  });
});
