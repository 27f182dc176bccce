/**
 * Produces records in requests of bounded size. Kafka refuses a record batch larger than
 * the topic's `max.message.bytes` (1 MiB by default) as a whole, so a large batch of dead
 * letters, late-event copies or API events is sent in parts, each well under it.
 */
import type { IHeaders, Message, Producer } from 'kafkajs';

/** Bytes of payload per produce request. @default 512 KiB — half the broker's default limit, leaving room for the batch framing. */
export const PRODUCE_CHUNK_BYTES = 512 * 1024;

/** Approximate bytes of a record on the wire: key, value and headers. */
export function recordBytes(m: Message): number {
  let n = 16 + byteLength(m.key) + byteLength(m.value);
  for (const [k, v] of Object.entries(m.headers ?? ({} as IHeaders))) {
    n += k.length + (Array.isArray(v) ? v.reduce((a: number, x) => a + byteLength(x), 0) : byteLength(v));
  }
  return n;
}

function byteLength(v: string | Buffer | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'string' ? Buffer.byteLength(v) : v.length;
}

/** Splits messages into runs of at most `maxBytes` each (a single larger message is a run of its own). */
export function chunkByBytes<T extends Message>(messages: T[], maxBytes = PRODUCE_CHUNK_BYTES): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let size = 0;
  for (const m of messages) {
    const b = recordBytes(m);
    if (cur.length && size + b > maxBytes) {
      out.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(m);
    size += b;
  }
  if (cur.length) out.push(cur);
  return out;
}

/** Sends every message of every topic, acknowledged by all replicas, in requests of at most `maxBytes`. */
export async function sendChunked(producer: Producer, topicMessages: { topic: string; messages: Message[] }[], maxBytes = PRODUCE_CHUNK_BYTES): Promise<void> {
  const sends: Promise<unknown>[] = [];
  for (const { topic, messages } of topicMessages) {
    for (const part of chunkByBytes(messages, maxBytes)) sends.push(producer.send({ topic, acks: -1, messages: part }));
  }
  await Promise.all(sends);
}
