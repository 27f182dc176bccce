import { expect } from 'chai';
import * as sinon from 'sinon';
import type { Admin } from 'kafkajs';
import { committedRecords, retryRetriable } from '../../scripts/harness/runtime';

/** What kafkajs throws while a group's coordinator moves or loads. */
const notCoordinator = () => Object.assign(new Error('This is not the correct coordinator for this group'), { retriable: true });

describe('bench and test harness: the group offsets it reads', () => {
  it('sums a group’s committed offsets, asking again while Kafka answers with a retriable error', async () => {
    // The bench's (b) phase failed on this answer (a new group under load) and left its runtime running.
    const fetchOffsets = sinon.stub();
    fetchOffsets.onCall(0).rejects(notCoordinator());
    fetchOffsets.onCall(1).rejects(notCoordinator());
    fetchOffsets.resolves([
      {
        topic: 't',
        partitions: [
          { partition: 0, offset: '40' },
          { partition: 1, offset: '2' },
          { partition: 2, offset: '-1' },
        ],
      },
    ]);
    const admin = { fetchOffsets } as unknown as Admin;
    expect(await committedRecords(admin, 'g', 't')).to.equal(42);
    expect(fetchOffsets.callCount).to.equal(3);
  });

  it('throws a non-retriable error at once, and a retriable one after its timeout', async () => {
    const fatal = sinon.stub().rejects(new Error('Not authorized to access group'));
    await retryRetriable(fatal, 5_000, 1).then(
      () => expect.fail('resolved'),
      (e: Error) => expect(e.message).to.match(/Not authorized/),
    );
    expect(fatal.callCount).to.equal(1);
    const stuck = sinon.stub().rejects(notCoordinator());
    await retryRetriable(stuck, 30, 5).then(
      () => expect.fail('resolved'),
      (e: Error) => expect(e.message).to.match(/not the correct coordinator/),
    );
    expect(stuck.callCount).to.be.greaterThan(1);
  });
});
