/**
 * End to end against the real stack: the cluster runtime (2 worker processes) consuming a
 * test-only topic through Kafka into Redis, checked through the API against the ground
 * truth counted independently while the events were generated.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import type { Admin, Kafka, Producer } from 'kafkajs';
import { DLQ_REASON_HEADER } from '../../src/ingest/triage';
import { mergeTruth, postMetadata, regionNames, truthTopK, type Truth } from '../../src/load/generator';
import { writePosts } from '../../src/store/posts';
import { unique } from '../helpers';
import { PROJECT_ROOT } from '../../src/config';
import { Isolated } from '../../scripts/harness/isolated';
import { leaderboard } from '../support/redis';
import { dumpOnFailure } from '../support/failure';
import { expectUsesBundle } from '../support/bundle';
import { eventually, startRuntime, waitDrained, waitGroupEmpty, type Runtime } from '../../scripts/harness/runtime';

const REGIONS = 8;
const POSTS = 50_000;

interface TopResponse {
  region: string;
  metadata: string;
  top_posts: { post_id: string; view_count: number; author: string | null; content: string | null }[];
}

/** Partitions with a consumer-lag series in a /metrics text. */
function lagPartitions(metricsText: string): number[] {
  return [...metricsText.matchAll(/^hh_consumer_lag_records\{[^}]*partition="(\d+)"[^}]*\} /gm)].map((m) => Number(m[1])).sort((a, b) => a - b);
}

