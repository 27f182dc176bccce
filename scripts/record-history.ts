/**
 * Records histories of real runs on the dev server into test/histories/, for the replay
 * tests (test/integration/replay.test.ts). Usage: tsx scripts/record-history.ts smoke|ingest-supervisor
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Redis } from 'ioredis';
import { Client, Connection } from '@temporalio/client';
import { config, type Config } from '../src/config';
import { regionTopKey } from '../src/keys';
import { supervisorId } from '../src/runtime/ids';
import { createWorker } from '../src/worker';
import { smokeWorkflow } from '../src/workflows';
import { ensureTopics } from '../src/bootstrap/kafka';
import { startRuntime } from '../test/support/runtime';
import { temporalBin } from './stack/services';

const HISTORIES = path.join(__dirname, '..', 'test', 'histories');

/** The CLI writes the canonical proto3 JSON that Worker.runReplayHistory reads. */
function saveHistory(cfg: Config, workflowId: string, name: string): void {
  const json = execFileSync(temporalBin(cfg), [
    'workflow', 'show', '--address', cfg.temporal.address, '--namespace', cfg.temporal.namespace, '-w', workflowId, '--output', 'json',
  ]).toString();
  const out = path.join(HISTORIES, `${name}.json`);
  fs.writeFileSync(out, json);
  process.stdout.write(`wrote ${out} (${(JSON.parse(json) as { events: unknown[] }).events.length} events)\n`);
}

async function recordSmoke(cfg: Config, client: Client): Promise<void> {
  const redis = new Redis({ host: cfg.host, port: cfg.redis.port });
  const region = `record-${Date.now()}`;
  await redis.zadd(regionTopKey(region), 5, 'p1', 3, 'p2');
  const taskQueue = `record-${Date.now()}`;
  const { worker, connection } = await createWorker(cfg, { redis }, taskQueue);
  const workflowId = `record-smoke-${Date.now()}`;
  await worker.runUntil(client.workflow.execute(smokeWorkflow, { taskQueue, workflowId, args: [{ region, k: 2 }] }));
  saveHistory(cfg, workflowId, 'smoke');
  await redis.del(regionTopKey(region));
  redis.disconnect();
  await connection.close();
}

/** A supervisor whose ingest ran, was drained by a graceful stop, and was scheduled again. */
async function recordSupervisor(cfg: Config, client: Client): Promise<void> {
  const id = `record${Date.now()}`;
  const env = {
    HH_KAFKA_TOPIC: `${id}.views`,
    HH_KAFKA_DLQ_TOPIC: `${id}.dlq`,
    HH_KAFKA_GROUP: `${id}.ingest`,
    HH_TEMPORAL_TASK_QUEUE: `${id}-tq`,
    HH_API_PORT: '3999',
    HH_WORKERS: '1',
  };
  await ensureTopics(cfg, [{ topic: env.HH_KAFKA_TOPIC, numPartitions: 2 }, { topic: env.HH_KAFKA_DLQ_TOPIC, numPartitions: 1 }]);
  // Two runs of the process: the ingest drains at each stop and is scheduled again.
  for (let i = 0; i < 2; i++) {
    const rt = await startRuntime(env);
    await new Promise((r) => setTimeout(r, 3000));
    await rt.stop();
  }
  const workflowId = supervisorId(env.HH_TEMPORAL_TASK_QUEUE, 1);
  saveHistory(cfg, workflowId, 'ingest-supervisor');
  await client.workflow.getHandle(workflowId).terminate('history recorded');
}

async function main(): Promise<void> {
  const which = process.argv[2];
  const cfg = config();
  const client = new Client({ connection: await Connection.connect({ address: cfg.temporal.address }), namespace: cfg.temporal.namespace });
  try {
    if (which === 'smoke') await recordSmoke(cfg, client);
    else if (which === 'ingest-supervisor') await recordSupervisor(cfg, client);
    else throw new Error('usage: record-history.ts smoke|ingest-supervisor');
  } finally {
    await client.connection.close();
  }
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
