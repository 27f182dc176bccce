import { expect } from 'chai';
import { balance, unheld, worthRebalancing, type WeightedPartition } from '../../src/ingest/assigner';

// Kafka's default partitioner hash (kafkajs's own module: the one the producers use).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const murmur2 = require('kafkajs/src/producer/partitioners/default/murmur2') as (key: Buffer) => number;

const T = 'views';
const loads = (plan: Map<string, Record<string, number[]>>, parts: WeightedPartition[]) =>
  [...plan.values()].map((t) => (t[T] ?? []).reduce((a, p) => a + parts.find((x) => x.partition === p)!.weight, 0));

describe('partition assignment by load (assigner.ts)', () => {
  it("spreads the default regions' partitions evenly: four regions each", () => {
    // Kafka's default partitioner (murmur2 of the key) puts the eight default regions on
    // five of eight partitions; each region carries the same load here.
    const names = ['NA', 'EU', 'APAC', 'LATAM', 'MEA', 'SA', 'OC', 'AF'];
    const parts: WeightedPartition[] = Array.from({ length: 8 }, (_, partition) => ({ topic: T, partition, weight: 0 }));
    for (const n of names) parts[(murmur2(Buffer.from(n)) & 0x7fffffff) % 8].weight += 1000;
    expect(parts.map((p) => p.weight)).to.deep.equal([2000, 1000, 2000, 0, 2000, 0, 1000, 0]);
    const plan = balance(['m-b', 'm-a'], parts);
    expect(loads(plan, parts)).to.deep.equal([4000, 4000]);
    // Every partition is assigned exactly once; the empty ones are spread too.
    const all = [...plan.values()].flatMap((t) => t[T] ?? []).sort((a, b) => a - b);
    expect(all).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7]);
    expect([...plan.values()].map((t) => t[T].length)).to.deep.equal([4, 4]);
  });

  it('without records, assigns by count in partition order (as round robin did)', () => {
    const parts = Array.from({ length: 8 }, (_, partition) => ({ topic: T, partition, weight: 0 }));
    const plan = balance(['b', 'a', 'c'], parts);
    expect(Object.fromEntries(plan)).to.deep.equal({ a: { [T]: [0, 3, 6] }, b: { [T]: [1, 4, 7] }, c: { [T]: [2, 5] } });
  });

  it('gives every member an entry, with more members than partitions', () => {
    const plan = balance(['x', 'y', 'z'], [{ topic: T, partition: 0, weight: 5 }]);
    expect(Object.fromEntries(plan)).to.deep.equal({ x: { [T]: [0] }, y: {}, z: {} });
  });

  it('keeps the members within the heaviest partition of each other, over many random loads, and is deterministic', () => {
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let run = 0; run < 500; run++) {
      const n = 1 + Math.floor(rand() * 24);
      const parts = Array.from({ length: n }, (_, partition) => ({ topic: T, partition, weight: rand() < 0.3 ? 0 : Math.floor(rand() * 10_000) }));
      const members = Array.from({ length: 1 + Math.floor(rand() * 4) }, (_, i) => `member-${i}`);
      const plan = balance(members, parts);
      const l = loads(plan, parts);
      expect(Math.max(...l) - Math.min(...l)).to.be.at.most(Math.max(...parts.map((p) => p.weight)));
      expect(Object.fromEntries(balance([...members].reverse(), [...parts].reverse()))).to.deep.equal(Object.fromEntries(plan));
    }
  });

  it('asks for a rebalance only when it would lighten the busiest member by more than a fifth, on a topic with records to weigh', () => {
    const even = [1500, 15, 1500, 15, 1500, 15, 1500, 15];
    const cases: [string, number[][], number[], boolean][] = [
      [
        "a fresh topic's by-count split, then its load shows on the even partitions",
        [
          [0, 2, 4, 6],
          [1, 3, 5, 7],
        ],
        even,
        true,
      ],
      [
        'already by load: nothing to gain',
        [
          [0, 2, 5, 7],
          [1, 3, 4, 6],
        ],
        even,
        false,
      ],
      [
        'within a fifth of the best split (1,000 against 900): not worth a pause',
        [
          [0, 1],
          [2, 3],
        ],
        [500, 500, 400, 400],
        false,
      ],
      [
        'too few records to weigh',
        [
          [0, 2],
          [1, 3],
        ],
        [400, 0, 400, 0],
        false,
      ],
      ['a lone member', [[0, 1, 2, 3]], [5000, 0, 0, 0], false],
    ];
    for (const [why, current, weights, want] of cases) {
      const loads = worthRebalancing(
        current,
        weights.map((weight, partition) => ({ topic: T, partition, weight })),
      );
      expect(loads !== undefined, why).to.equal(want);
    }
    // What it reports: the members' records as they stand.
    expect(
      worthRebalancing(
        [
          [0, 2, 4, 6],
          [1, 3, 5, 7],
        ],
        even.map((weight, partition) => ({ topic: T, partition, weight })),
      ),
    ).to.deep.equal([6000, 60]);
  });

  it('unheld: the partitions no member holds (added since the join, or not in the metadata the leader read)', () => {
    expect(unheld([[0], [1]], [0, 1, 2, 3])).to.deep.equal([2, 3]);
    expect(unheld([[3, 1], []], [3, 2, 1, 0])).to.deep.equal([0, 2]);
    expect(unheld([[0, 1, 2, 3]], [0, 1, 2, 3])).to.deep.equal([]);
    expect(unheld([], [0, 1])).to.deep.equal([0, 1]);
  });
});
