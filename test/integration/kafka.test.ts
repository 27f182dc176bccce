import { expect } from 'chai';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { cfg, unique } from '../helpers';
import { kafkaSasl } from '../../src/clients';

describe('kafka (real broker, KRaft)', function () {
  this.timeout(60_000);
  const kafka = new Kafka({ clientId: 'hh-test', brokers: [...cfg.kafka.brokers], sasl: kafkaSasl(cfg, 'admin'), logLevel: logLevel.NOTHING });
  let admin: Admin;
  const topic = unique('test.views');

  before(async () => {
    admin = kafka.admin();
    await admin.connect();
  });
  after(async () => {
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
  });

  it('has the bootstrapped topics with their partition counts', async () => {
    const meta = await admin.fetchTopicMetadata({ topics: [cfg.kafka.topic, cfg.kafka.deadLetterTopic, cfg.kafka.lateTopic] });
    const parts = Object.fromEntries(meta.topics.map((t) => [t.name, t.partitions.length]));
    expect(parts[cfg.kafka.topic]).to.be.at.least(cfg.kafka.partitions);
    expect(parts[cfg.kafka.deadLetterTopic]).to.be.at.least(1);
    expect(parts[cfg.kafka.lateTopic]).to.be.at.least(1);
  });

  it('delivers keyed messages through a consumer group, each key to one partition in order', async () => {
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 4, replicationFactor: 1 }] });
    const producer = kafka.producer();
    await producer.connect();
    const sent = Array.from({ length: 40 }, (_, i) => ({ key: `region-${i % 4}`, value: JSON.stringify({ seq: i }) }));
    await producer.send({ topic, messages: sent });
    await producer.disconnect();

    const consumer = kafka.consumer({ groupId: unique('g') });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const got: { key: string; partition: number; seq: number }[] = [];
    await new Promise<void>((resolve, reject) => {
      consumer
        .run({
          eachMessage: async ({ partition, message }) => {
            got.push({ key: message.key!.toString(), partition, seq: (JSON.parse(message.value!.toString()) as { seq: number }).seq });
            if (got.length === sent.length) resolve();
          },
        })
        .catch(reject);
    });
    await consumer.disconnect();

    expect(got).to.have.length(40);
    for (const key of ['region-0', 'region-1', 'region-2', 'region-3']) {
      const mine = got.filter((g) => g.key === key);
      expect(new Set(mine.map((m) => m.partition)).size).to.equal(1);
      const seqs = mine.map((m) => m.seq);
      expect(seqs).to.deep.equal([...seqs].sort((a, b) => a - b));
    }
  });
});
