/**
 * Partition assignment by load. The topic is keyed by region and Kafka's default
 * partitioner hashes the key, so regions land on partitions unevenly: the default region
 * names put {SA, AF} on partition 0, {NA, EU} on 2, {APAC, OC} on 4, MEA on 1, LATAM on 6
 * and nothing on 3, 5 and 7. kafkajs's round robin hands partitions out in the broker's
 * metadata order (the i-th to member i mod n), blind to that: over random metadata orders,
 * one of two members held 6 or more of the 8 regions in 23-30 % of the cases (5.0-5.1 on
 * average; a simulation of the hash and the order, default names and random prefixes; by
 * load below: 4 each in 98.5 % of them). Here the group's leader weighs every partition
 * by the records it holds (its end offset minus its start offset: the stream's share over
 * the retention period, or a pre-loaded backlog) and hands the heaviest first to
 * the member with the least weight so far (then the fewest partitions, then member id
 * order). A topic without records yet (a fresh deployment) is balanced by partition count,
 * as round robin was; the weights apply from the next rebalance: a worker joining, leaving
 * or restarting, or the leader's own check (imbalance(), every HH_BALANCE_CHECK_INTERVAL),
 * which leaves and rejoins the group when a rebalance would lighten the most loaded member
 * by more than a fifth. If the offsets cannot be read, the weights are 0 and the
 * assignment is by count: the join never fails for it.
 */
import { AssignerProtocol, type Admin, type Assigner, type Cluster, type GroupDescription, type PartitionAssigner } from 'kafkajs';

export const LOAD_ASSIGNER = 'HeavyHittersByLoad';

export interface WeightedPartition {
  topic: string;
  partition: number;
  /** Records the partition holds. */
  weight: number;
}

/**
 * Per member id, its partitions by topic. Partitions with records go first, heaviest first,
 * each to the least loaded member (ties: fewer partitions, then member id order: the
 * longest-processing-time rule, within the heaviest partition of the optimum); then the
 * empty ones, each to the member with the fewest partitions (ties: less load, then id), so
 * a partition that gets records later is not piled onto one member. Every member gets an
 * entry, possibly empty. Pure and deterministic.
 */
export function balance(memberIds: readonly string[], partitions: readonly WeightedPartition[]): Map<string, Record<string, number[]>> {
  const members = [...memberIds].sort().map((id) => ({ id, load: 0, count: 0, topics: {} as Record<string, number[]> }));
  const order = [...partitions].sort((a, b) => b.weight - a.weight || a.topic.localeCompare(b.topic) || a.partition - b.partition);
  for (const p of order) {
    const byLoad = p.weight > 0;
    let to = members[0];
    for (const m of members) {
      const [a, b] = byLoad ? [m.load - to.load, m.count - to.count] : [m.count - to.count, m.load - to.load];
      if (a < 0 || (a === 0 && b < 0)) to = m;
    }
    to.load += p.weight;
    to.count += 1;
    (to.topics[p.topic] ??= []).push(p.partition);
  }
  for (const m of members) for (const list of Object.values(m.topics)) list.sort((a, b) => a - b);
  return new Map(members.map((m) => [m.id, m.topics]));
}

/** Each partition of `topics`, weight 0. */
function partitionsOf(cluster: Cluster, topics: readonly string[]): WeightedPartition[] {
  return topics.flatMap((topic) => cluster.findTopicPartitionMetadata(topic).map((m) => ({ topic, partition: m.partitionId, weight: 0 })));
}

/** Each partition of `topics` weighed by the records it holds. */
async function weighPartitions(cluster: Cluster, topics: readonly string[]): Promise<WeightedPartition[]> {
  const parts = partitionsOf(cluster, topics);
  const request = (fromBeginning: boolean) =>
    cluster.fetchTopicsOffset(
      topics.map((topic) => ({
        topic,
        fromBeginning,
        partitions: parts.filter((p) => p.topic === topic).map((p) => ({ partition: p.partition })),
      })),
    );
  const [ends, starts] = await Promise.all([request(false), request(true)]);
  const offsetOf = (all: typeof ends, topic: string, partition: number) =>
    Number(all.find((t) => t.topic === topic)?.partitions.find((p) => p.partition === partition)?.offset ?? 0);
  for (const p of parts) p.weight = Math.max(0, offsetOf(ends, p.topic, p.partition) - offsetOf(starts, p.topic, p.partition));
  return parts;
}

