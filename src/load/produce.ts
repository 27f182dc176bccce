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
  /** Told of each event as it is generated (before it is sent). */
  onEvent?: (e: ViewEvent) => void;
  /** Told of each failed send before it is retried. */
  onRetry?: (e: Error, attempt: number) => void;
}

/**
 * Sends until Kafka acknowledges, however long the broker is away (a restart, a crash):
 * the truth counts an event once it is produced, so none may be given up. A send that
 * failed after Kafka wrote part of it is sent again whole; the copies carry the same
 * event_ids, which the pipeline deduplicates.
 */
async function sendUntilAcknowledged(producer: Producer, topic: string, messages: { key: string; value: string }[], opts: ProduceOptions): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await producer.send({ topic, acks: -1, messages });
      return;
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      opts.onRetry?.(e as Error, attempt);
      await new Promise((r) => setTimeout(r, Math.min(5000, 250 * attempt)));
    }
  }
}

export async function produceLoad(producer: Producer, opts: ProduceOptions): Promise<{ sent: number; truth: Truth; ms: number }> {
  const truth: Truth = {};
  // At a rate: 20 sends a second, so with 4 in flight the rate holds while Kafka takes up to
  // 200 ms to acknowledge one (with at most 500 a send, the bench's freshness load beside the
  // pipeline produced 32 % of the rate it asked for; with 5,000, 50-55 %: the cores are the limit then).
  const batchSize = opts.batchSize ?? (opts.rate > 0 ? Math.max(1, Math.min(5000, Math.ceil(opts.rate / 20))) : 1000);
  const t0 = Date.now();
  let sent = 0;
  let batch: ViewEvent[] = [];
  let lastReport = t0;
  const inflight: Promise<unknown>[] = [];
  const flush = async () => {
    const messages = batch.map((e) => ({ key: e.region_id, value: JSON.stringify(e) }));
    batch = [];
    inflight.push(sendUntilAcknowledged(producer, opts.topic, messages, opts));
    if (inflight.length >= 4) await inflight.shift();
  };
  for (const e of generateEvents(opts)) {
    if (opts.signal?.aborted) break;
    batch.push(e);
    addToTruth(truth, e);
    opts.onEvent?.(e);
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
