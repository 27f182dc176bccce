/**
 * The runtime's members share the stream's load, not only its partitions: a topic whose
 * records sit on half of its partitions (regions hashed onto the same partitions, as the
 * default region names are) is split evenly between two worker processes, also after one
 * is killed (-9) and restarted, and also when the topic had no records yet when they joined
 * (the group leader's balance check rejoins); and the counts stay exact.
 */
import { expect } from 'chai';
import { AssignerProtocol } from 'kafkajs';
import { unique } from '../helpers';
import { Isolated } from '../../scripts/harness/isolated';
import { leaderboard } from '../support/redis';
import { eventually, startRuntime, waitDrained, type Runtime } from '../../scripts/harness/runtime';

const HEAVY = 1_500;
const LIGHT = 15;

/**
 * Produces HEAVY events to each partition in `heavy`, LIGHT to the others: one region per
 * partition (`<prefix>r<p>`), 37 posts; counted into `truth`.
 */
async function loadPartitions(iso: Isolated, prefix: string, heavy: Set<number>, truth: Record<string, Record<string, number>>, tag: string) {
  const topic = iso.env.HH_KAFKA_TOPIC;
  const messages = [];
  for (let p = 0; p < 8; p++) {
    const region = `${prefix}r${p}`;
    for (let i = 0; i < (heavy.has(p) ? HEAVY : LIGHT); i++) {
      const post = `${prefix}post-${i % 37}`;
      (truth[region] ??= {})[post] = (truth[region][post] ?? 0) + 1;
      messages.push({
        partition: p,
        key: region,
        value: JSON.stringify({ event_id: `${prefix}${tag}-${p}-${i}`, post_id: post, region_id: region, timestamp: Date.now() }),
      });
    }
  }
  for (let i = 0; i < messages.length; i += 2_000) await iso.producer.send({ topic, acks: -1, messages: messages.slice(i, i + 2_000) });
}

describe('partition assignment by load (real Kafka, 2 worker processes)', function () {
  this.timeout(300_000);
  const id = unique('assign');
  const prefix = `${id}_`;
  const iso = new Isolated(id, { HH_WORKERS: '2', HH_INGEST_HEARTBEAT_TIMEOUT: '10s' });
  const env = iso.env;
  const regions = Array.from({ length: 8 }, (_, p) => `${prefix}r${p}`);
  const truth: Record<string, Record<string, number>> = {};
  let rt: Runtime | undefined;

  before(async () => {
    await iso.setUp();
  });
  after(async () => {
    await iso.tearDown(rt, regions);
  });

  /**
   * The partitions at even places of the broker's metadata order get HEAVY events each,
   * the others LIGHT: round robin hands partitions out in that order, i-th to member i mod 2,
   * so it gave one member every heavy partition (99 % of the records).
   */
  const produce = async (round: number) => {
    const order = (await iso.admin.fetchTopicMetadata({ topics: [env.HH_KAFKA_TOPIC] })).topics[0].partitions.map((x) => x.partitionId);
    await loadPartitions(iso, prefix, new Set(order.filter((_, place) => place % 2 === 0)), truth, `round${round}`);
  };

  /** Each member's share of the records on the topic, once the group is stable with both members. */
  const shares = async (): Promise<number[]> => {
    const topic = env.HH_KAFKA_TOPIC;
    const offsets = await iso.admin.fetchTopicOffsets(topic);
    const held = new Map(offsets.map((o) => [o.partition, Number(o.high) - Number(o.low)]));
    const total = [...held.values()].reduce((a, b) => a + b, 0);
    let out: number[] = [];
    await eventually(async () => {
      const g = (await iso.admin.describeGroups([env.HH_KAFKA_GROUP])).groups[0];
      expect([g?.state, g?.members.length], 'group').to.deep.equal(['Stable', 2]);
      const assigned = g.members.map((m) => AssignerProtocol.MemberAssignment.decode(m.memberAssignment)?.assignment[topic] ?? []);
      expect(
        assigned.flat().sort((a, b) => a - b),
        'every partition held once',
      ).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7]);
      out = assigned.map((ps) => ps.reduce((a, p) => a + held.get(p)!, 0) / total);
    }, 60_000);
    return out;
  };

  const expectExact = async () => {
    for (const region of regions) expect(await leaderboard(iso.redis, region), region).to.deep.equal(truth[region]);
  };

  it('splits a topic whose records sit on half of its partitions evenly between the two workers', async () => {
    await produce(1);
    rt = await startRuntime(env);
    const s = await shares();
    for (const share of s) expect(share, `shares ${s.map((x) => x.toFixed(3)).join(' / ')}`).to.be.within(0.4, 0.6);
    await waitDrained(iso.admin, env.HH_KAFKA_GROUP, env.HH_KAFKA_TOPIC);
    await expectExact();
  });

  it('splits it evenly again after a worker is killed (-9) and restarted, and stays exact', async () => {
    const victim = rt!.workers.get(1)!;
    process.kill(victim, 'SIGKILL');
    await eventually(async () => {
      expect(rt!.workers.get(1)).to.not.equal(victim);
    }, 60_000);
    await produce(2);
    const s = await shares();
    for (const share of s) expect(share, `shares ${s.map((x) => x.toFixed(3)).join(' / ')}`).to.be.within(0.4, 0.6);
    await waitDrained(iso.admin, env.HH_KAFKA_GROUP, env.HH_KAFKA_TOPIC);
    await expectExact();
  });
});

