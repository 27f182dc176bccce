/**
 * The runtime's members share the stream's load, not only its partitions: a topic whose
 * records sit on half of its partitions (regions hashed onto the same partitions, as the
 * default region names are) is split evenly between two worker processes, also after one
 * is killed (-9) and restarted, and also when the topic had no records yet when they joined
 * (the group leader's balance check rejoins); partitions added to the topic while the group
 * runs are read (the same check rejoins: kafkajs never notices them); and the counts stay exact.
 */
import { expect } from 'chai';
import type { Producer } from 'kafkajs';
import { membersPartitions } from '../../src/ingest/assigner';
import { runIngest } from '../../src/ingest/consumer';
import { ActorSystem } from '../../src/actors/region-actor';
import { opsRedis } from '../../src/clients';
import { loadConfig } from '../../src/config';
import { createMetrics } from '../../src/metrics';
import type { RegionRecord } from '../../src/store/record';
import { unique } from '../helpers';
import { Isolated } from '../../scripts/harness/isolated';
import { leaderboard } from '../support/redis';
import { committedRecords, eventually, startRuntime, waitDrained, type Runtime } from '../../scripts/harness/runtime';

const HEAVY = 1_500;
const LIGHT = 15;

/**
 * One suite's own topic, group and stores (set up and removed by mocha hooks), its
 * runtime, and the truth of what it produced: one region per partition (`<prefix>r<p>`).
 */
function assignmentSuite(name: string, extraEnv: Record<string, string>, partitions = 8) {
  const id = unique(name);
  const prefix = `${id}_`;
  const iso = new Isolated(id, { HH_WORKERS: '2', HH_INGEST_HEARTBEAT_TIMEOUT: '10s', ...extraEnv }, partitions);
  const topic = iso.env.HH_KAFKA_TOPIC;
  const regions = Array.from({ length: 8 }, (_, p) => `${prefix}r${p}`);
  const truth: Record<string, Record<string, number>> = {};
  before(async () => {
    await iso.setUp();
  });
  after(async () => {
    await iso.tearDown(suite.rt, regions);
  });
  const suite = {
    iso,
    topic,
    rt: undefined as Runtime | undefined,
    /** `many` events (HEAVY) to each partition in `heavy`, LIGHT to the others, 37 posts; counted into the truth. */
    async load(heavy: Set<number>, tag: string, many = HEAVY) {
      const messages = [];
      for (const [p, region] of regions.entries()) {
        for (let i = 0; i < (heavy.has(p) ? many : LIGHT); i++) {
          const post = `${prefix}post-${i % 37}`;
          (truth[region] ??= {})[post] = (truth[region][post] ?? 0) + 1;
          messages.push({
            partition: p,
            key: region,
            value: JSON.stringify({ event_id: `${prefix}${tag}-${p}-${i}`, post_id: post, region_id: region, timestamp: Date.now() }),
          });
        }
      }
      for (let i = 0; i < messages.length; i += 5_000) await iso.producer.send({ topic, acks: -1, messages: messages.slice(i, i + 5_000) });
    },
    /**
     * The stable group's members' partitions (each sorted) and their shares of the records
     * the topic holds now; fails (for `eventually`) while the group is not stable with both.
     */
    async group(): Promise<{ assigned: number[][]; shares: number[] }> {
      const held = new Map((await iso.admin.fetchTopicOffsets(topic)).map((o) => [o.partition, Number(o.high) - Number(o.low)]));
      const total = [...held.values()].reduce((a, b) => a + b, 0);
      const g = (await iso.admin.describeGroups([iso.env.HH_KAFKA_GROUP])).groups[0];
      expect([g?.state, g?.members.length], 'group').to.deep.equal(['Stable', 2]);
      const assigned = membersPartitions(g, topic);
      expect(
        assigned.flat().sort((a, b) => a - b),
        'every partition held once',
      ).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7]);
      return { assigned, shares: assigned.map((ps) => ps.reduce((a, p) => a + held.get(p)!, 0) / total) };
    },
    /** Waits until each member holds 40-60 % of the records. */
    async expectEvenShares(timeoutMs: number) {
      await eventually(async () => {
        const { shares } = await suite.group();
        for (const share of shares) expect(share, `shares ${shares.map((x) => x.toFixed(3)).join(' / ')}`).to.be.within(0.4, 0.6);
      }, timeoutMs);
    },
    /** Drained, and every region's whole leaderboard equals the truth. */
    async expectExact() {
      await waitDrained(iso.admin, iso.env.HH_KAFKA_GROUP, topic);
      for (const region of regions) expect(await leaderboard(iso.redis, region), region).to.deep.equal(truth[region]);
    },
  };
  return suite;
}

