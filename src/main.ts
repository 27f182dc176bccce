/**
 * `npm start` (after the stack is up): the smoke path until the full pipeline lands —
 * one event through Kafka into Redis, read back through the Express API and through a
 * Temporal workflow — then keeps serving the API (GET /healthz, GET /top-posts).
 */
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { Redis } from 'ioredis';
import { Client, Connection } from '@temporalio/client';
import { config } from './config';
import { createApp } from './api/app';
import { probeAll } from './health';
import { regionTopKey } from './keys';
import { createWorker } from './worker';
import { smokeWorkflow } from './workflows';

const log = (s: string) => process.stdout.write(`${s}\n`);

async function main(): Promise<void> {
  const cfg = config();
  const redis = new Redis({ host: cfg.host, port: cfg.redis.port });
  const kafka = new Kafka({ clientId: 'heavy-hitters-smoke', brokers: [...cfg.kafka.brokers], logLevel: logLevel.WARN });

  const event = { event_id: randomUUID(), post_id: 'post-smoke', region_id: 'NA', timestamp: Date.now() };
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic: cfg.kafka.topic, messages: [{ key: event.region_id, value: JSON.stringify(event) }] });
  await producer.disconnect();
  log(`produced ${JSON.stringify(event)} to ${cfg.kafka.topic}`);

  // A committed consumer group: every event is applied once, also across restarts.
  const consumer = kafka.consumer({ groupId: 'heavy-hitters-smoke' });
  await consumer.connect();
  await consumer.subscribe({ topic: cfg.kafka.topic, fromBeginning: true });
  const seen = new Promise<void>((resolve) => {
    void consumer.run({
      eachMessage: async ({ message }) => {
        const e = JSON.parse(message.value?.toString() ?? 'null') as typeof event | null;
        if (e && typeof e.post_id === 'string' && typeof e.region_id === 'string') {
          await redis.zincrby(regionTopKey(e.region_id), 1, e.post_id);
        }
        if (e?.event_id === event.event_id) resolve();
      },
    });
  });
  await seen;
  log(`consumed it into Redis key ${regionTopKey(event.region_id)}`);

  const app = createApp({ redis, probe: () => probeAll(cfg) });
  const server = app.listen(cfg.api.port, cfg.host);
  await new Promise<void>((r) => server.once('listening', () => r()));
  const api = `http://${cfg.host}:${cfg.api.port}`;
  const body = await (await fetch(`${api}/top-posts?region=NA&k=5`)).json();
  log(`GET ${api}/top-posts?region=NA&k=5 -> ${JSON.stringify(body)}`);

  const { worker, connection } = await createWorker(cfg, { redis });
  const workerRun = worker.run();
  const client = new Client({ connection: await Connection.connect({ address: cfg.temporal.address }), namespace: cfg.temporal.namespace });
  const wfId = `smoke-${event.event_id}`;
  const result = await client.workflow.execute(smokeWorkflow, { taskQueue: cfg.temporal.taskQueue, workflowId: wfId, args: [{ region: 'NA', k: 5 }] });
  log(`workflow ${wfId} -> ${JSON.stringify(result)}`);
  log(`\nAPI:         ${api}/top-posts?region=NA&k=10   ${api}/healthz`);
  log(`Temporal UI: http://${cfg.host}:${cfg.temporal.uiPort}/namespaces/${cfg.temporal.namespace}/workflows`);
  log('serving; Ctrl-C to stop');

  const stop = async () => {
    log('stopping');
    worker.shutdown();
    await workerRun;
    await consumer.disconnect();
    server.close();
    await connection.close();
    await client.connection.close();
    redis.disconnect();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((e: Error) => {
  process.stderr.write(`start failed: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
