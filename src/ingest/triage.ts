/**
 * Triage of one partition batch, before anything is written: valid events by region, dead
 * letters with their reason, and copies of late events for the late topic. Pure.
 */
import type { IHeaders, KafkaMessage } from 'kafkajs';
import type { SessionSpec, WindowSpec } from '../config';
import { eventTimeError, SCHEMA_VERSION_HEADER, validateEvent } from '../events';
import { lateMaskBit, sessionLateBit } from '../keys';
import type { OffsetEvent } from '../actors/region-actor';

export const DLQ_REASON_HEADER = 'dlq-reason';
export const LATE_REASON_HEADER = 'late-reason';

/**
 * Bit k set when the event is beyond the allowed lateness of window spec k at watermark
 * `wm`; bit sessionLateBit(q) when it is more than session spec q's lateness behind the
 * watermark (its session may be sealed).
 */
export function lateMask(timestamp: number, windows: readonly WindowSpec[], wm: number | undefined, sessions: readonly SessionSpec[] = []): number {
  if (wm === undefined) return 0;
  let mask = 0;
  for (let k = 0; k < windows.length; k++) {
    const w = windows[k];
    const end = Math.floor(timestamp / w.sizeMs) * w.sizeMs + w.sizeMs;
    if (end + w.latenessMs <= wm) mask |= lateMaskBit(k);
  }
  for (let q = 0; q < sessions.length; q++) {
    if (timestamp + sessions[q].latenessMs <= wm) mask |= sessionLateBit(q);
  }
  return mask;
}

function header(headers: IHeaders | undefined, name: string): string | undefined {
  const v = headers?.[name];
  if (v === undefined) return undefined;
  const one = Array.isArray(v) ? v[0] : v;
  return one === undefined ? undefined : one.toString();
}

/** A coarse class of a rejection reason, for the metric label (a bounded set). */
export function reasonKind(reason: string): string {
  if (reason.startsWith('unknown schema-version')) return 'schema_version';
  if (reason.includes('UTF-8') || reason.includes('JSON') || reason === 'empty value') return 'malformed';
  if (reason.includes('bytes, more than')) return 'too_large';
  if (reason.includes('before the clock')) return 'too_old';
  if (reason.includes('ahead of the clock')) return 'future';
  return 'invalid_field';
}

export interface TriageOptions {
  /** Oldest accepted event time: now minus this. */
  maxAgeMs: number;
  /** Newest accepted event time: now plus this. */
  maxAheadMs: number;
  now: number;
  windows: readonly WindowSpec[];
  sessions?: readonly SessionSpec[];
  /** The partition's watermark before this batch (undefined: none yet). */
  watermark?: number;
}

export type OutRecord = { key: Buffer | null; value: Buffer | null; headers: IHeaders };

export interface Triaged {
  byRegion: Map<string, OffsetEvent[]>;
  /** Each region's earliest event time in the batch. */
  earliest: Map<string, number>;
  dead: OutRecord[];
  late: OutRecord[];
  maxEventTime: number;
  /** Events whose Kafka key names another region than their region_id (counted under region_id). */
  keyMismatch: number;
}

/** Splits one partition batch, in one pass, into valid events per region, dead letters and late-event copies. */
export function triage(topic: string, partition: number, messages: KafkaMessage[], opts: TriageOptions): Triaged {
  const byRegion = new Map<string, OffsetEvent[]>();
  /** Each region's name as a Kafka key (UTF-8), made once per batch: a record's key is compared as bytes, not decoded. */
  const keys = new Map<string, Buffer>();
  const earliest = new Map<string, number>();
  const dead: OutRecord[] = [];
  const late: OutRecord[] = [];
  let maxEventTime = -Infinity;
  let keyMismatch = 0;
  const limits = { maxAheadMs: opts.maxAheadMs, maxAgeMs: opts.maxAgeMs };
  for (const m of messages) {
    const v = validateEvent(m.value, header(m.headers, SCHEMA_VERSION_HEADER));
    const reason = v.ok ? eventTimeError(v.event.timestamp, opts.now, limits) : v.reason;
    if (reason !== undefined || !v.ok) {
      dead.push({
        key: m.key,
        value: m.value,
        headers: { ...(m.headers ?? {}), [DLQ_REASON_HEADER]: reason!, 'dlq-source': `${topic}/${partition}/${m.offset}` },
      });
      continue;
    }
    const region = v.event.region_id;
    // The event's own region_id counts; the key only routes it (a mismatch is counted, README).
    if (m.key !== null) {
      let key = keys.get(region);
      if (!key) keys.set(region, (key = Buffer.from(region)));
      if (!m.key.equals(key)) keyMismatch++;
    }
    const ts = v.event.timestamp;
    if (ts > maxEventTime) maxEventTime = ts;
    const mask = lateMask(ts, opts.windows, opts.watermark, opts.sessions);
    if (mask) {
      // Still counted (all-time, and windows still within their lateness); audited here.
      const missed = [
        ...opts.windows.filter((_, k) => mask & lateMaskBit(k)).map((w) => `${w.name}:${Math.floor(ts / w.sizeMs) * w.sizeMs}`),
        ...(opts.sessions ?? []).filter((_, q) => mask & sessionLateBit(q)).map((sp) => `${sp.name} (session)`),
      ];
      late.push({
        key: m.key,
        value: m.value,
        headers: {
          ...(m.headers ?? {}),
          [LATE_REASON_HEADER]: `event time ${ts} is beyond the allowed lateness of window(s) ${missed.join(', ')} at watermark ${opts.watermark}`,
          'late-source': `${topic}/${partition}/${m.offset}`,
        },
      });
    }
    let list = byRegion.get(region);
    if (!list) byRegion.set(region, (list = []));
    list.push({ offset: m.offset, event: v.event, lateMask: mask });
    if (ts < (earliest.get(region) ?? Infinity)) earliest.set(region, ts);
  }
  return { byRegion, earliest, dead, late, maxEventTime, keyMismatch };
}
