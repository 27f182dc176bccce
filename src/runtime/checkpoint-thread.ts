/**
 * The checkpoint thread of a worker process (see checkpointer.ts): its own Redis and
 * Cassandra clients and its own RegionRecord, answering the worker's requests one at a time.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { parentPort } from 'node:worker_threads';
import { config } from '../config';
import { cassandraClient, redisClient } from '../clients';
import { RegionRecord } from '../store/record';
import { lineLogger } from '../log';
import type { CheckpointReply, CheckpointRequest } from './checkpointer';

/**
 * This thread's CPU priority (on Linux a thread's nice value is its own): when it and the
 * hot path's threads are both runnable, the hot path's are scheduled first. (Measured: its
 * encoding and garbage collection still take a share of the cores during a burst; README,
 * Benchmarks.) It cannot starve for long: an actor whose changes wait too long for a
 * checkpoint stops flushing until one ran (backpressure).
 */
const CHECKPOINT_NICE = 10;
try {
  const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
  if (Number.isInteger(tid) && tid > 0) os.setPriority(tid, CHECKPOINT_NICE);
} catch {
  // not Linux, or not allowed: the thread runs at the process's priority
}

const cfg = config();
const redis = redisClient(cfg, 'hotPath', lineLogger('checkpoint-thread'));
const cassandra = cassandraClient(cfg, 'writer');
const record = new RegionRecord(redis, cassandra, {
  keyspace: cfg.cassandra.keyspace,
  windows: cfg.ingest.windows,
  boundedK: cfg.ingest.boundedK,
  mode: cfg.ingest.mode,
  resume: { topic: cfg.kafka.topic },
});

const port = parentPort!;
let queue: Promise<void> = Promise.resolve();

port.on('message', (req: CheckpointRequest) => {
  queue = queue.then(async () => {
    if (req.op === 'close') {
      await redis.quit().catch(() => redis.disconnect());
      await cassandra.shutdown().catch(() => undefined);
      port.postMessage({ id: req.id, ok: true, written: 0, lastOk: null } satisfies CheckpointReply);
      port.close();
      return;
    }
    let reply: CheckpointReply;
    try {
      const r = req.op === 'round' ? await record.checkpointRound(req.intervalMs) : { written: await record.checkpointAll(), lastOk: Date.now() };
      reply = { id: req.id, ok: true, written: r.written, lastOk: r.lastOk };
    } catch (e) {
      reply = { id: req.id, ok: false, message: (e as Error).message };
    }
    port.postMessage(reply);
  });
});