/** The records one member's partitions (of one topic) hold. */
const loadOf = (held: readonly number[], weight: ReadonlyMap<number, number>) => held.reduce((a, p) => a + (weight.get(p) ?? 0), 0);

/** The kafkajs assigner (`partitionAssigners: [loadAssigner, PartitionAssigners.roundRobin]`). */
export const loadAssigner: PartitionAssigner = ({ cluster, logger }): Assigner => ({
  name: LOAD_ASSIGNER,
  version: 0,
  async assign({ members, topics }) {
    let parts: WeightedPartition[];
    try {
      parts = await weighPartitions(cluster, topics);
    } catch (e) {
      logger.warn('partition weights unavailable: assigning by partition count', { error: (e as Error).message });
      parts = partitionsOf(cluster, topics);
    }
    const plan = balance(
      members.map((m) => m.memberId),
      parts,
    );
    const weights = new Map(topics.map((topic) => [topic, new Map(parts.filter((p) => p.topic === topic).map((p) => [p.partition, p.weight]))]));
    logger.info('partitions assigned by load', {
      members: [...plan].map(([id, t]) => ({ id, partitions: t, weight: topics.reduce((a, topic) => a + loadOf(t[topic] ?? [], weights.get(topic)!), 0) })),
    });
    return [...plan].map(([memberId, assignment]) => ({
      memberId,
      memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 0, assignment, userData: Buffer.alloc(0) }),
    }));
  },
  protocol({ topics }) {
    return { name: LOAD_ASSIGNER, metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }) };
  },
});

/**
 * The members' records under `current` (each member's partitions of one topic) when a
 * rebalance would lighten the most loaded one by more than a fifth (against the most loaded
 * one under balance()), else undefined. A topic with fewer than `minRecords` records is too
 * young to weigh.
 */
export function worthRebalancing(current: readonly (readonly number[])[], partitions: readonly WeightedPartition[], minRecords = 1_000): number[] | undefined {
  const weight = new Map(partitions.map((p) => [p.partition, p.weight]));
  const total = partitions.reduce((a, p) => a + p.weight, 0);
  if (total < minRecords || current.length < 2) return undefined;
  const loads = current.map((held) => loadOf(held, weight));
  const plan = balance(
    current.map((_, i) => `m${String(i).padStart(4, '0')}`),
    partitions,
  );
  const best = Math.max(...[...plan.values()].map((t) => loadOf(Object.values(t).flat(), weight)));
  return Math.max(...loads) > 1.2 * best ? loads : undefined;
}

/** Each member's partitions of `topic` in a described group, sorted (empty for a member with no assignment yet). */
export function membersPartitions(group: GroupDescription, topic: string): number[][] {
  return group.members.map((m) => {
    const assignment = m.memberAssignment.length ? AssignerProtocol.MemberAssignment.decode(m.memberAssignment)?.assignment : undefined;
    return [...(assignment?.[topic] ?? [])].sort((a, b) => a - b);
  });
}

/** The partitions of `all` that no member holds under `current`, in order. */
export function unheld(current: readonly (readonly number[])[], all: readonly number[]): number[] {
  const held = new Set(current.flat());
  return all.filter((p) => !held.has(p)).sort((a, b) => a - b);
}

/**
 * The group leader's check (consumer.ts, every HH_BALANCE_CHECK_INTERVAL): why the stable
 * group should rebalance, else undefined. Either partitions of `topic` no member holds —
 * kafkajs assigns only the partitions it knew of at the join and never notices more (added
 * to the topic since, or not yet in the metadata the leader read): nothing would ever read
 * them — or members holding the records unevenly enough that a rebalance by load is worth
 * its pause (worthRebalancing).
 */
export async function imbalance(admin: Admin, groupId: string, topic: string): Promise<string | undefined> {
  const group = (await admin.describeGroups([groupId])).groups[0];
  // Only where this assigner decides (a member of an older version makes it round robin, and a rejoin would change nothing).
  if (group?.state !== 'Stable' || group.protocol !== LOAD_ASSIGNER) return undefined;
  const current = membersPartitions(group, topic);
  const partitions = (await admin.fetchTopicOffsets(topic)).map((o) => ({
    topic,
    partition: o.partition,
    weight: Math.max(0, Number(o.high) - Number(o.low)),
  }));
  const missing = unheld(
    current,
    partitions.map((p) => p.partition),
  );
  if (missing.length) return `to assign partitions ${missing.join(',')}, which no member holds`;
  const loads = worthRebalancing(current, partitions);
  return loads && `by load: members hold ${loads.join(' / ')} records`;
}
