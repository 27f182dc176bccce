/**
 * Records histories of real runs on the dev server into test/histories/, for the replay
 * tests (test/integration/replay.test.ts). Usage: tsx scripts/record-history.ts smoke|ingest-supervisor|windows [suffix]|global-merge
 * (a suffix keeps the earlier recording: histories from before a patch() replay the old path).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Client } from '@temporalio/client';
import { config, type Config } from '../src/config';
import { regionTopKey } from '../src/keys';
import { supervisorId } from '../src/runtime/ids';
import { createWorker } from '../src/worker';
import { temporalWorkerConnection, temporalClient, opsRedis } from '../src/clients';
import { smokeWorkflow } from '../test/fixtures/workflows';
import { SMOKE_WORKFLOWS_PATH, smokeActivities } from '../test/fixtures/smoke-activities';
import { startRuntime } from './harness/runtime';
import { coordinatorWorkflowId, globalMergeWorkflowId, windowStatusQuery, windowWorkflowId } from '../src/workflows/definitions';
import { temporalBin } from './stack/services';
import { Isolated } from './harness/isolated';

const HISTORIES = path.join(__dirname, '..', 'test', 'histories');

/** The CLI writes the canonical proto3 JSON that Worker.runReplayHistory reads. */
function saveHistory(cfg: Config, workflowId: string, name: string): void {
  const json = execFileSync(temporalBin(cfg), [
    'workflow',
    'show',
    '--address',
    cfg.temporal.address,
    '--namespace',
    cfg.temporal.namespace,
    '-w',
    workflowId,
    '--output',
    'json',
  ]).toString();
  const out = path.join(HISTORIES, `${name}.json`);
  fs.writeFileSync(out, json);
  process.stdout.write(`wrote ${out} (${(JSON.parse(json) as { events: unknown[] }).events.length} events)\n`);
}

async function recordSmoke(cfg: Config, client: Client): Promise<void> {
  const redis = opsRedis(cfg);
  const region = `record-${Date.now()}`;
  await redis.zadd(regionTopKey(region), 5, 'p1', 3, 'p2');
  const taskQueue = `record-${Date.now()}`;
  const connection = await temporalWorkerConnection(cfg);
  const worker = await createWorker({ cfg, connection, taskQueue, activities: smokeActivities(redis), workflowsPath: SMOKE_WORKFLOWS_PATH });
  const workflowId = `record-smoke-${Date.now()}`;
  await worker.runUntil(client.workflow.execute(smokeWorkflow, { taskQueue, workflowId, args: [{ region, k: 2 }] }));
  saveHistory(cfg, workflowId, 'smoke');
  await redis.del(regionTopKey(region));
  redis.disconnect();
  await connection.close();
}

/** A supervisor whose ingest ran, was drained by a graceful stop, and was scheduled again. */
async function recordSupervisor(cfg: Config, client: Client): Promise<void> {
  const iso = new Isolated(`record${Date.now()}`, { HH_WORKERS: '1' }, 2);
  await iso.setUp();
  // Two runs of the process: the ingest drains at each stop and is scheduled again.
  for (let i = 0; i < 2; i++) {
    const rt = await startRuntime(iso.env);
    await new Promise((r) => setTimeout(r, 3000));
    await rt.stop();
  }
  const workflowId = supervisorId(iso.env.HH_TEMPORAL_TASK_QUEUE, 1);
  saveHistory(cfg, workflowId, 'ingest-supervisor');
  await client.workflow.getHandle(workflowId).terminate('history recorded');
  await iso.tearDown(undefined, []);
}

/** A 2 s window through its whole lifecycle (with a late-within event), and its region's coordinator. */
async function recordWindows(cfg: Config, client: Client, suffix: string): Promise<void> {
  const iso = new Isolated(
    `recw${Date.now()}`,
    { HH_WORKERS: '1', HH_WINDOWS: '2s/2s/6s', HH_WATERMARK_DELAY: '500ms', HH_IDLE_TIMEOUT: '10m', HH_WATERMARK_REPORT_INTERVAL: '300ms' },
    1,
  );
  await iso.setUp();
  const region = `${iso.id}_R`;
  const rt = await startRuntime(iso.env);
  const B = Math.floor(Date.now() / 2000) * 2000 + 4000;
  let n = 0;
  const send = (ts: number, post: string) =>
    iso.producer.send({
      topic: iso.env.HH_KAFKA_TOPIC,
      messages: [{ key: region, value: JSON.stringify({ event_id: `${iso.id}-${n++}`, post_id: post, region_id: region, timestamp: ts }) }],
    });
  const w0 = windowWorkflowId(region, '2s', B);
  const until = async (state: string) => {
    for (let i = 0; i < 200; i++) {
      const st = await client.workflow
        .getHandle(w0)
        .query(windowStatusQuery)
        .catch(() => undefined);
      if (st?.state === state) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${w0} never reached ${state}`);
  };
  await send(B + 100, 'a');
  await send(B + 2600, 'tick');
  await until('CLOSED');
  await send(B + 900, 'a');
  await send(B + 4700, 'tick');
  await until('FINAL');
  await client.workflow.getHandle(w0).result();
  saveHistory(cfg, w0, `window${suffix}`);
  saveHistory(cfg, coordinatorWorkflowId(region), `coordinator${suffix}`);
  await iso.tearDown(rt, [region]);
}

/** The global merge loop over a few rounds, one of which merged events of two regions. */
async function recordGlobalMerge(cfg: Config): Promise<void> {
  const iso = new Isolated(`recg${Date.now()}`, { HH_WORKERS: '1', HH_GLOBAL_MERGE_INTERVAL: '500ms' }, 1);
  await iso.setUp();
  const rt = await startRuntime(iso.env);
  const regions = [`${iso.id}_A`, `${iso.id}_B`];
  await iso.producer.send({
    topic: iso.env.HH_KAFKA_TOPIC,
    messages: [0, 1, 2, 3, 4, 5].map((i) => ({
      key: regions[i % 2],
      value: JSON.stringify({ event_id: `${iso.id}-${i}`, post_id: `p${i % 3}`, region_id: regions[i % 2], timestamp: Date.now() }),
    })),
  });
  await new Promise((r) => setTimeout(r, 4000));
  saveHistory(cfg, globalMergeWorkflowId(iso.env.HH_TEMPORAL_TASK_QUEUE), 'global-merge');
  await iso.tearDown(rt, regions);
}

async function main(): Promise<void> {
  const which = process.argv[2];
  const cfg = config();
  const client = await temporalClient(cfg);
  try {
    if (which === 'smoke') await recordSmoke(cfg, client);
    else if (which === 'ingest-supervisor') await recordSupervisor(cfg, client);
    else if (which === 'windows') await recordWindows(cfg, client, process.argv[3] ?? '');
    else if (which === 'global-merge') await recordGlobalMerge(cfg);
    else throw new Error('usage: record-history.ts smoke|ingest-supervisor|windows|global-merge');
  } finally {
    await client.connection.close();
  }
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