describe('rebalance by load once the load shows (real Kafka, 2 worker processes, a topic empty when they joined)', function () {
  this.timeout(300_000);
  const id = unique('rebal');
  const prefix = `${id}_`;
  const iso = new Isolated(id, { HH_WORKERS: '2', HH_INGEST_HEARTBEAT_TIMEOUT: '10s', HH_BALANCE_CHECK_INTERVAL: '3s' });
  const env = iso.env;
  const regions = Array.from({ length: 8 }, (_, p) => `${prefix}r${p}`);
  const truth: Record<string, Record<string, number>> = {};
  let rt: Runtime | undefined;

  before(async () => {
    await iso.setUp();
  });
  after(async () => {
    await iso.tearDown(rt, regions);
  });

  it('the leader rejoins and the two workers end up with even shares; counts exact', async () => {
    rt = await startRuntime(env);
    const topic = env.HH_KAFKA_TOPIC;
    // No records to weigh at the join: split by count in partition order, even ones to one member.
    const assignment = async () => {
      const g = (await iso.admin.describeGroups([env.HH_KAFKA_GROUP])).groups[0];
      expect([g?.state, g?.members.length], 'group').to.deep.equal(['Stable', 2]);
      return g.members.map((m) => (AssignerProtocol.MemberAssignment.decode(m.memberAssignment)?.assignment[topic] ?? []).sort((a, b) => a - b));
    };
    await eventually(async () => {
      expect((await assignment()).sort((a, b) => a[0] - b[0])).to.deep.equal([
        [0, 2, 4, 6],
        [1, 3, 5, 7],
      ]);
    }, 60_000);
    // Then the load arrives on the even partitions only.
    await loadPartitions(iso, prefix, new Set([0, 2, 4, 6]), truth, 'load');
    const held = new Map((await iso.admin.fetchTopicOffsets(topic)).map((o) => [o.partition, Number(o.high) - Number(o.low)]));
    const total = [...held.values()].reduce((a, b) => a + b, 0);
    let shares: number[] = [];
    await eventually(async () => {
      shares = (await assignment()).map((ps) => ps.reduce((a, p) => a + held.get(p)!, 0) / total);
      for (const share of shares) expect(share, `shares ${shares.map((x) => x.toFixed(3)).join(' / ')}`).to.be.within(0.4, 0.6);
    }, 90_000);
    expect(rt.output.join('\n')).to.match(/leaving the group to rebalance it by load: members hold \d+ \/ \d+ records/);
    await waitDrained(iso.admin, env.HH_KAFKA_GROUP, topic);
    for (const region of regions) expect(await leaderboard(iso.redis, region), region).to.deep.equal(truth[region]);
  });
});
