/**
 * Records the history of a real run of a workflow on the dev server into test/histories/,
 * for the replay tests. Usage: tsx scripts/record-history.ts smoke
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Redis } from 'ioredis';
import { Client, Connection } from '@temporalio/client';
import { execFileSync } from 'node:child_process';
import { temporalBin } from './stack/services';
import { config } from '../src/config';
import { regionTopKey } from '../src/keys';
import { createWorker } from '../src/worker';
import { smokeWorkflow } from '../src/workflows';

async function main(): Promise<void> {
  const which = process.argv[2];
  if (which !== 'smoke') throw new Error('usage: record-history.ts smoke');
  const cfg = config();
  const redis = new Redis({ host: cfg.host, port: cfg.redis.port });
  const region = `record-${Date.now()}`;
  await redis.zadd(regionTopKey(region), 5, 'p1', 3, 'p2');
  const taskQueue = `record-${Date.now()}`;
  const { worker, connection } = await createWorker(cfg, { redis }, taskQueue);
  const client = new Client({ connection: await Connection.connect({ address: cfg.temporal.address }), namespace: cfg.temporal.namespace });
  const workflowId = `record-smoke-${Date.now()}`;
  await worker.runUntil(client.workflow.execute(smokeWorkflow, { taskQueue, workflowId, args: [{ region, k: 2 }] }));
  // The CLI writes the canonical proto3 JSON that Worker.runReplayHistory reads.
  const json = execFileSync(temporalBin(cfg), [
    'workflow', 'show', '--address', cfg.temporal.address, '--namespace', cfg.temporal.namespace, '-w', workflowId, '--output', 'json',
  ]).toString();
  const out = path.join(__dirname, '..', 'test', 'histories', `${which}.json`);
  fs.writeFileSync(out, json);
  process.stdout.write(`wrote ${out} (${(JSON.parse(json) as { events: unknown[] }).events.length} events)\n`);
  await redis.del(regionTopKey(region));
  redis.disconnect();
  await connection.close();
  await client.connection.close();
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
