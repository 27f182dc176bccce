/**
 * One process of the cluster runtime, in its parts (HH_PROCESS_ROLE, set by the primary: a
 * comma-separated list of them):
 * - ingest: its region actors, a Temporal Worker on this slot's own task queue (the ingest
 *   activity, supervised by a workflow), and the checkpoints;
 * - api: the API on the shared port (reads, POST /events, admin actions, health);
 * - lifecycle: a Temporal Worker on the shared task queue: the workflows (coordinators,
 *   windows, the global merge, the ingest supervisors) and the window and merge activities;
 * - both: all three (HH_API_PROCESSES=0 and HH_LIFECYCLE_PROCESSES=0).
 * SIGTERM drains: stop the API, stop taking ingest tasks, let the ingest finish its batch
 * (actors flushed, offsets committed), close connections.
 */
import type { Server } from 'node:http';
import type { Client as CassandraClient } from 'cassandra-driver';
import type { Redis } from 'ioredis';
import type { Admin } from 'kafkajs';
import type { Client } from '@temporalio/client';
import { Partitioners } from 'kafkajs';
import { Runtime } from '@temporalio/worker';
import { lineLogger, TemporalPinoLogger } from '../log';
import { AggregatorRegistry } from 'prom-client';
import { config, type Config } from '../config';
import { createActivities } from '../activities';
import { windowStore } from '../store/window-snapshots';
import { rollPlan } from '../store/window-roll';
import { cassandraClient, kafkaClient, redisClient, temporalClient, temporalWorkerConnection } from '../clients';
import { ActorSystem } from '../actors/region-actor';
import { createApi } from '../api/app';
import { listWindows, temporalUiWorkflows } from '../api/window-list';
import { REGIONS_KEY } from '../keys';
import { Credentials } from '../api/auth';
import { AuditLog } from '../store/audit';
import { redisRateLimiter } from '../store/rate-limit';
import { ReadService } from '../api/read-service';
import { createMetrics, type Metrics } from '../metrics';
import { createWorker } from '../worker';
import { recomputeUpdate } from '../workflows/definitions';
import { awaitJoinTurn, reportIngestState, requestClusterMetrics, requestSlots } from './ipc';
import { PostMetaStore } from '../store/posts';
import { RegionRecord } from '../store/record';
import { ensureEpoch, forceRebuild } from '../store/rebuild';
import { ingestTaskQueue } from './ids';
import { RuntimeHealth } from './health';
import { Watchdog } from './watchdog';
import { OverdueWindows } from './overdue-windows';
import { Checkpointer } from './checkpointer';
import { CheckpointSchedule } from './checkpoint-schedule';
import { WORKFLOW_BUNDLE_ENV } from './workflow-bundle';
import { processParts } from './parts';

const log = lineLogger(process.env.HH_PROCESS_ROLE === 'api' ? 'api' : process.env.HH_PROCESS_ROLE === 'lifecycle' ? 'lifecycle' : 'worker');

/** What both parts use: the config, metrics, the record and the clients it needs, Temporal. */
interface Common {
  cfg: Config;
  metrics: Metrics;
  /** The hot-path role's Redis client (the record's, a rebuild's). */
  redis: Redis;
  /** The record writer's Cassandra client. */
  cassandra: CassandraClient;
  /** A Kafka admin client (log ends, health probes) that does not retry. */
  admin: Admin;
  record: RegionRecord;
  client: Client;
}

/** The ingest or lifecycle part: stop() drains it (ingest: no new task, the batch in hand applied, a last checkpoint). */
interface DrainingPart {
  stop: () => Promise<void>;
}

/** The API part. */
interface ApiPart {
  /** Stops taking connections; resolves once the open ones have ended. */
  stopServing: () => Promise<void>;
  /** Closes its own clients. */
  close: () => Promise<void>;
}

