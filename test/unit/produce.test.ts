import { expect } from 'chai';
import * as sinon from 'sinon';
import type { Producer } from 'kafkajs';
import { produceLoad } from '../../src/load/produce';
import { chunkByBytes, PRODUCE_CHUNK_BYTES, recordBytes } from '../../src/produce-chunked';

describe('producing', () => {
  it('the load generator retries a send until Kafka acknowledges it (a broker restart loses no event of the truth)', async () => {
    const sent: string[] = [];
    let failures = 3;
    const send = sinon.stub().callsFake(async ({ messages }: { messages: { value: string }[] }) => {
      if (failures-- > 0) throw new Error('Connection error: connect ECONNREFUSED 127.0.0.1:9092');
      for (const m of messages) sent.push((JSON.parse(m.value) as { event_id: string }).event_id);
    });
    const retries: number[] = [];
    const res = await produceLoad({ send } as unknown as Producer, {
      events: 50,
      regions: 2,
      posts: 10,
      zipf: 1.1,
      seed: 3,
      topic: 't',
      rate: 0,
      batchSize: 10,
      onRetry: (_e, attempt) => retries.push(attempt),
    });
    expect(res.sent).to.equal(50);
    expect(new Set(sent).size).to.equal(50);
    expect(retries).to.have.length(3); // sends in flight each retried their own failure
    const counted = Object.values(res.truth).reduce((a, posts) => a + Object.values(posts).reduce((x, y) => x + y, 0), 0);
    expect(counted).to.equal(50);
  });

  it('splits a batch into produce requests of at most the chunk size; a record larger than it goes alone', () => {
    const msg = (bytes: number) => ({ key: 'NA', value: 'x'.repeat(bytes), headers: { 'dlq-reason': 'value is not valid JSON' } });
    const messages = Array.from({ length: 20_000 }, () => msg(100)); // about 2.7 MB with headers
    const chunks = chunkByBytes(messages);
    expect(chunks.flat()).to.have.length(20_000);
    for (const c of chunks) expect(c.reduce((a, m) => a + recordBytes(m), 0)).to.be.at.most(PRODUCE_CHUNK_BYTES);
    expect(chunks.length).to.be.greaterThan(4);
    const big = chunkByBytes([msg(10), msg(PRODUCE_CHUNK_BYTES * 2), msg(10)]);
    expect(big.map((c) => c.length)).to.deep.equal([1, 1, 1]);
  });
});
