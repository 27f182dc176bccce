import { expect } from 'chai';
import { types } from 'cassandra-driver';
import { encodeCounts } from '../../src/store/record';
import { COUNTS_TYPE as COUNTS, driverEncoder } from '../support/cassandra-wire';

// The driver's own encoder: the record's hand-written encoding must be byte for byte what it writes.
describe('record: the counts map as Cassandra carries it', () => {
  const posts = ['p1', 'ünïcødé-☃', '', 'x'.repeat(300), 'big', 'neg'];
  const counts = [1, 42, 0, 7, 2 ** 40 + 5, -3];

  for (const version of [3, 4]) {
    it(`is byte for byte the driver's encoding of a Map of Longs (protocol v${version}), and decodes back`, () => {
      const enc = driverEncoder(version);
      const mine = encodeCounts(posts, counts);
      const theirs = enc.encode(new Map(posts.map((p, i) => [p, types.Long.fromNumber(counts[i])])), COUNTS);
      expect(mine.equals(theirs)).to.equal(true);
      const back = enc.decode(mine, COUNTS);
      expect([...back].map(([p, c]) => [p, Number(c)])).to.deep.equal(posts.map((p, i) => [p, counts[i]]));
    });
  }

  it('refuses a count that is not an integer', () => {
    expect(() => encodeCounts(['a'], [1.5])).to.throw(RangeError, /not an integer/);
    expect(() => encodeCounts(['a'], [NaN])).to.throw(RangeError);
  });
});