describe('partition assignment by load (real Kafka, 2 worker processes)', function () {
  this.timeout(300_000);
  const s = assignmentSuite('assign', {});

  /**
   * The partitions at even places of the broker's metadata order get HEAVY events each,
   * the others LIGHT: round robin hands partitions out in that order, i-th to member i mod 2,
   * so it gave one member every heavy partition (99 % of the records).
   */
  const produce = async (round: number) => {
    const order = (await s.iso.admin.fetchTopicMetadata({ topics: [s.topic] })).topics[0].partitions.map((x) => x.partitionId);
    await s.load(new Set(order.filter((_, place) => place % 2 === 0)), `round${round}`);
  };

  it('splits a topic whose records sit on half of its partitions evenly between the two workers', async () => {
    await produce(1);
    s.rt = await startRuntime(s.iso.env);
    await s.expectEvenShares(60_000);
    await s.expectExact();
  });

  it('splits it evenly again after a worker is killed (-9) and restarted, and stays exact', async () => {
    const victim = s.rt!.workers.get(1)!;
    process.kill(victim, 'SIGKILL');
    await eventually(async () => {
      expect(s.rt!.workers.get(1)).to.not.equal(victim);
    }, 60_000);
    await produce(2);
    await s.expectEvenShares(60_000);
    await s.expectExact();
  });
});

describe('rebalance by load once the load shows (real Kafka, 2 worker processes, a topic empty when they joined)', function () {
  this.timeout(300_000);
  const s = assignmentSuite('rebal', { HH_BALANCE_CHECK_INTERVAL: '3s' });

  it('the leader rejoins and the two workers end up with even shares; counts exact', async () => {
    const rt = (s.rt = await startRuntime(s.iso.env));
    // No records to weigh at the join: split by count in partition order, even ones to one member.
    await eventually(async () => {
      expect((await s.group()).assigned.sort((a, b) => a[0] - b[0])).to.deep.equal([
        [0, 2, 4, 6],
        [1, 3, 5, 7],
      ]);
    }, 60_000);
    // Then the load arrives on the even partitions only.
    await s.load(new Set([0, 2, 4, 6]), 'load');
    await s.expectEvenShares(90_000);
    expect(rt.output.join('\n')).to.match(/leaving the group to rebalance it by load: members hold \d+ \/ \d+ records/);
    await s.expectExact();
  });
});

describe('partitions added to a running topic are read (real Kafka, 1 worker process)', function () {
  this.timeout(300_000);
  const s = assignmentSuite('grow', { HH_WORKERS: '1', HH_BALANCE_CHECK_INTERVAL: '3s' }, 2);
  const held = async () => {
    const g = (await s.iso.admin.describeGroups([s.iso.env.HH_KAFKA_GROUP])).groups[0];
    expect(g?.state, 'group').to.equal('Stable');
    return membersPartitions(g, s.topic)
      .flat()
      .sort((a, b) => a - b);
  };

  it('the leader rejoins when partitions are held by no member (kafkajs assigns only those it knew at the join); counts exact', async () => {
    const rt = (s.rt = await startRuntime(s.iso.env));
    await eventually(async () => {
      expect(await held()).to.deep.equal([0, 1]);
    }, 60_000);
    // Six more partitions; kafkajs's own metadata refresh never rejoins the group for them.
    await s.iso.admin.createPartitions({ topicPartitions: [{ topic: s.topic, count: 8 }] });
    await eventually(async () => {
      const { topics } = await s.iso.admin.fetchTopicMetadata({ topics: [s.topic] });
      expect(topics[0].partitions.filter((p) => p.leader >= 0).length, 'partitions with a leader').to.equal(8);
    }, 30_000);
    // The producer's send refreshes its metadata for the partitions it did not know (a retriable error).
    await s.load(new Set([2, 5]), 'grown');
    await eventually(async () => {
      expect(await held()).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7]);
    }, 90_000);
    expect(rt.output.join('\n')).to.match(/leaving the group to rebalance it to assign partitions [\d,]+, which no member holds/);
    await s.expectExact();
  });
});

/** A Prometheus counter's value in a /metrics text. */
const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);

