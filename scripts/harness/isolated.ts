/**
 * What an end-to-end suite (or a bench or chaos run) owns, created and removed by it: its own topics, consumer
 * group, task queue, API port, Cassandra keyspace and Redis database, so the runtime
 * under test shares nothing with another run or with `npm start`.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { Kafka, logLevel, Partitioners, type Admin, type Producer } from 'kafkajs';
import { SIDE_TOPIC_CONFIGS, ensureTopics, grantPipelineAcls, revokePipelineAcls, type PipelineNames } from '../../src/bootstrap/kafka';
import { migrate } from '../../src/bootstrap/cassandra';
import { cassandraClient, kafkaSasl, opsRedis } from '../../src/clients';
import { produceLoad } from '../../src/load/produce';
import type { LoadOptions, Truth } from '../../src/load/generator';
import { freeRedisDb } from './redis-db';
import { FETCH_BAD_PORTS, loadConfig } from '../../src/config';

const cfg = loadConfig();
import { LATE_REASON_HEADER } from '../../src/ingest/triage';
import { revokeGrantedAcls, terminateRegionWorkflows, terminateSupervisors, type Runtime } from './runtime';

/** The ports a run's API may take: 3100..3899 but those fetch refuses (3659 is one: every start on it timed out). */
const API_PORTS = Array.from({ length: 800 }, (_, i) => 3100 + i).filter((p) => !FETCH_BAD_PORTS.has(p));

/** A run's API port, drawn with `random` (in [0, 1)) from API_PORTS. */
export function pickApiPort(random: () => number = Math.random): number {
  return API_PORTS[Math.floor(random() * API_PORTS.length)];
}

export class Isolated {
  readonly env: Record<string, string>;
  readonly keyspace: string;
  readonly kafka: Kafka;
  private readonly producerKafka: Kafka;
  /** As the Cassandra superuser hh_admin (drops the keyspace at the end). */
  readonly cassandra = cassandraClient(cfg, 'admin');
  admin!: Admin;
  producer!: Producer;
  redis!: Redis;

  constructor(
    readonly id: string,
    extra: Record<string, string>,
    private readonly partitions = 8,
  ) {
    this.keyspace = id.toLowerCase();
    // The suite's own checks run as the Kafka super user; its events are produced as hh-producer.
    this.kafka = new Kafka({ clientId: `hh-${id}`, brokers: [...cfg.kafka.brokers], sasl: kafkaSasl(cfg, 'admin'), logLevel: logLevel.NOTHING });
    this.producerKafka = new Kafka({
      clientId: `hh-${id}-producer`,
      brokers: [...cfg.kafka.brokers],
      sasl: kafkaSasl(cfg, 'producer'),
      logLevel: logLevel.NOTHING,
    });
    this.env = {
      HH_CASSANDRA_KEYSPACE: this.keyspace,
      HH_KAFKA_TOPIC: `${id}.views`,
      HH_KAFKA_DLQ_TOPIC: `${id}.dlq`,
      HH_KAFKA_LATE_TOPIC: `${id}.late`,
      HH_KAFKA_GROUP: `${id}.ingest`,
      HH_TEMPORAL_TASK_QUEUE: `${id}-tq`,
      HH_API_PORT: String(pickApiPort()),
      // This run's own producer key and admin token (the stack's secrets file is not theirs).
      HH_PRODUCER_KEYS: `producer-${randomBytes(12).toString('hex')}`,
      HH_ADMIN_TOKEN: `admin-${randomBytes(12).toString('hex')}`,
      ...extra,
    };
  }

  /** Headers of a producer's POST /events in this run. */
  get producerHeaders(): Record<string, string> {
    return { 'content-type': 'application/json', authorization: `Bearer ${this.env.HH_PRODUCER_KEYS.split(',')[0]}` };
  }

  private get names(): PipelineNames {
    return {
      topic: this.env.HH_KAFKA_TOPIC,
      deadLetterTopic: this.env.HH_KAFKA_DLQ_TOPIC,
      lateTopic: this.env.HH_KAFKA_LATE_TOPIC,
      groupId: this.env.HH_KAFKA_GROUP,
    };
  }

  private get topics(): string[] {
    return [this.env.HH_KAFKA_TOPIC, this.env.HH_KAFKA_DLQ_TOPIC, this.env.HH_KAFKA_LATE_TOPIC];
  }

  async setUp(): Promise<void> {
    this.env.HH_REDIS_DB = String(await freeRedisDb());
    this.redis = opsRedis(cfg, Number(this.env.HH_REDIS_DB));
    // While a fault test kills Redis the client reconnects by itself; each failed command
    // rejects on its own (without a listener ioredis prints "Unhandled error event").
    this.redis.on('error', () => undefined);
    this.admin = this.kafka.admin();
    await this.admin.connect();
    await ensureTopics(
      cfg,
      this.topics.map((topic, i) => (i === 0 ? { topic, numPartitions: this.partitions } : { topic, numPartitions: 1, configs: SIDE_TOPIC_CONFIGS })),
    );
    await grantPipelineAcls(cfg, this.names);
    await migrate(cfg, this.keyspace);
    this.producer = this.producerKafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await this.producer.connect();
  }

  /**
   * Produces a generated stream (Zipf s = 1.1) to the suite's topic and returns its truth;
   * `onHalf` runs once half of it is acknowledged (to crash something mid-ingest).
   */
  async produce(stream: Omit<LoadOptions, 'zipf'>, opts: { rate?: number; onHalf?: () => void } = {}): Promise<Truth> {
    let half = false;
    const res = await produceLoad(this.producer, {
      ...stream,
      zipf: 1.1,
      topic: this.env.HH_KAFKA_TOPIC,
      rate: opts.rate ?? 0,
      onProgress: (sent) => {
        if (!half && sent >= stream.events / 2) {
          half = true;
          opts.onHalf?.();
        }
      },
    });
    return res.truth;
  }

  /** The late-reason header of the first record in the suite's late topic (waits up to 30 s for one). */
  async firstLateReason(): Promise<string> {
    const consumer = this.kafka.consumer({ groupId: `${this.id}.late-reader.${Date.now()}` });
    await consumer.connect();
    try {
      await consumer.subscribe({ topic: this.env.HH_KAFKA_LATE_TOPIC, fromBeginning: true });
      return await new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('nothing in the late topic after 30 s')), 30_000);
        void consumer.run({
          eachMessage: async ({ message }) => {
            clearTimeout(t);
            resolve(String(message.headers?.[LATE_REASON_HEADER]));
          },
        });
      });
    } finally {
      await consumer.disconnect();
    }
  }

  /** Stops the runtime and removes everything the suite created. */
  async tearDown(rt: Runtime | undefined, regions: string[]): Promise<void> {
    await rt?.stop();
    await terminateSupervisors(rt?.cfg ?? loadConfig({ ...process.env, ...this.env }));
    await terminateRegionWorkflows(cfg, regions);
    await this.producer?.disconnect();
    await this.redis?.flushdb();
    this.redis?.disconnect();
    await this.admin?.deleteTopics({ topics: this.topics }).catch(() => undefined);
    await this.admin?.deleteGroups([this.env.HH_KAFKA_GROUP]).catch(() => undefined);
    await revokePipelineAcls(cfg, this.names).catch(() => undefined);
    await revokeGrantedAcls(cfg);
    await this.admin?.disconnect();
    await this.cassandra.execute(`DROP KEYSPACE IF EXISTS ${this.keyspace}`).catch(() => undefined);
    await this.cassandra.shutdown();
  }
}
