import { expect } from 'chai';
import { PendingCommits, type OffsetCommit } from '../../src/ingest/pending-commits';

const c = (partition: number, offset: number): OffsetCommit => ({ topic: 't', partition, offset: String(offset) });

describe('group offsets a rebalance refused (retried)', () => {
  it('retries the newest refused offset of each partition still held until it lands', async () => {
    const pending = new PendingCommits();
    pending.failed(c(0, 10));
    pending.failed(c(0, 7)); // older: the newer stays
    pending.failed(c(1, 5));
    pending.failed(c(2, 3));
    const sent: OffsetCommit[][] = [];
    // First retry: refused again (still rebalancing): everything stays.
    await pending
      .retry(new Set([0, 1, 2]), async () => {
        throw new Error('The coordinator is not aware of this member');
      })
      .catch(() => undefined);
    expect(pending.size).to.equal(3);
    // Partition 2 went to another member meanwhile (it commits its own on assignment).
    await pending.retry(new Set([0, 1]), async (o) => void sent.push(o));
    expect(sent).to.deep.equal([[c(0, 10), c(1, 5)]]);
    expect(pending.size).to.equal(0);
  });

  it('forgets a refused offset once a later commit of the partition lands', () => {
    const pending = new PendingCommits();
    pending.failed(c(4, 100));
    pending.landed(4, '99'); // older: still pending
    expect(pending.size).to.equal(1);
    pending.landed(4, '120');
    expect(pending.size).to.equal(0);
  });
});
