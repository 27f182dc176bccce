/** Idempotent creation of the Kafka topics the pipeline uses. */
import { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ConfigResourceTypes, ResourcePatternTypes, type AclEntry, type Admin } from 'kafkajs';
import { kafkaClient } from '../clients';
import type { Config } from '../config';
import { SERVER_USERS } from '../secrets';

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
export function ensureTopics(cfg: Config, specs: TopicSpec[] = topicSpecs(cfg)): Promise<string[]> {
  return withAdmin(cfg, async (admin) => {
    const notes: string[] = [];
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
    return notes;
  });
}

/** The names one pipeline's ACLs are granted on. */
export interface PipelineNames {
  topic: string;
  deadLetterTopic: string;
  lateTopic: string;
  groupId: string;
}

export const pipelineNames = (cfg: Config): PipelineNames => ({
  topic: cfg.kafka.topic,
  deadLetterTopic: cfg.kafka.deadLetterTopic,
  lateTopic: cfg.kafka.lateTopic,
  groupId: cfg.ingest.groupId,
});

/**
 * Least privilege (StandardAuthorizer, nothing allowed without an ACL): the producer may
 * only write the event topic; the API writes it and reads its log ends and the broker's
 * version; the workers read it in their group and write the dead-letter and late topics.
 */
export function pipelineAcls(n: PipelineNames): AclEntry[] {
  const { producer, api, worker } = SERVER_USERS.kafka;
  const allow = (user: string, resourceType: AclResourceTypes, resourceName: string, operation: AclOperationTypes): AclEntry => ({
    resourceType,
    resourceName,
    resourcePatternType: ResourcePatternTypes.LITERAL,
    principal: `User:${user}`,
    host: '*',
    operation,
    permissionType: AclPermissionTypes.ALLOW,
  });
  const { TOPIC, GROUP, CLUSTER } = AclResourceTypes;
  const { READ, WRITE, DESCRIBE, DESCRIBE_CONFIGS } = AclOperationTypes;
  return [
    allow(producer, TOPIC, n.topic, WRITE),
    allow(producer, TOPIC, n.topic, DESCRIBE),
    allow(api, TOPIC, n.topic, WRITE),
    allow(api, TOPIC, n.topic, DESCRIBE),
    allow(api, CLUSTER, 'kafka-cluster', DESCRIBE_CONFIGS),
    allow(worker, TOPIC, n.topic, READ),
    allow(worker, TOPIC, n.topic, DESCRIBE),
    allow(worker, GROUP, n.groupId, READ),
    allow(worker, GROUP, n.groupId, DESCRIBE),
    ...[n.deadLetterTopic, n.lateTopic].flatMap((t) => [allow(worker, TOPIC, t, WRITE), allow(worker, TOPIC, t, DESCRIBE)]),
  ];
}

async function withAdmin<T>(cfg: Config, fn: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = kafkaClient(cfg, 'heavy-hitters-bootstrap', 'admin').admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

/** Grants a pipeline's ACLs (creating an existing ACL again is a no-op). */
export async function grantPipelineAcls(cfg: Config, names: PipelineNames = pipelineNames(cfg)): Promise<string[]> {
  const acl = pipelineAcls(names);
  await withAdmin(cfg, (admin) => admin.createAcls({ acl }));
  return [`granted ${acl.length} ACLs on topics ${names.topic}, ${names.deadLetterTopic}, ${names.lateTopic} and group ${names.groupId}`];
}

/**
 * Removes a pipeline's ACLs (a test run's, when it removes its topics) — its topics and
 * group only: the cluster-wide grant is shared by every pipeline and stays.
 */
export async function revokePipelineAcls(cfg: Config, names: PipelineNames): Promise<void> {
  const filters = pipelineAcls(names).filter((a) => a.resourceType !== AclResourceTypes.CLUSTER);
  await withAdmin(cfg, (admin) => admin.deleteAcls({ filters }));
}
