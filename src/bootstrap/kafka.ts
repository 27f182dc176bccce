/** Idempotent creation of the Kafka topics the pipeline uses. */
import { Kafka, logLevel } from 'kafkajs';
import type { Config } from '../config';

export interface TopicSpec {
  topic: string;
  numPartitions: number;
}

export function topicSpecs(cfg: Config): TopicSpec[] {
  return [
    { topic: cfg.kafka.topic, numPartitions: cfg.kafka.partitions },
    { topic: cfg.kafka.deadLetterTopic, numPartitions: 1 },
    { topic: cfg.kafka.lateTopic, numPartitions: 1 },
  ];
}

/**
 * Creates missing topics and grows a topic that has fewer partitions than asked
 * (Kafka cannot shrink one; more partitions than configured is reported, not changed).
 */
export async function ensureTopics(cfg: Config, specs: TopicSpec[] = topicSpecs(cfg)): Promise<string[]> {
  const kafka = new Kafka({ clientId: 'heavy-hitters-bootstrap', brokers: [...cfg.kafka.brokers], logLevel: logLevel.WARN });
  const admin = kafka.admin();
  const notes: string[] = [];
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = specs.filter((s) => !existing.has(s.topic));
    if (missing.length) {
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((s) => ({ topic: s.topic, numPartitions: s.numPartitions, replicationFactor: 1 })),
      });
      notes.push(...missing.map((s) => `created topic ${s.topic} (${s.numPartitions} partitions)`));
    }
    const present = specs.filter((s) => existing.has(s.topic));
    if (present.length) {
      const meta = await admin.fetchTopicMetadata({ topics: present.map((s) => s.topic) });
      for (const t of meta.topics) {
        const want = present.find((s) => s.topic === t.name)!.numPartitions;
        if (t.partitions.length < want) {
          await admin.createPartitions({ topicPartitions: [{ topic: t.name, count: want }] });
          notes.push(`grew topic ${t.name} from ${t.partitions.length} to ${want} partitions`);
        } else if (t.partitions.length > want) {
          notes.push(`topic ${t.name} has ${t.partitions.length} partitions, more than the ${want} configured (left as is)`);
        }
      }
    }
  } finally {
    await admin.disconnect();
  }
  return notes;
}
