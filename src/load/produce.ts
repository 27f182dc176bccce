/** Produces generated events to Kafka at a target rate, keyed by region, acknowledged by all replicas. */
import type { Producer } from 'kafkajs';
import type { ViewEvent } from '../events';
import { addToTruth, generateEvents, type LoadOptions, type Truth } from './generator';

export interface ProduceOptions extends LoadOptions {
  topic: string;
  /** Events per second; 0 = as fast as Kafka takes them. */
  rate: number;
  /** Events per send. */
  batchSize?: number;
  onProgress?: (sent: number, elapsedMs: number) => void;
  /** Stops early when aborted. */
  signal?: AbortSignal;
}

export async function produceLoad(producer: Producer, opts: ProduceOptions): Promise<{ sent: number; truth: Truth; ms: number }> {
  const truth: Truth = {};
  const batchSize = opts.batchSize ?? (opts.rate > 0 ? Math.max(1, Math.min(500, Math.ceil(opts.rate / 20))) : 1000);
  const t0 = Date.now();
  let sent = 0;
  let batch: ViewEvent[] = [];
  let lastReport = t0;
  const inflight: Promise<unknown>[] = [];
  const flush = async () => {
    const messages = batch.map((e) => ({ key: e.region_id, value: JSON.stringify(e) }));
    batch = [];
    inflight.push(producer.send({ topic: opts.topic, acks: -1, messages }));
    if (inflight.length >= 4) await inflight.shift();
  };
  for (const e of generateEvents(opts)) {
    if (opts.signal?.aborted) break;
    batch.push(e);
    addToTruth(truth, e);
    sent++;
    if (batch.length >= batchSize) {
      await flush();
      if (opts.rate > 0) {
        const due = t0 + (sent * 1000) / opts.rate;
        const wait = due - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      if (Date.now() - lastReport >= 1000) {
        lastReport = Date.now();
        opts.onProgress?.(sent, lastReport - t0);
      }
    }
  }
  if (batch.length) await flush();
  await Promise.all(inflight);
  opts.onProgress?.(sent, Date.now() - t0);
  return { sent, truth, ms: Date.now() - t0 };
}
