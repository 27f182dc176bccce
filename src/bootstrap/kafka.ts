/** Idempotent creation of the Kafka topics the pipeline uses. */
import { ConfigResourceTypes, Kafka, logLevel } from 'kafkajs';
import type { Config } from '../config';

export interface TopicSpec {
  topic: string;
  numPartitions: number;
  /** Topic-level settings (created with them, set again on an existing topic). */
  configs?: Record<string, string>;
}

/**
 * The dead-letter and late topics take a copy of any record of the event topic plus the
 * headers saying why: their records may be a little larger than the event topic's limit.
 */
export const SIDE_TOPIC_CONFIGS = { 'max.message.bytes': String(2 * 1024 * 1024) };

export function topicSpecs(cfg: Config): TopicSpec[] {
  return [
    { topic: cfg.kafka.topic, numPartitions: cfg.kafka.partitions },
    { topic: cfg.kafka.deadLetterTopic, numPartitions: 1, configs: SIDE_TOPIC_CONFIGS },
    { topic: cfg.kafka.lateTopic, numPartitions: 1, configs: SIDE_TOPIC_CONFIGS },
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
        topics: missing.map((s) => ({
          topic: s.topic,
          numPartitions: s.numPartitions,
          replicationFactor: 1,
          configEntries: Object.entries(s.configs ?? {}).map(([name, value]) => ({ name, value })),
        })),
      });
      notes.push(...missing.map((s) => `created topic ${s.topic} (${s.numPartitions} partitions)`));
    }
    const present = specs.filter((s) => existing.has(s.topic));
    const configured = present.filter((s) => s.configs);
    if (configured.length) {
      const have = await admin.describeConfigs({
        includeSynonyms: false,
        resources: configured.map((s) => ({ type: ConfigResourceTypes.TOPIC, name: s.topic, configNames: Object.keys(s.configs!) })),
      });
      for (const s of configured) {
        const entries = have.resources.find((r) => r.resourceName === s.topic)?.configEntries ?? [];
        const differ = Object.entries(s.configs!).filter(([k, v]) => entries.find((e) => e.configName === k)?.configValue !== v);
        if (differ.length) {
          await admin.alterConfigs({
            validateOnly: false,
            resources: [{ type: ConfigResourceTypes.TOPIC, name: s.topic, configEntries: differ.map(([name, value]) => ({ name, value })) }],
          });
          notes.push(`set ${differ.map(([k, v]) => `${k}=${v}`).join(', ')} on topic ${s.topic}`);
        }
      }
    }
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