/** `perPartition` events in every partition, then the suite's runtime started on them; resolves once it committed its first batch. */
async function backlogRuntime(s: ReturnType<typeof assignmentSuite>, perPartition: number): Promise<Runtime> {
  await s.load(new Set([0, 1, 2, 3, 4, 5, 6, 7]), 'backlog', perPartition);
  const rt = (s.rt = await startRuntime(s.iso.env));
  await eventually(async () => {
    expect(await committedRecords(s.iso.admin, s.iso.env.HH_KAFKA_GROUP, s.topic)).to.be.greaterThan(0);
  }, 60_000);
  return rt;
}

describe('a rebalance while a backlog is read (real Kafka, 1 worker process and a member joining and leaving)', function () {
  this.timeout(300_000);
  const s = assignmentSuite('reread', { HH_WORKERS: '1' });

  it('the worker reads no record twice: the partitions it keeps go on from where it got to, those it gets back from what Redis applied; counts exact', async () => {
    // 50,000 events in every partition: a backlog of some seconds for one worker.
    const rt = await backlogRuntime(s, 50_000);
    const group = s.iso.env.HH_KAFKA_GROUP;
    // A second member joins while the worker has batches in flight (it takes some partitions,
    // paused: it reads nothing), stays a few seconds and leaves: two rebalances mid-backlog.
    const rogue = s.iso.kafka.consumer({ groupId: group, sessionTimeout: 10_000, heartbeatInterval: 1_000 });
    let took: number[] = [];
    const joined = new Promise<void>((r) =>
      rogue.on(rogue.events.GROUP_JOIN, (e) => {
        took = e.payload.memberAssignment[s.topic] ?? [];
        r();
      }),
    );
    await rogue.connect();
    try {
      await rogue.subscribe({ topic: s.topic });
      await rogue.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: async () => undefined });
      await joined;
      rogue.pause([{ topic: s.topic }]);
      expect(took.length, 'partitions the joining member took').to.be.within(1, 7);
      await new Promise((r) => setTimeout(r, 3_000));
    } finally {
      await rogue.disconnect();
    }
    const end = (await s.iso.admin.fetchTopicOffsets(s.topic)).reduce((a, p) => a + Number(p.high), 0);
    expect(await committedRecords(s.iso.admin, group, s.topic), 'the rebalances fell inside the backlog').to.be.lessThan(end);
    await s.expectExact();
    const text = await (await fetch(`${rt.api}/metrics`)).text();
    expect(metric(text, 'hh_events_applied_total')).to.equal(end);
    expect(metric(text, 'hh_events_consumed_total'), 'records read').to.equal(end);
  });
});

describe('a member joining while another reads a backlog (real Kafka, 1 worker process and a member run in this process)', function () {
  this.timeout(300_000);
  const s = assignmentSuite('handoff', { HH_WORKERS: '1' });

  it('no record is read twice: the partitions it takes over resume once the batches the worker had in flight are applied; counts exact', async () => {
    // 80,000 events in every partition: a backlog of several seconds for one worker.
    const rt = await backlogRuntime(s, 80_000);
    // A second ingest member (the runtime's own code, real Kafka and Redis) joins the group
    // while the worker has batches in flight, takes its share and reads it to the end.
    const cfg = loadConfig({ ...process.env, ...s.iso.env });
    const redis = opsRedis(cfg, cfg.redis.db);
    const metrics = createMetrics();
    const stop = new AbortController();
    const member = runIngest(
      {
        cfg,
        kafka: s.iso.kafka,
        producer: {} as Producer,
        actors: new ActorSystem(redis, cfg.ingest, metrics),
        redis,
        record: {} as RegionRecord,
        metrics,
        log: () => undefined,
      },
      stop.signal,
    );
    try {
      const end = (await s.iso.admin.fetchTopicOffsets(s.topic)).reduce((a, p) => a + Number(p.high), 0);
      let took = 0;
      await eventually(async () => {
        took = metric(await metrics.registry.metrics(), 'hh_events_consumed_total');
        expect(took, 'records the joining member read').to.be.greaterThan(0);
      }, 60_000);
      await s.expectExact();
      const text = await (await fetch(`${rt.api}/metrics`)).text();
      const mine = await metrics.registry.metrics();
      expect(metric(text, 'hh_events_applied_total') + metric(mine, 'hh_events_applied_total')).to.equal(end);
      expect(metric(text, 'hh_events_consumed_total') + metric(mine, 'hh_events_consumed_total'), 'records read').to.equal(end);
    } finally {
      stop.abort();
      await member.catch(() => undefined);
      redis.disconnect();
    }
  });
});
