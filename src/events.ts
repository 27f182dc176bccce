/**
 * The event contract external producers rely on (README "Event contract"):
 * topic `views`, Kafka key = region_id, value = UTF-8 JSON
 * `{"event_id", "post_id", "region_id", "timestamp", "user_id"?}`, optional header
 * `schema-version` (absent = 1). Validation never throws: it returns the event or the
 * reason it was rejected, which goes into the dead-letter record.
 */

import { isUtf8 } from 'node:buffer';

export interface ViewEvent {
  event_id: string;
  post_id: string;
  region_id: string;
  /** Event time, integer milliseconds since the epoch. */
  timestamp: number;
  user_id?: string;
}

/** Ids are non-empty strings of at most this many UTF-8 bytes. */
export const MAX_ID_BYTES = 128;

/**
 * A record value larger than this is refused (a dead letter, or a 400 from POST /events):
 * an event is a few hundred bytes, and one event must never weigh like a batch.
 */
export const MAX_EVENT_BYTES = 16 * 1024;

/** `region=global` names the merge of every region: no event can belong to it. */
export const RESERVED_REGION = 'global';

/**
 * Schema versions this reader accepts. Version 2 only adds optional fields (for example
 * `device`), so it is read exactly as version 1: unknown fields are ignored.
 */
export const SUPPORTED_SCHEMA_VERSIONS: ReadonlySet<string> = new Set(['1', '2']);
export const SCHEMA_VERSION_HEADER = 'schema-version';

export type Validation = { ok: true; event: ViewEvent } | { ok: false; reason: string };

const reject = (reason: string): Validation => ({ ok: false, reason });

function idError(obj: Record<string, unknown>, field: string, required: boolean): string | undefined {
  const v = obj[field];
  if (v === undefined) return required ? `missing field ${field}` : undefined;
  if (typeof v !== 'string') return `${field} must be a string, got ${v === null ? 'null' : typeof v}`;
  if (v.length === 0) return `${field} must not be empty`;
  // Byte length without encoding: at most 3 bytes per UTF-16 unit, so short strings pass at once.
  if (v.length * 3 > MAX_ID_BYTES && Buffer.byteLength(v, 'utf8') > MAX_ID_BYTES) {
    return `${field} is longer than ${MAX_ID_BYTES} bytes`;
  }
  return undefined;
}

/** Validates one Kafka record value (and its schema-version header) against the contract. */
export function validateEvent(value: Buffer | null, schemaVersion?: string): Validation {
  if (schemaVersion !== undefined && !SUPPORTED_SCHEMA_VERSIONS.has(schemaVersion)) {
    return reject(`unknown schema-version "${schemaVersion.slice(0, 32)}" (supported: ${[...SUPPORTED_SCHEMA_VERSIONS].join(', ')})`);
  }
  if (value === null || value.length === 0) return reject('empty value');
  if (value.length > MAX_EVENT_BYTES) return reject(`value is ${value.length} bytes, more than the ${MAX_EVENT_BYTES} an event may have`);
  // A native check, then a plain decode (a fatal TextDecoder is several times slower).
  if (!isUtf8(value)) return reject('value is not valid UTF-8');
  const text = value.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return reject(`value is not valid JSON: ${(e as Error).message.slice(0, 100)}`);
  }
  return validateObject(parsed);
}

/** Validates an already-parsed event (POST /events items, and the decoded Kafka value). */
export function validateObject(parsed: unknown): Validation {
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return reject('value must be a JSON object');
  const o = parsed as Record<string, unknown>;
  const err = idError(o, 'event_id', true) ?? idError(o, 'post_id', true) ?? idError(o, 'region_id', true) ?? idError(o, 'user_id', false);
  if (err) return reject(err);
  if (o.region_id === RESERVED_REGION) return reject(`region_id "${RESERVED_REGION}" is reserved (region=global is the merge of every region)`);
  const ts = o.timestamp;
  if (ts === undefined) return reject('missing field timestamp');
  if (typeof ts !== 'number' || !Number.isSafeInteger(ts) || ts < 0) {
    return reject('timestamp must be a non-negative integer of milliseconds since the epoch');
  }
  const event: ViewEvent = { event_id: o.event_id as string, post_id: o.post_id as string, region_id: o.region_id as string, timestamp: ts };
  if (o.user_id !== undefined) event.user_id = o.user_id as string;
  return { ok: true, event };
}

/** How far an event's time may be from the clock where it arrives. */
export interface EventTimeLimits {
  /** Latest accepted event time: now plus this (HH_EVENT_MAX_AHEAD). */
  maxAheadMs: number;
  /** Earliest accepted event time: now minus this (HH_EVENT_MAX_AGE). */
  maxAgeMs: number;
}

/**
 * Why an event time is outside the sane range at `now`, or undefined when it is inside.
 * One event far in the future would otherwise move its partition's watermark (every
 * later event late), and its TTLs and window counts with it.
 */
export function eventTimeError(ts: number, now: number, limits: EventTimeLimits): string | undefined {
  if (ts > now + limits.maxAheadMs) return `timestamp ${ts} is more than ${limits.maxAheadMs} ms ahead of the clock (${now})`;
  if (ts < now - limits.maxAgeMs) return `timestamp ${ts} is more than ${limits.maxAgeMs} ms before the clock (${now})`;
  return undefined;
}
