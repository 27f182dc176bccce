import { expect } from 'chai';
import { GroupOffsets, type OffsetCommit } from '../../src/ingest/group-offsets';

const c = (partition: number, offset: number): OffsetCommit => ({ topic: 't', partition, offset: String(offset) });
const refused = async () => {
  throw new Error('The coordinator is not aware of this member');
};

describe('group offsets kept equal to what the member applied', () => {
  it('a resume rewinds a partition (a rebuild): the lower mark is owed and refreshed, not the higher offset applied before', async () => {
    const offsets = new GroupOffsets(5_000);
    const sent: OffsetCommit[][] = [];
    const commit = async (o: OffsetCommit[]) => void sent.push(o);
    offsets.advance(c(0, 100));
    await offsets.sync(new Set([0]), 0, commit);
    offsets.rewind(c(0, 10));
    expect(offsets.owing).to.equal(1);
    await offsets.sync(new Set([0]), 1_000, commit);
    await offsets.sync(new Set([0]), 6_000, commit); // the refresh
    expect(sent).to.deep.equal([[c(0, 100)], [c(0, 10)], [c(0, 10)]]);
    offsets.advance(c(0, 11)); // the replay goes on from there
    await offsets.sync(new Set([0]), 7_000, commit);
    expect(sent.at(-1)).to.deep.equal([c(0, 11)]);
  });

  it('retries a refused commit every tick, the newest offset of each partition still held, until it lands', async () => {
    const offsets = new GroupOffsets(5_000);
    const sent: OffsetCommit[][] = [];
    const commit = async (o: OffsetCommit[]) => void sent.push(o);
    // The first sync also refreshes (nothing was ever refreshed): everything applied so far.
    await offsets.sync(new Set(), 0, commit);
    offsets.advance(c(0, 7));
    offsets.advance(c(0, 10));
    offsets.advance(c(0, 9)); // older than what was applied: ignored
    offsets.advance(c(1, 5));
    offsets.advance(c(2, 3));
    offsets.landed(2, '3'); // its own commit landed
    await offsets.sync(new Set([0, 1, 2]), 1_000, refused).catch(() => undefined);
    expect(offsets.owing).to.equal(2);
    // Partition 1 went to another member meanwhile: its new owner commits its own.
    await offsets.sync(new Set([0, 2]), 2_000, commit);
    expect(sent).to.deep.equal([[c(0, 10)]]);
    expect(offsets.owing).to.equal(0);
    await offsets.sync(new Set([0, 2]), 3_000, commit);
    expect(sent).to.have.length(1); // nothing owed, no refresh due
  });

  it('commits every held partition again once per refresh interval (another member may have overwritten it)', async () => {
    const offsets = new GroupOffsets(5_000);
    const sent: OffsetCommit[][] = [];
    const commit = async (o: OffsetCommit[]) => void sent.push(o);
    await offsets.sync(new Set([0, 1]), 0, commit); // first refresh: nothing applied yet
    offsets.advance(c(0, 100));
    offsets.advance(c(1, 50));
    offsets.landed(0, '100');
    offsets.landed(1, '50');
    await offsets.sync(new Set([0, 1]), 4_999, commit);
    expect(sent).to.deep.equal([]); // nothing owed, refresh not due
    await offsets.sync(new Set([0, 1]), 5_000, commit);
    expect(sent).to.deep.equal([[c(0, 100), c(1, 50)]]);
    await offsets.sync(new Set([0, 1]), 9_999, commit);
    await offsets.sync(new Set([0, 1]), 10_000, commit);
    expect(sent).to.deep.equal([
      [c(0, 100), c(1, 50)],
      [c(0, 100), c(1, 50)],
    ]);
  });

  it('a refused refresh is owed and retried at the next tick', async () => {
    const offsets = new GroupOffsets(5_000);
    offsets.advance(c(3, 42));
    offsets.landed(3, '42');
    await offsets.sync(new Set([3]), 0, refused).catch(() => undefined);
    expect(offsets.owing).to.equal(1);
    const sent: OffsetCommit[][] = [];
    await offsets.sync(new Set([3]), 1_000, async (o) => void sent.push(o));
    expect(sent).to.deep.equal([[c(3, 42)]]);
    expect(offsets.owing).to.equal(0);
  });

  it('forgets a refused offset once a later commit of the partition lands', () => {
    const offsets = new GroupOffsets(5_000);
    offsets.advance(c(4, 100));
    offsets.landed(4, '99'); // older: still owed
    expect(offsets.owing).to.equal(1);
    offsets.advance(c(4, 120));
    offsets.landed(4, '120');
    expect(offsets.owing).to.equal(0);
  });
});