async function startIngest(c: Common, slot: number): Promise<DrainingPart> {
  const { cfg, metrics, redis, record, client, admin } = c;
  // The ingest logs in as hh-worker (reads the event topic, writes the dead-letter and late topics).
  const kafka = kafkaClient(cfg, `heavy-hitters-worker-${slot}`, 'worker');
  const producer = kafka.producer({ allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  // An actor waiting for a checkpoint (the record fell behind) asks for one at once.
  let requestCheckpoint: () => void = () => undefined;
  const actors = new ActorSystem(redis, cfg.ingest, metrics, log, () => requestCheckpoint());
  const shutdown = new AbortController();
  const connection = await temporalWorkerConnection(cfg);
  const slotQueue = ingestTaskQueue(cfg.temporal.taskQueue, slot);
  const ingestWorker = await createWorker({
    cfg,
    connection,
    taskQueue: slotQueue,
    workflowsPath: false,
    activities: createActivities({
      redis,
      ingest: {
        cfg,
        kafka,
        producer,
        actors,
        redis,
        record,
        admin,
        metrics,
        log,
        shutdown: shutdown.signal,
        temporal: { client, taskQueue: cfg.temporal.taskQueue },
        onState: reportIngestState,
        // The runtime's members join the group together (join-gate.ts): one rebalance, not one per late member.
        beforeJoin: () => awaitJoinTurn(cfg.runtime.joinWaitMs),
        // Stuck inside this process (its report is logged): only a fresh process is sure to
        // clear it; the primary starts one, which resumes from what Redis has applied.
        onStall: () => {
          log('exiting: the primary starts this process afresh');
          process.exit(75);
        },
      },
    }),
    maxConcurrentActivityTaskExecutions: 1,
    shutdownGraceTime: '30 seconds',
  });
  const runs = [ingestWorker.run()];

  // This slot's ingest supervisor and the global merge run while the process does: started
  // now, and started again whenever they stop (terminated through the Temporal API, say).
  const watchdog = new Watchdog({ cfg, client, slot, log, metrics });
  await watchdog.check();
  watchdog.start();

  // One slot counts the overdue windows (the gauge is aggregated by max over the workers).
  const overdue =
    slot === 1
      ? new OverdueWindows({
          client,
          taskQueue: cfg.temporal.taskQueue,
          windows: cfg.ingest.windows,
          watermarkDelayMs: cfg.ingest.watermarkDelayMs,
          overdueMs: cfg.ingest.windowOverdueMs,
          metrics,
          log,
        })
      : undefined;
  overdue?.start();

  // Checkpoints: every interval, each changed region's counts and offsets go to the record
  // (one round per interval for the whole cluster: the first worker's timer runs it), and at
  // once, and again, while an actor waits for one. While Cassandra is down they fail and are
  // retried; nothing is lost (the changes stay marked). HH_CHECKPOINT_ON=thread runs them on
  // a thread of their own (checkpointer.ts) instead of this event loop.
  const checkpointer = cfg.ingest.checkpointOn === 'thread' ? new Checkpointer() : null;
  const rounds = checkpointer ?? record;
  const schedule = new CheckpointSchedule(
    { timed: () => rounds.checkpointRound(cfg.ingest.checkpointIntervalMs), all: () => rounds.checkpointAll() },
    {
      done: (written, lastOk, seconds) => {
        if (lastOk !== null) metrics.checkpointLastSuccess.set(lastOk / 1000);
        if (written === null) return; // another worker's round
        metrics.checkpointed.inc(written);
        metrics.checkpointSeconds.observe(seconds);
      },
      failed: () => metrics.checkpointFailures.inc(),
    },
    log,
  );
  requestCheckpoint = () => schedule.request();
  // The age of the last checkpoint counts from this process's start until its first one.
  metrics.checkpointLastSuccess.set(Date.now() / 1000);
  schedule.start(cfg.ingest.checkpointIntervalMs);
  log(`ready: ingest on task queue ${slotQueue}`);

  return {
    stop: async () => {
      watchdog.stop();
      overdue?.stop();
      if (ingestWorker.getState() === 'RUNNING') ingestWorker.shutdown(); // take no new ingest task; the running one drains below
      shutdown.abort();
      await Promise.allSettled(runs);
      await actors.drain();
      await schedule.stop(); // the round in flight, then the last one
      await checkpointer?.close();
      await producer.disconnect();
      await connection.close();
    },
  };
}

/** The lifecycle part: the workflows and their window and merge activities. stop() lets the running ones finish. */
async function startLifecycle(c: Common): Promise<DrainingPart> {
  const { cfg, redis, cassandra, client } = c;
  const connection = await temporalWorkerConnection(cfg);
  const worker = await createWorker({
    cfg,
    connection,
    taskQueue: cfg.temporal.taskQueue,
    // The primary's bundle of the workflow code (none: this Worker bundles it, as tests' do).
    workflowBundlePath: process.env[WORKFLOW_BUNDLE_ENV] || undefined,
    activities: createActivities({ redis, cassandra, keyspace: cfg.cassandra.keyspace, temporal: client, roll: rollPlan(cfg.ingest.windows, cfg.ingest.mode) }),
  });
  const run = worker.run();
  log(`ready: workflows and window activities on task queue ${cfg.temporal.taskQueue}`);
  return {
    stop: async () => {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await run.catch((e: Error) => log(`the lifecycle worker stopped with an error: ${e.message}`));
      await connection.close();
    },
  };
}

async function startApi(c: Common): Promise<ApiPart> {
  const { cfg, metrics, redis, cassandra, admin, record, client } = c;
  // The API logs in as its own roles: hh-api in Redis and Kafka (writes the event topic,
  // reads log ends), and a Cassandra role that cannot change the record for its own reads
  // (post metadata) and its audit log.
  const apiRedis = redisClient(cfg, 'api');
  const apiKafka = kafkaClient(cfg, `heavy-hitters-api-${process.pid}`, 'api');
  const apiProducer = apiKafka.producer({ allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner });
  await apiProducer.connect();
  const apiCassandra = cassandraClient(cfg, 'reader');
  let rebuilding: Promise<string> | undefined;
  const rebuild = () => (rebuilding ??= ensureEpoch(redis, record, log).finally(() => (rebuilding = undefined)));
  const health = new RuntimeHealth(cfg, { redis: apiRedis, kafkaAdmin: admin, cassandra: apiCassandra, temporal: client }, requestSlots);
  health.start();
  const read = new ReadService({
    redis: apiRedis,
    topic: cfg.kafka.topic,
    record,
    rebuild,
    readWindow: windowStore(redis, cassandra, cfg.cassandra.keyspace).readWindow,
    posts: new PostMetaStore(apiCassandra, cfg.cassandra.keyspace),
    windows: cfg.ingest.windows,
    sliding: cfg.ingest.sliding,
    sessions: cfg.ingest.sessions,
    mode: cfg.ingest.mode,
    log,
  });
  const credentials = new Credentials({ producerKeys: cfg.api.producerKeys, adminToken: cfg.api.adminToken });
  const audit = new AuditLog(apiCassandra, cfg.cassandra.keyspace, log, () => metrics.failures.inc({ operation: 'audit' }));
  const api = createApi({
    read,
    credentials,
    rateLimiter: cfg.api.rateLimit.algorithm === 'off' ? undefined : redisRateLimiter(apiRedis, cfg.api.rateLimit),
    onRateLimited: () => metrics.rateLimited.inc(),
    onRateLimitUnavailable: () => metrics.failures.inc({ operation: 'rate-limit' }),
    limits: { maxK: cfg.api.maxK, globalK: cfg.global.k, boundedK: cfg.ingest.boundedK, mode: cfg.ingest.mode },
    cacheMs: cfg.api.cacheMs,
    health: () => health.report(),
    metrics: requestClusterMetrics,
    events: {
      credentials,
      producer: apiProducer,
      topic: cfg.kafka.topic,
      maxEvents: cfg.api.maxPostEvents,
      maxBodyBytes: cfg.api.maxBodyBytes,
      time: { maxAheadMs: cfg.ingest.maxAheadMs, maxAgeMs: cfg.ingest.maxAgeMs },
    },
    admin: {
      credentials,
      audit: (e) => audit.record(e),
      forceRebuild: () => forceRebuild(redis, record, log),
      recomputeWindow: (id) => client.workflow.getHandle(id).executeUpdate(recomputeUpdate),
    },
    ui: {
      timeframes: ['all', ...cfg.ingest.windows.map((w) => w.name)],
      regions: () => apiRedis.smembers(REGIONS_KEY),
      windows: (q) => listWindows(client, temporalUiWorkflows(cfg), q),
    },
    log,
  });
  const server: Server = api.listen(cfg.api.port, cfg.host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  log(`ready: API on ${cfg.host}:${cfg.api.port}`);
  return {
    stopServing: () => {
      health.stop();
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      return closed;
    },
    close: async () => {
      await apiProducer.disconnect();
      apiRedis.disconnect();
      await apiCassandra.shutdown();
    },
  };
}

async function main(): Promise<void> {
  const cfg = config();
  const parts = processParts(process.env.HH_PROCESS_ROLE);
  const slot = Number(process.env.HH_WORKER_SLOT ?? '1');
  const metrics = createMetrics();
  // Constructing one installs prom-client's worker-side listener for the primary's requests.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([metrics.registry]);
  const redis = redisClient(cfg, 'hotPath', log);
  const cassandra = cassandraClient(cfg, 'writer');
  // Probes and log ends must answer within their bounds: an admin client that does not retry.
  const admin = kafkaClient(cfg, `heavy-hitters-admin-${process.pid}`, 'api', { retries: 0, requestTimeout: 1000 }).admin();
  await admin.connect();
  const logEnds = async () => new Map((await admin.fetchTopicOffsets(cfg.kafka.topic)).map((o) => [o.partition, BigInt(o.high)] as const));
  const record = new RegionRecord(redis, cassandra, {
    keyspace: cfg.cassandra.keyspace,
    windows: cfg.ingest.windows,
    boundedK: cfg.ingest.boundedK,
    mode: cfg.ingest.mode,
    resume: { topic: cfg.kafka.topic, logEnds },
  });
  const client = await temporalClient(cfg);
  const common: Common = { cfg, metrics, redis, cassandra, admin, record, client };
  // The Temporal Workers' runtime: their state transitions at INFO would drown the runtime's own log lines.
  // No shutdown signals of its own: this process's SIGTERM/SIGINT handler drains its parts in
  // order (ingest, then the lifecycle Worker) and shuts each Worker down itself; with the SDK's
  // handler also shutting them down, the drain's own shutdown() threw (IllegalStateError) and
  // the process died mid-drain.
  if (parts.has('ingest') || parts.has('lifecycle')) Runtime.install({ logger: new TemporalPinoLogger('WARN'), shutdownSignals: [] });
  const api = parts.has('api') ? await startApi(common) : null;
  const lifecycle = parts.has('lifecycle') ? await startLifecycle(common) : null;
  const ingest = parts.has('ingest') ? await startIngest(common, slot) : null;

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    log('draining');
    const served = api?.stopServing();
    await ingest?.stop();
    await lifecycle?.stop();
    await served;
    await api?.close();
    await admin.disconnect();
    await client.connection.close();
    await redis.quit();
    await cassandra.shutdown();
    log('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  // The primary went away (disconnect): drain too, never linger as an orphan.
  process.on('disconnect', () => void stop());
}

main().catch((e: Error) => {
  log(`failed to start: ${e.stack ?? e.message}`);
  process.exit(1);
});
