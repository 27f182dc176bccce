/**
 * One worker process of the cluster runtime: its region actors, a Temporal Worker on the
 * shared task queue (workflows), a Temporal Worker on this slot's own task queue (the
 * ingest activity, supervised by a workflow), and the API on the shared port.
 * SIGTERM drains: stop taking ingest tasks, let the ingest finish its batch (actors
 * flushed, offsets committed), stop the API, close connections.
 */
import type { Server } from 'node:http';
import { Redis } from 'ioredis';
import { Partitioners } from 'kafkajs';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { Client, Connection, WorkflowIdConflictPolicy } from '@temporalio/client';
import { AggregatorRegistry } from 'prom-client';
import { config } from '../config';
import { createActivities } from '../activities';
import { createWindowActivities } from '../activities/windows';
import { kafkaClient } from '../activities/ingest';
import { ActorSystem } from '../actors/region-actor';
import { createApp } from '../api/app';
import { probeAll } from '../health';
import { createMetrics } from '../metrics';
import { WORKFLOWS_PATH } from '../worker';
import { globalMergeWorkflow, ingestSupervisorWorkflow } from '../workflows';
import { globalMergeWorkflowId, recomputeUpdate } from '../workflows/definitions';
import { requestClusterMetrics } from './ipc';
import { cassandraClient } from '../bootstrap/cassandra';
import { PostMetaStore } from '../store/posts';
import { RegionRecord, ensureEpoch, forceRebuild } from '../activities/record';
import { ingestTaskQueue, supervisorId } from './ids';

const log = (s: string) => process.stdout.write(`[worker ${process.env.HH_WORKER_SLOT ?? '?'} pid ${process.pid}] ${s}\n`);


async function main(): Promise<void> {
  const cfg = config();
  // Worker state transitions at INFO would drown the runtime's own log lines.
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const slot = Number(process.env.HH_WORKER_SLOT ?? '1');
  const redis = new Redis({ host: cfg.host, port: cfg.redis.port, db: cfg.redis.db, maxRetriesPerRequest: null });
  const kafka = kafkaClient(cfg, `heavy-hitters-worker-${slot}`);
  const producer = kafka.producer({ allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const metrics = createMetrics();
  // Constructing one installs prom-client's worker-side listener for the primary's requests.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([metrics.registry]);
  const actors = new ActorSystem(redis, cfg.ingest, metrics);
  const shutdown = new AbortController();
  const cassandra = cassandraClient(cfg);
  const record = new RegionRecord(redis, cassandra, { keyspace: cfg.cassandra.keyspace, windows: cfg.ingest.windows, boundedK: cfg.ingest.boundedK, mode: cfg.ingest.mode });
  let rebuilding: Promise<string> | undefined;
  const rebuild = () => (rebuilding ??= ensureEpoch(redis, record, log).finally(() => (rebuilding = undefined)));

  const connection = await NativeConnection.connect({ address: cfg.temporal.address });
  const workflowWorker = await Worker.create({
    connection,
    namespace: cfg.temporal.namespace,
    taskQueue: cfg.temporal.taskQueue,
    workflowsPath: WORKFLOWS_PATH,
    activities: createActivities({ redis, cassandra, keyspace: cfg.cassandra.keyspace }),
  });
  const client = new Client({ connection: await Connection.connect({ address: cfg.temporal.address }), namespace: cfg.temporal.namespace });
  const slotQueue = ingestTaskQueue(cfg.temporal.taskQueue, slot);
  const ingestWorker = await Worker.create({
    connection,
    namespace: cfg.temporal.namespace,
    taskQueue: slotQueue,
    activities: createActivities({
      redis,
      ingest: { cfg, kafka, producer, actors, redis, record, metrics, log, shutdown: shutdown.signal, temporal: { client, taskQueue: cfg.temporal.taskQueue } },
    }),
    maxConcurrentActivityTaskExecutions: 1,
    shutdownGraceTime: '30 seconds',
  });
  const runs = [workflowWorker.run(), ingestWorker.run()];

  await client.workflow.start(ingestSupervisorWorkflow, {
    workflowId: supervisorId(cfg.temporal.taskQueue, slot),
    taskQueue: cfg.temporal.taskQueue,
    args: [{ activityTaskQueue: slotQueue, heartbeatTimeoutSeconds: Math.ceil(cfg.ingest.heartbeatTimeoutMs / 1000) }],
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
  });

  await client.workflow.start(globalMergeWorkflow, {
    workflowId: globalMergeWorkflowId(cfg.temporal.taskQueue),
    taskQueue: cfg.temporal.taskQueue,
    args: [{ k: cfg.global.k, intervalMs: cfg.global.mergeIntervalMs }],
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
  });

  const app = createApp({
    redis,
    posts: new PostMetaStore(cassandra, cfg.cassandra.keyspace),
    record,
    rebuild,
    forceRebuild: () => forceRebuild(redis, record, log),
    adminToken: cfg.api.adminToken,
    recomputeWindow: (id) => client.workflow.getHandle(id).executeUpdate(recomputeUpdate),
    readWindow: createWindowActivities(redis, cassandra, cfg.cassandra.keyspace).readWindow,
    windows: cfg.ingest.windows,
    sliding: cfg.ingest.sliding,
    sessions: cfg.ingest.sessions,
    globalK: cfg.global.k,
    probe: () => probeAll(cfg),
    metrics: requestClusterMetrics,
    producer,
    topic: cfg.kafka.topic,
    maxK: cfg.api.maxK,
    cacheMs: cfg.api.cacheMs,
    mode: cfg.ingest.mode,
    boundedK: cfg.ingest.boundedK,
    maxPostEvents: cfg.api.maxPostEvents,
  });
  const server: Server = app.listen(cfg.api.port, cfg.host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  // Checkpoints: every interval, each changed region's counts and offsets go to the record.
  // While Cassandra is down they fail and are retried; nothing is lost (the changes stay marked).
  let checkpointing = false;
  let checkpointFailing = false;
  const checkpointTimer = setInterval(() => {
    if (checkpointing) return;
    checkpointing = true;
    const t0 = process.hrtime.bigint();
    record
      .checkpointAll()
      .then(
        (n) => {
          metrics.checkpointed.inc(n);
          metrics.checkpointSeconds.observe(Number(process.hrtime.bigint() - t0) / 1e9);
          if (checkpointFailing) log('checkpoints to Cassandra resumed');
          checkpointFailing = false;
        },
        (e: Error) => {
          metrics.checkpointFailures.inc();
          if (!checkpointFailing) log(`checkpoint failed (retrying every interval): ${e.message}`);
          checkpointFailing = true;
        },
      )
      .finally(() => (checkpointing = false));
  }, cfg.ingest.checkpointIntervalMs);

  log(`ready: API on ${cfg.host}:${cfg.api.port}, ingest on task queue ${slotQueue}`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    log('draining');
    const closed = new Promise((r) => server.close(r));
    server.closeIdleConnections();
    clearInterval(checkpointTimer);
    ingestWorker.shutdown(); // take no new ingest task; the running one drains below
    shutdown.abort();
    workflowWorker.shutdown();
    await Promise.allSettled(runs);
    await actors.drain();
    await record.checkpointAll().catch((e: Error) => log(`last checkpoint failed: ${e.message}`));
    await closed;
    await producer.disconnect();
    await client.connection.close();
    await connection.close();
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
