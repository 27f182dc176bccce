/**
 * The comparison consumers of the ingest benchmark, each its own consumer group reading
 * the same pre-loaded topic from the beginning:
 *  - limit: a bare kafkajs consumer that only decodes the JSON values;
 *  - naive: the seed's exact strategy, one ZINCRBY round trip per event;
 *  - naive pipelined: the same ZINCRBYs, pipelined per partition batch.
 * Each returns events/s from its first message to its last.
 */
import type { Redis } from 'ioredis';
import type { Kafka } from 'kafkajs';

export interface ConsumerRun {
  events: number;
  ms: number;
  eps: number;
}

const CONSUMER = { sessionTimeout: 15_000, heartbeatInterval: 3_000, maxBytesPerPartition: 2 * 1024 * 1024, maxWaitTimeInMs: 200 };

/** Runs `handle` over the first `events` records of `topic` (all partitions, from the beginning). */
async function consume(kafka: Kafka, topic: string, groupId: string, events: number, handle: (values: Buffer[]) => Promise<void> | void): Promise<ConsumerRun> {
  const consumer = kafka.consumer({ groupId, ...CONSUMER });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let seen = 0;
  let first = 0;
  let last = 0;
  const done = new Promise<void>((resolve, reject) => {
    consumer
      .run({
        autoCommit: true,
        partitionsConsumedConcurrently: 8,
        eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
          if (seen >= events || batch.messages.length === 0) return;
          if (first === 0) first = performance.now();
          const take = batch.messages.slice(0, events - seen);
          await handle(take.map((m) => m.value!));
          seen += take.length;
          resolveOffset(take[take.length - 1].offset);
          if (seen >= events) {
            last = performance.now();
            resolve();
          }
          await heartbeat();
        },
      })
      .catch(reject);
  });
  await done;
  await consumer.disconnect();
  const ms = last - first;
  return { events: seen, ms, eps: (seen / ms) * 1000 };
}

/** (a) The limit: read and JSON-decode every value, nothing else. */
export function limitConsumer(kafka: Kafka, topic: string, groupId: string, events: number): Promise<ConsumerRun> {
  let sink = 0;
  return consume(kafka, topic, groupId, events, (values) => {
    for (const v of values) sink += (JSON.parse(v.toString('utf8')) as { post_id: string }).post_id.length;
    if (sink < 0) throw new Error('unreachable');
  });
}

/** (c) The seed's naive exact strategy: one ZINCRBY per event, each waiting for its reply. */
export function naiveConsumer(kafka: Kafka, redis: Redis, topic: string, groupId: string, events: number, keyPrefix: string): Promise<ConsumerRun> {
  return consume(kafka, topic, groupId, events, async (values) => {
    for (const v of values) {
      const e = JSON.parse(v.toString('utf8')) as { post_id: string; region_id: string };
      await redis.zincrby(`${keyPrefix}:${e.region_id}`, 1, e.post_id);
    }
  });
}

/** (c2) The same ZINCRBYs, one pipeline per partition batch. */
export function naivePipelinedConsumer(kafka: Kafka, redis: Redis, topic: string, groupId: string, events: number, keyPrefix: string): Promise<ConsumerRun> {
  return consume(kafka, topic, groupId, events, async (values) => {
    const p = redis.pipeline();
    for (const v of values) {
      const e = JSON.parse(v.toString('utf8')) as { post_id: string; region_id: string };
      p.zincrby(`${keyPrefix}:${e.region_id}`, 1, e.post_id);
    }
    await p.exec();
  });
}