describe('hot path end to end (Kafka -> region actors -> Redis -> API, 2 worker processes)', function () {
  this.timeout(600_000);
  const id = unique('e2e');
  const prefix = `${id}_`;
  const iso = new Isolated(id, {
    HH_WORKERS: '2',
    HH_TOPK_BOUNDED_K: '200',
    HH_INGEST_HEARTBEAT_TIMEOUT: '10s',
    // Room for one POST of 9,000 events (about 1.3 MB here): more than one produce request may carry.
    HH_API_MAX_BODY_BYTES: String(4 * 1024 * 1024),
    HH_POST_EVENTS_MAX: '10000',
    // Its own young generation (the workers keep HH_WORKER_SEMI_SPACE_MB's 32 MB): each member is forked with its flags.
    HH_LIFECYCLE_SEMI_SPACE_MB: '24',
  });
  const env = iso.env;
  const kafka = iso.kafka;
  const cassandra = iso.cassandra;
  const truth: Truth = {};
  const regions = regionNames(REGIONS, prefix);
  /** A region with one event in every partition (the lag test). */
  const lagRegion = `${prefix}lag`;
  let admin: Admin;
  let producer: Producer;
  let redis: Redis;
  let rt: Runtime;

  const top = async (region: string, k: number, variant = 'exact'): Promise<TopResponse> => {
    const res = await fetch(`${rt.api}/top-posts?region=${encodeURIComponent(region)}&timeframe=all&k=${k}&variant=${variant}`);
    expect(res.status, `GET /top-posts ${region}`).to.equal(200);
    return (await res.json()) as TopResponse;
  };

  /** Every region's top 10 and top 100, exact and bounded, equal the truth (counts included). */
  const expectExact = async () => {
    for (const region of regions) {
      for (const k of [10, 100]) {
        const want = truthTopK(truth[region], k);
        for (const variant of ['exact', 'bounded']) {
          const got = (await top(region, k, variant)).top_posts.map((p) => ({ post_id: p.post_id, view_count: p.view_count }));
          expect(got, `${region} top ${k} (${variant})`).to.deep.equal(want);
        }
      }
      // The whole leaderboard, not only the head: every post's count equals the truth.
      expect(await leaderboard(redis, region), `${region} full leaderboard`).to.deep.equal(truth[region]);
    }
  };

  /** Produces a stream; its truth is merged by the caller (a re-sent stream must not be). */
  const produce = async (events: number, seed: number, onHalf?: () => void) => {
    const t0 = Date.now();
    const t = await iso.produce({ events, seed, regions: REGIONS, posts: POSTS, prefix }, { onHalf });
    const sent = Object.values(t).reduce((sum, posts) => sum + Object.values(posts).reduce((a, b) => a + b, 0), 0);
    return { truth: t, ms: Date.now() - t0, sent };
  };

  before(async () => {
    await iso.setUp();
    ({ admin, producer, redis } = iso);
    // The posts' metadata, as the load generator writes it.
    await writePosts(
      cassandra,
      iso.keyspace,
      (function* () {
        for (let i = 0; i < POSTS; i++) yield postMetadata(i, prefix);
      })(),
    );
    rt = await startRuntime(env);
  });

  afterEach(function () {
    dumpOnFailure(this, rt);
  });

  after(async () => {
    await iso.tearDown(rt, [...regions, `${prefix}bad`, lagRegion]);
  });

  it('counts 200,000 Zipf events over 8 regions and 50,000 posts exactly (top 10 and top 100, exact and bounded)', async () => {
    const t0 = Date.now();
    const res = await produce(200_000, 7);
    mergeTruth(truth, res.truth);
    await waitDrained(admin, env.HH_KAFKA_GROUP, env.HH_KAFKA_TOPIC);
    process.stdout.write(`      produced 200,000 in ${res.ms} ms; drained ${Date.now() - t0} ms after the first send\n`);
    expect(Object.keys(truth)).to.have.members(regions);
    await expectExact();
    // Health tells when each worker last applied a batch (within a second of it).
    await eventually(async () => {
      const h = (await (await fetch(`${rt.api}/healthz`)).json()) as { ingest: { slots: { slot: number; last_batch_at: number | null }[] } };
      for (const s of h.ingest.slots) expect(s.last_batch_at, `slot ${s.slot}'s last batch`).to.be.a('number').and.within(t0, Date.now());
    }, 10_000);
  });

  it('joins real author and content from Cassandra for every post in the answers', async () => {
    for (const region of regions) {
      const res = await top(region, 100);
      expect(res.metadata).to.equal('ok');
      for (const p of res.top_posts) {
        const i = Number(p.post_id.slice(`${prefix}post-`.length));
        const meta = postMetadata(i, prefix);
        expect({ author: p.author, content: p.content }, p.post_id).to.deep.equal({ author: meta.author, content: meta.content });
      }
    }
  });

  it('runs its API process at HH_API_NICE (-5) where permitted, its ingest workers at 0', () => {
    expect(rt.apis.size).to.equal(1);
    // A negative nice needs root (or CAP_SYS_NICE); without it the primary leaves it at 0 and logs why.
    const want = process.getuid?.() === 0 ? -5 : 0;
    for (const pid of rt.apis.values()) expect(os.getPriority(pid), `API process ${pid}`).to.equal(want);
    for (const pid of rt.workers.values()) expect(os.getPriority(pid), `worker ${pid}`).to.equal(0);
  });

  it('its lifecycle process (the workflows) and workers run the workflow code the primary bundled once (none bundles it again: no swc compiler loaded)', () => {
    expect(rt.output.some((l) => /workflow code bundled once for every worker/.test(l))).to.equal(true);
    expect(rt.lifecycles.size).to.equal(1);
    for (const pid of [...rt.lifecycles.values(), ...rt.workers.values()]) expectUsesBundle(pid);
  });

  it("each member starts with its own young generation: the workers and API processes HH_WORKER_SEMI_SPACE_MB's, the lifecycle process HH_LIFECYCLE_SEMI_SPACE_MB's", () => {
    const semi = (pid: number) =>
      fs
        .readFileSync(`/proc/${pid}/cmdline`, 'utf8')
        .split('\0')
        .filter((a) => a.startsWith('--max-semi-space-size'));
    for (const pid of [...rt.workers.values(), ...rt.apis.values()]) expect(semi(pid), `member ${pid}`).to.deep.equal(['--max-semi-space-size=32']);
    for (const pid of rt.lifecycles.values()) expect(semi(pid), `lifecycle process ${pid}`).to.deep.equal(['--max-semi-space-size=24']);
  });

  it('re-sent events (same event_ids) change no count', async () => {
    const res = await produce(30_000, 7); // the first 30,000 events of the same seed again
    expect(res.sent).to.equal(30_000);
    await waitDrained(admin, env.HH_KAFKA_GROUP, env.HH_KAFKA_TOPIC);
    await expectExact();
    const metrics = await (await fetch(`${rt.api}/metrics`)).text();
    const dedup = Number(/^hh_events_deduplicated_total (\d+)/m.exec(metrics)?.[1]);
    expect(dedup).to.be.at.least(30_000);
  });

  it('survives kill -9 of a worker mid-ingest: restarted, and the counts still equal the truth', async () => {
    const victim = rt.workers.get(1)!;
    let killedAt = 0;
    const res = await produce(100_000, 8, () => {
      process.kill(victim, 'SIGKILL');
      killedAt = Date.now();
    });
    mergeTruth(truth, res.truth);
    expect(killedAt).to.be.greaterThan(0);
    // The primary restarts the slot with a new process.
    for (let i = 0; i < 100 && (rt.workers.get(1) ?? victim) === victim; i++) await new Promise((r) => setTimeout(r, 200));
    expect(rt.workers.get(1)).to.be.a('number').and.not.equal(victim);
    await waitDrained(admin, env.HH_KAFKA_GROUP, env.HH_KAFKA_TOPIC);
    await expectExact();
    // The restarted process loaded the same bundle: it did not bundle the workflows itself.
    expectUsesBundle(rt.workers.get(1)!);
  });

  it('a graceful restart and a consumer-group rewind to the beginning change no count (consumption resumes from what Redis applied)', async () => {
    const stopped = rt;
    await rt.stop(); // SIGTERM: actors drained, offsets committed, group left
    // Every process drained and said so: none threw on the way out (the Temporal SDK's own
    // signal handler had begun shutting the lifecycle Worker down, and the drain's second
    // shutdown() threw IllegalStateError: the process died with its activities cut short).
    const said = stopped.output.join('\n');
    expect(said).not.to.match(/IllegalStateError|Not running\. Current state/);
    for (const part of ['worker', 'lifecycle', 'api']) {
      expect(
        stopped.output.some((l) => l.includes(`"component":"${part}"`) && l.includes('"msg":"stopped"')),
        `${part} stopped`,
      ).to.equal(true);
    }
    await waitGroupEmpty(admin, env.HH_KAFKA_GROUP);
    await admin.resetOffsets({ groupId: env.HH_KAFKA_GROUP, topic: env.HH_KAFKA_TOPIC, earliest: true });
    rt = await startRuntime(env);
    // The members resume from Redis's applied marks, not from the rewound group offsets, and
    // commit those: the group is back at the end without re-reading a record.
    await waitDrained(admin, env.HH_KAFKA_GROUP, env.HH_KAFKA_TOPIC);
    await expectExact();
    const metrics = await (await fetch(`${rt.api}/metrics`)).text();
    expect(Number(/^hh_events_applied_total (\d+)/m.exec(metrics)?.[1])).to.equal(0);
    expect(Number(/^hh_events_consumed_total (\d+)/m.exec(metrics)?.[1])).to.equal(0);
  });

  it("a stale group offset another member committed (a previous owner's late commit) is put right while the partitions stay idle; a partition's lag is reported by its holder only", async () => {
    // Kafka checks a committer's generation, not that it owns the partition. A member joins
    // the group, takes its share of partitions (paused: nobody reads them meanwhile) and,
    // once the runtime's members have settled, commits offset 0 for every partition. No
    // rebalance follows (which would make the members fetch from the stale offsets and commit
    // as they went): only their own re-commits can bring their partitions back.
    const topic = env.HH_KAFKA_TOPIC;
    // The runtime's members settled first (the runtime may answer /healthz before its second
    // member's join has rebalanced the group).
    await eventually(async () => {
      const g = (await admin.describeGroups([env.HH_KAFKA_GROUP])).groups[0];
      expect([g?.state, g?.members.length]).to.deep.equal(['Stable', rt.cfg.runtime.workers]);
    }, 60_000);
    // One event in every partition first: each member then reports the lag of every partition it holds.
    const ends0 = await admin.fetchTopicOffsets(topic);
    await producer.send({
      topic,
      acks: -1,
      messages: ends0.map((e) => ({
        partition: e.partition,
        key: lagRegion,
        value: JSON.stringify({ event_id: `${lagRegion}-${e.partition}`, post_id: `${prefix}post-lag`, region_id: lagRegion, timestamp: Date.now() }),
      })),
    });
    await waitDrained(admin, env.HH_KAFKA_GROUP, topic);
    const lagged = lagPartitions(await (await fetch(`${rt.api}/metrics`)).text());
    expect(lagged, 'lag reported per partition').to.deep.equal(ends0.map((e) => e.partition).sort((a, b) => a - b));
    const rogue = kafka.consumer({ groupId: env.HH_KAFKA_GROUP, sessionTimeout: 10_000, heartbeatInterval: 1_000 });
    const rogueHolds = new Set<number>();
    const joined = new Promise<void>((r) =>
      rogue.on(rogue.events.GROUP_JOIN, (e) => {
        for (const p of e.payload.memberAssignment[topic] ?? []) rogueHolds.add(p);
        r();
      }),
    );
    await rogue.connect();
    try {
      await rogue.subscribe({ topic });
      await rogue.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: async () => undefined });
      await joined;
      rogue.pause([{ topic }]);
      await new Promise((r) => setTimeout(r, 3_000));
      const ends = await admin.fetchTopicOffsets(topic);
      const members = ends.filter((e) => !rogueHolds.has(e.partition));
      expect(members.length, "the runtime's members hold partitions").to.be.greaterThan(0);
      await rogue.commitOffsets(ends.map((e) => ({ topic, partition: e.partition, offset: '0' })));
      const stale = await admin.fetchOffsets({ groupId: env.HH_KAFKA_GROUP, topics: [topic] });
      expect(stale[0].partitions.every((p) => p.offset === '0')).to.equal(true);
      await eventually(async () => {
        const now = await admin.fetchOffsets({ groupId: env.HH_KAFKA_GROUP, topics: [topic] });
        const byPart = new Map(now[0].partitions.map((p) => [p.partition, p.offset]));
        expect(
          members.map((e) => byPart.get(e.partition)),
          "the members' partitions",
        ).to.deep.equal(members.map((e) => e.high));
      }, 30_000);
      // The lag of a partition is reported by its holder only (a stale last value of its
      // previous holder would be summed into the cluster's figure).
      const reported = lagPartitions(await (await fetch(`${rt.api}/metrics`)).text());
      expect(
        reported.filter((p) => rogueHolds.has(p)),
        'lag series of partitions the members no longer hold',
      ).to.deep.equal([]);
    } finally {
      await rogue.disconnect();
    }
    // The rogue's partitions, idle, go back to the members: each new holder reports their lag
    // at once (from the log end and where it resumes), not at a next batch that may not come.
    await eventually(async () => {
      const all = lagPartitions(await (await fetch(`${rt.api}/metrics`)).text());
      expect(all, 'lag reported per partition once the rogue left').to.deep.equal(ends0.map((e) => e.partition).sort((a, b) => a - b));
    }, 30_000);
    await waitDrained(admin, env.HH_KAFKA_GROUP, topic);
    await expectExact();
  });

  describe('bad input', () => {
    const badRegion = `${prefix}bad`;
    const good = (i: number) => ({ event_id: `${id}-ok-${i}`, post_id: 'ok-post', region_id: badRegion, timestamp: Date.now() });
    const cases: { name: string; value: Buffer; headers?: Record<string, string>; reason: RegExp }[] = [
      { name: 'invalid JSON', value: Buffer.from('{"event_id": "x",'), reason: /not valid JSON/ },
      { name: 'binary garbage', value: Buffer.from([0xff, 0xfe, 0x00, 0x9c, 0x80]), reason: /not valid UTF-8/ },
      { name: 'wrong type', value: Buffer.from(JSON.stringify({ ...good(1), timestamp: 'yesterday' })), reason: /timestamp must be/ },
      { name: 'missing field', value: Buffer.from(JSON.stringify({ event_id: 'm1', region_id: badRegion, timestamp: 1 })), reason: /missing field post_id/ },
      { name: 'oversized id', value: Buffer.from(JSON.stringify({ ...good(2), post_id: 'p'.repeat(129) })), reason: /post_id is longer than 128 bytes/ },
      { name: 'unknown schema version', value: Buffer.from(JSON.stringify(good(3))), headers: { 'schema-version': '9' }, reason: /unknown schema-version "9"/ },
      { name: 'not an object', value: Buffer.from('[1,2,3]'), reason: /must be a JSON object/ },
      // One event far in the future would move its partition's watermark (every later event late).
      { name: 'far-future timestamp', value: Buffer.from(JSON.stringify({ ...good(4), timestamp: 4_102_444_800_000 })), reason: /ahead of the clock/ },
      { name: 'reserved region', value: Buffer.from(JSON.stringify({ ...good(5), region_id: 'global' })), reason: /region_id "global" is reserved/ },
      { name: 'oversized value', value: Buffer.from(JSON.stringify({ ...good(6), note: 'x'.repeat(20_000) })), reason: /bytes, more than the 16384/ },
    ];

    it('each kind sent straight to Kafka (kafkajs and kcat) lands in the dead-letter topic with its reason; valid neighbours count; v2 is read', async () => {
      const marker = `${id}-marker`;
      await producer.send({
        topic: env.HH_KAFKA_TOPIC,
        acks: -1,
        messages: [
          ...cases.map((c) => ({ key: badRegion, value: c.value, headers: { ...c.headers, 'x-case': c.name } })),
          { key: badRegion, value: JSON.stringify(good(10)) },
          // schema v2: an extra optional field, read by this (v1) code.
          { key: badRegion, value: JSON.stringify({ ...good(11), device: 'tv' }), headers: { 'schema-version': '2' } },
        ],
      });
      // After the far-future event, on the same partition: on time, so counted in its window too.
      const onTime = good(13);
      await producer.send({ topic: env.HH_KAFKA_TOPIC, acks: -1, messages: [{ key: badRegion, value: JSON.stringify(onTime) }] });
      // An independent producer (kcat), in exactly the documented form.
      const kcatEvent = JSON.stringify(good(12));
      const kcat = (args: string[], input: string) => execFileSync('npm', ['run', '-s', 'kcat', '--', ...args], { input, cwd: PROJECT_ROOT });
      kcat(['-P', '-t', env.HH_KAFKA_TOPIC, '-k', badRegion, '-H', 'schema-version=1'], `${kcatEvent}\n`);
      kcat(['-P', '-t', env.HH_KAFKA_TOPIC, '-k', badRegion, '-H', `x-case=${marker}`], 'kcat says hi\n');
      await waitDrained(admin, env.HH_KAFKA_GROUP, env.HH_KAFKA_TOPIC);

      const dead = await readTopic(kafka, env.HH_KAFKA_DLQ_TOPIC, cases.length + 1);
      for (const c of cases) {
        const d = dead.find((m) => m.headers['x-case'] === c.name);
        expect(d, c.name).to.not.equal(undefined);
        expect(d!.headers[DLQ_REASON_HEADER], c.name).to.match(c.reason);
        expect(d!.value.equals(c.value), `${c.name}: original bytes kept`).to.equal(true);
      }
      expect(dead.find((m) => m.headers['x-case'] === marker)?.headers[DLQ_REASON_HEADER]).to.match(/not valid JSON/);
      const counted = (await top(badRegion, 10)).top_posts;
      expect(counted).to.deep.equal([{ post_id: 'ok-post', author: null, view_count: 4, content: null }]); // no metadata: null, never invented
      const minute = onTime.timestamp - (onTime.timestamp % 60_000);
      const win = (await (await fetch(`${rt.api}/top-posts?region=${badRegion}&window=1m:${minute}`)).json()) as { top_posts: { view_count: number }[] };
      expect(win.top_posts[0]?.view_count, 'the on-time event after the far-future one is in its window').to.be.at.least(1);
      expect((await fetch(`${rt.api}/healthz`)).status).to.equal(200);
      await expectExact();
    });

    it('a partition batch of 20,000 dead letters (more than a produce request may carry) reaches the dead-letter topic whole', async () => {
      const bulk = Array.from({ length: 20_000 }, (_, i) => ({ key: badRegion, value: `{"broken": ${i}`, headers: { 'x-bulk': id } }));
      for (let i = 0; i < bulk.length; i += 5000) await producer.send({ topic: env.HH_KAFKA_TOPIC, acks: -1, messages: bulk.slice(i, i + 5000) });
      await waitDrained(admin, env.HH_KAFKA_GROUP, env.HH_KAFKA_TOPIC);
      const dead = await readTopic(kafka, env.HH_KAFKA_DLQ_TOPIC, cases.length + 1 + bulk.length);
      expect(dead.filter((m) => m.headers['x-bulk'] === id)).to.have.length(bulk.length);
    });

    it('POST /events: 202 for a valid array; 400 listing each rejected index and reason while the valid ones are produced', async () => {
      const ok = await fetch(`${rt.api}/events`, {
        method: 'POST',
        headers: iso.producerHeaders,
        body: JSON.stringify([good(20), good(21)]),
      });
      expect(ok.status).to.equal(202);
      expect(await ok.json()).to.deep.equal({ accepted: 2, rejected: [] });
      const mixed = [good(22), { ...good(23), timestamp: -5 }, 'text', { ...good(24), event_id: '' }, { ...good(25), region_id: 7 }];
      const res = await fetch(`${rt.api}/events`, { method: 'POST', headers: iso.producerHeaders, body: JSON.stringify(mixed) });
      expect(res.status).to.equal(400);
      const body = (await res.json()) as { error: string; param: string; accepted: number; rejected: { index: number; reason: string }[] };
      expect(body).to.include({ param: 'body', error: '4 of 5 events rejected (the other 1 were accepted)' });
      expect(body.accepted).to.equal(1);
      expect(body.rejected.map((r) => r.index)).to.deep.equal([1, 2, 3, 4]);
      expect(body.rejected[0].reason).to.match(/timestamp/);
      expect(body.rejected[1].reason).to.match(/JSON object/);
      expect(body.rejected[2].reason).to.match(/event_id must not be empty/);
      expect(body.rejected[3].reason).to.match(/region_id must be a string/);
      for (const [b, why] of [
        ['not json', /not valid JSON/],
        ['{"a":1}', /JSON array/],
        ['[]', /at least one/],
      ] as const) {
        const r = await fetch(`${rt.api}/events`, { method: 'POST', headers: iso.producerHeaders, body: b });
        expect(r.status, b).to.equal(400);
        expect(((await r.json()) as { error: string }).error).to.match(why);
      }
      await waitDrained(admin, env.HH_KAFKA_GROUP, env.HH_KAFKA_TOPIC);
      expect((await top(badRegion, 10)).top_posts[0].view_count).to.equal(7);
    });

    it('POST /events takes 9,000 events (about 1 MB, more than one produce request may carry) and counts each', async () => {
      const region = `${prefix}bulk`;
      const events = Array.from({ length: 9_000 }, (_, i) => ({
        event_id: `${id}-bulk-${i}`,
        post_id: `bulk-${i % 7}`,
        region_id: region,
        timestamp: Date.now(),
      }));
      const res = await fetch(`${rt.api}/events`, { method: 'POST', headers: iso.producerHeaders, body: JSON.stringify(events) });
      expect(res.status).to.equal(202);
      expect(await res.json()).to.deep.equal({ accepted: 9_000, rejected: [] });
      await waitDrained(admin, env.HH_KAFKA_GROUP, env.HH_KAFKA_TOPIC);
      const counts = (await top(region, 10)).top_posts.map((p) => p.view_count);
      expect(counts.reduce((a, b) => a + b, 0)).to.equal(9_000);
    });

    it('POST /events refuses hostile bodies quickly and clearly: deeply nested, too large, not JSON', async () => {
      const post = (body: string) => fetch(`${rt.api}/events`, { method: 'POST', headers: iso.producerHeaders, body });
      const nested = await post('['.repeat(500_000));
      expect(nested.status).to.equal(400);
      expect(await nested.json()).to.deep.equal({ error: 'body nests arrays and objects deeper than 8 levels', param: 'body' });
      const large = await post(`[${'"x",'.repeat(1_500_000)}"x"]`); // 6 MB, over this suite's 4 MiB limit
      expect(large.status).to.equal(413);
      expect(((await large.json()) as { param: string }).param).to.equal('body');
    });

    it('bad query parameters get 400 naming the parameter; unknown regions and posts 404', async () => {
      const region = regions[0];
      const cases: [string, number, string | null][] = [
        [`/top-posts?region=${region}&k=0`, 400, 'k'],
        [`/top-posts?region=${region}&k=1001`, 400, 'k'],
        [`/top-posts?region=${region}&k=ten`, 400, 'k'],
        [`/top-posts?region=${region}&timeframe=2h`, 400, 'timeframe'],
        [`/top-posts?region=${region}&variant=fuzzy`, 400, 'variant'],
        [`/top-posts?region=${region}&variant=bounded&k=500`, 400, 'k'],
        [`/top-posts?k=5`, 400, 'region'],
        [`/top-posts?region=${region}&region=${region}`, 400, 'region'],
        [`/top-posts?region=nowhere-${id}`, 404, null],
        [`/posts/none-${id}/rank?region=${region}`, 404, null],
        [`/posts/post-1/rank?region=${region}&neighbours=99`, 400, 'neighbours'],
        [`/posts/%FF/rank?region=${region}`, 400, null],
        [`/posts/%/rank?region=${region}`, 400, null],
        [`/nope`, 404, null],
      ];
      for (const [url, status, param] of cases) {
        const res = await fetch(`${rt.api}${url}`);
        const body = (await res.json()) as { error: string; param?: string };
        expect(res.status, url).to.equal(status);
        expect(body.error, url).to.be.a('string').and.not.equal('');
        if (param) {
          expect(body.param, url).to.equal(param);
          expect(body.error, url).to.contain(param);
        }
      }
    });

    it('GET /posts/:id/rank gives rank, count and neighbours consistent with the Top-K', async () => {
      const region = regions[0];
      const want = truthTopK(truth[region], 10);
      const res = await fetch(`${rt.api}/posts/${want[4].post_id}/rank?region=${region}`);
      expect(res.status).to.equal(200);
      const body = (await res.json()) as { rank: number; view_count: number; neighbours: { rank: number; post_id: string; view_count: number }[] };
      expect(body.rank).to.equal(5);
      expect(body.view_count).to.equal(want[4].view_count);
      expect(body.neighbours).to.deep.equal(want.slice(2, 7).map((p, i) => ({ rank: 3 + i, ...p })));
    });

    it('GET /metrics reports consumed, dead-lettered, deduplicated, flush latency and lag per partition', async () => {
      const text = await (await fetch(`${rt.api}/metrics`)).text();
      for (const name of [
        'hh_events_consumed_total',
        'hh_events_dead_lettered_total',
        'hh_events_deduplicated_total',
        'hh_flush_duration_seconds_bucket',
        'hh_consumer_lag_records',
      ]) {
        expect(text).to.contain(name);
      }
      expect(text).to.match(/hh_consumer_lag_records\{[^}]*partition="\d+"[^}]*\} \d+/);
    });
  });
});

/** Reads at least `min` records of a topic from the beginning with a throwaway group. */
async function readTopic(kafka: Kafka, topic: string, min: number): Promise<{ value: Buffer; headers: Record<string, string> }[]> {
  const consumer = kafka.consumer({ groupId: unique('reader') });
  const got: { value: Buffer; headers: Record<string, string> }[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${got.length} of ${min} records in ${topic} after 60 s`)), 60_000);
    consumer
      .run({
        eachMessage: async ({ message }) => {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(message.headers ?? {})) if (v !== undefined) headers[k] = String(Array.isArray(v) ? v[0] : v);
          got.push({ value: message.value ?? Buffer.alloc(0), headers });
          if (got.length >= min) {
            clearTimeout(timer);
            resolve();
          }
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  return got;
}
