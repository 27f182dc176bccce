/**
 * The hot path: a kafkajs consumer-group member reading partition batches (eachBatch).
 * Per batch: validate, dead-letter the rejects (with their reason in a header), route
 * the valid events to region actors, wait until every actor's atomic Redis step is
 * acknowledged and the dead letters are acknowledged by Kafka, then commit the offset.
 * A crash anywhere before the commit redelivers the batch; the actors' offset fence
 * and event_id dedup make the redelivery count nothing twice.
 */
import { Kafka, logLevel, type Consumer, type EachBatchPayload, type IHeaders, type Producer, type KafkaMessage } from 'kafkajs';
import type { Redis } from 'ioredis';
import { advanceTrailing, EpochChanged, RedisStateLost, SESSION_BIT0, type ActorSystem, type OffsetEvent } from '../actors/region-actor';
import { EPOCH_KEY, watermarksKey } from '../keys';
import { ensureEpoch, type RegionRecord } from './record';
import type { Config, SessionSpec, WindowSpec } from '../config';
import type { Client as TemporalClient } from '@temporalio/client';
import { Watermarks } from './watermarks';
import { regionCoordinatorWorkflow } from '../workflows/coordinator';
import { coordinatorWorkflowId, progressSignal } from '../workflows/definitions';
import { SCHEMA_VERSION_HEADER, validateEvent } from '../events';
import type { Metrics } from '../metrics';

export const DLQ_REASON_HEADER = 'dlq-reason';
export const LATE_REASON_HEADER = 'late-reason';

/**
 * Bit k set when the event is beyond the allowed lateness of window spec k at watermark
 * `wm`; bit SESSION_BIT0 + q when it is more than session spec q's lateness behind the
 * watermark (its session may be sealed).
 */
export function lateMask(timestamp: number, windows: readonly WindowSpec[], wm: number | undefined, sessions: readonly SessionSpec[] = []): number {
  if (wm === undefined) return 0;
  let mask = 0;
  for (let k = 0; k < windows.length; k++) {
    const w = windows[k];
    const end = Math.floor(timestamp / w.sizeMs) * w.sizeMs + w.sizeMs;
    if (end + w.latenessMs <= wm) mask |= 1 << k;
  }
  for (let q = 0; q < sessions.length; q++) {
    if (timestamp + sessions[q].latenessMs <= wm) mask |= 1 << (SESSION_BIT0 + q);
  }
  return mask;
}

export interface IngestDeps {
  cfg: Config;
  kafka: Kafka;
  /** Shared producer of the process (dead letters). */
  producer: Producer;
  actors: ActorSystem;
  redis: Redis;
  /** The record Redis is rebuilt from (and the offsets to rewind to after a rebuild). */
  record: RegionRecord;
  metrics?: Metrics;
  log?: (s: string) => void;
  /** Where watermarks are signalled (the region coordinators); without it none are sent. */
  temporal?: { client: TemporalClient; taskQueue: string };
  /** The current time (ms); the dedup horizon is checked against it. */
  now?: () => number;
}

export interface IngestProgress {
  batches: number;
  consumed: number;
  deadLettered: number;
}

function header(headers: IHeaders | undefined, name: string): string | undefined {
  const v = headers?.[name];
  if (v === undefined) return undefined;
  const one = Array.isArray(v) ? v[0] : v;
  return one === undefined ? undefined : one.toString();
}

/** A coarse class of a rejection reason, for the metric label. */
function reasonKind(reason: string): string {
  if (reason.startsWith('unknown schema-version')) return 'schema_version';
  if (reason.includes('UTF-8') || reason.includes('JSON') || reason === 'empty value') return 'malformed';
  if (reason.includes('dedup horizon')) return 'too_old';
  return 'invalid_field';
}

export function kafkaClient(cfg: Config, clientId: string): Kafka {
  return new Kafka({ clientId, brokers: [...cfg.kafka.brokers], logLevel: logLevel.WARN });
}

export interface TriageOptions {
  dedupHorizonMs: number;
  now: number;
  windows: readonly WindowSpec[];
  sessions?: readonly SessionSpec[];
  /** The partition's watermark before this batch (undefined: none yet). */
  watermark?: number;
}

type OutRecord = { key: Buffer | null; value: Buffer | null; headers: IHeaders };

/**
 * Splits one partition batch, in one pass, into valid events per region (with each
 * region's earliest event time), dead letters and late-event audit records.
 * Exported for unit tests; pure.
 */
export function triage(
  topic: string,
  partition: number,
  messages: KafkaMessage[],
  opts: TriageOptions,
): {
  byRegion: Map<string, OffsetEvent[]>;
  earliest: Map<string, number>;
  dead: OutRecord[];
  late: OutRecord[];
  maxEventTime: number;
} {
  const byRegion = new Map<string, OffsetEvent[]>();
  const earliest = new Map<string, number>();
  const dead: OutRecord[] = [];
  const late: OutRecord[] = [];
  let maxEventTime = -Infinity;
  const oldest = opts.now - opts.dedupHorizonMs;
  for (const m of messages) {
    const v = validateEvent(m.value, header(m.headers, SCHEMA_VERSION_HEADER));
    let reason: string | undefined;
    if (!v.ok) reason = v.reason;
    else if (v.event.timestamp < oldest) reason = `timestamp ${v.event.timestamp} is older than the dedup horizon (${opts.dedupHorizonMs} ms)`;
    if (reason !== undefined || !v.ok) {
      dead.push({
        key: m.key,
        value: m.value,
        headers: {
          ...(m.headers ?? {}),
          [DLQ_REASON_HEADER]: reason!,
          'dlq-source': `${topic}/${partition}/${m.offset}`,
        },
      });
      continue;
    }
    const ts = v.event.timestamp;
    if (ts > maxEventTime) maxEventTime = ts;
    const mask = lateMask(ts, opts.windows, opts.watermark, opts.sessions);
    if (mask) {
      // Still counted (all-time, and windows still within their lateness); audited here.
      const missed = [
        ...opts.windows.filter((_, k) => mask & (1 << k)).map((w) => `${w.name}:${Math.floor(ts / w.sizeMs) * w.sizeMs}`),
        ...(opts.sessions ?? []).filter((_, q) => mask & (1 << (SESSION_BIT0 + q))).map((sp) => `${sp.name} (session)`),
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
    const region = v.event.region_id;
    let list = byRegion.get(region);
    if (!list) byRegion.set(region, (list = []));
    list.push({ offset: m.offset, event: v.event, lateMask: mask });
    if (ts < (earliest.get(region) ?? Infinity)) earliest.set(region, ts);
  }
  return { byRegion, earliest, dead, late, maxEventTime };
}

/**
 * Runs the consumer until `signal` aborts (then drains: the in-flight batch finishes,
 * its offsets are committed, the consumer leaves the group) or the consumer crashes
 * (rejects, so the supervising workflow retries). `onProgress` runs after each batch.
 */
export async function runIngest(deps: IngestDeps, signal: AbortSignal, onProgress?: (p: IngestProgress) => void): Promise<IngestProgress> {
  const { cfg, kafka, producer, actors, metrics, redis, record } = deps;
  const now = deps.now ?? Date.now;
  const log = deps.log ?? ((m: string) => process.stdout.write(`[ingest] ${m}\n`));
  const progress: IngestProgress = { batches: 0, consumed: 0, deadLettered: 0 };
  const consumer: Consumer = kafka.consumer({
    groupId: cfg.ingest.groupId,
    sessionTimeout: 15_000,
    heartbeatInterval: 3_000,
    maxBytesPerPartition: 2 * 1024 * 1024,
    // An idle fetch returns after this long: bounds how stale an idle partition's counts get.
    maxWaitTimeInMs: 200,
    // A crash is reported to Temporal (activity failure -> retry), not retried silently here.
    retry: { retries: 5, restartOnFailure: async () => false },
  });

  const crashed = new Promise<never>((_, reject) => {
    consumer.on(consumer.events.CRASH, (e) => reject(e.payload.error));
  });
  crashed.catch(() => undefined);

  let epoch = await ensureEpoch(redis, record, log, signal);
  const watermarks = new Watermarks(cfg.ingest.watermarkDelayMs, cfg.ingest.idleTimeoutMs, now);
  const reported = new Map<string, number>();
  const specs = [
    ...cfg.ingest.windows.map((w) => ({ name: w.name, sizeMs: w.sizeMs, latenessMs: w.latenessMs, ttlMs: w.ttlMs })),
    ...cfg.ingest.sliding.map((w) => ({ name: w.name, sizeMs: w.sizeMs, latenessMs: w.latenessMs, ttlMs: w.ttlMs, slideMs: w.slideMs, pane: w.pane })),
  ];
  const sessions = cfg.ingest.sessions.map((sp) => ({ ...sp }));
  let reporting = false;
  // Each interval, per region whose watermark moved: its trailing timeframes move (in Redis),
  // and the watermark reaches its coordinator workflow, coalesced to one signal at most.
  const reporter = setInterval(() => {
    if (reporting) return;
    reporting = true;
    const due = [...watermarks.regions()].filter(([r, p]) => p.watermark > (reported.get(r) ?? -Infinity));
    // Each held partition's watermark state, for whichever member holds it after a rebalance.
    const snaps = [...assigned].flatMap((p) => {
      const snap = watermarks.snapshot(p);
      return snap ? [String(p), JSON.stringify(snap)] : [];
    });
    Promise.all([
      snaps.length ? redis.hset(watermarksKey(cfg.kafka.topic), ...snaps) : undefined,
      ...due.map(async ([region, p]) => {
        if (cfg.ingest.mode === 'exact') await advanceTrailing(redis, region, cfg.ingest.windows, p.watermark);
        if (deps.temporal) {
          await deps.temporal.client.workflow.signalWithStart(regionCoordinatorWorkflow, {
            workflowId: coordinatorWorkflowId(region),
            taskQueue: deps.temporal.taskQueue,
            args: [{ region, specs, sessions }],
            signal: progressSignal,
            signalArgs: [{ ...p, specs, sessions }],
          });
        }
        reported.set(region, p.watermark);
        watermarks.taken(region, p.earliest);
      }),
    ])
      .catch((e: Error) => log(`watermark report failed (retrying): ${e.message}`))
      .finally(() => (reporting = false));
  }, cfg.ingest.watermarkReportMs);
  const assigned = new Set<number>();
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    assigned.clear();
    for (const p of e.payload.memberAssignment[cfg.kafka.topic] ?? []) assigned.add(p);
    watermarks.retain(assigned);
    // Partitions taken over from another member carry on from its last watermark state.
    const parts = [...assigned];
    if (parts.length === 0) return;
    redis.hmget(watermarksKey(cfg.kafka.topic), ...parts.map(String)).then(
      (snaps) => snaps.forEach((s, i) => s && assigned.has(parts[i]) && watermarks.seed(parts[i], JSON.parse(s) as { max: number; regions: string[] })),
      (err: Error) => log(`cannot read the partitions' watermark state: ${err.message}`),
    );
  });

  /**
   * Redis was rebuilt under a new epoch: every partition this member holds goes back to
   * the oldest offset the record includes; the restored fences skip what it already has.
   */
  let rewinding: Promise<void> = Promise.resolve();
  const adopt = (next: string | null): Promise<void> => {
    rewinding = rewinding.then(async () => {
      const target = next ?? (await ensureEpoch(redis, record, log, signal));
      if (target === epoch) return;
      let recorded: Map<number, bigint> | undefined;
      while (!recorded) {
        try {
          recorded = await record.recordedOffsets();
        } catch (e) {
          log(`cannot read recorded offsets yet (${(e as Error).message}); retrying`);
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
      for (const p of assigned) {
        const from = recorded.has(p) ? (recorded.get(p)! + 1n).toString() : '0';
        consumer.seek({ topic: cfg.kafka.topic, partition: p, offset: from });
      }
      log(`epoch ${epoch} -> ${target}: rewound partitions ${[...assigned].join(',')} to the record`);
      epoch = target;
    });
    return rewinding;
  };
  // Notice a rebuild (or a loss) even when no batch is flowing.
  const watcher = setInterval(() => {
    redis.get(EPOCH_KEY).then(
      (e) => (e !== epoch ? adopt(e) : undefined),
      () => undefined,
    );
  }, 1000);

  await consumer.connect();
  try {
    await consumer.subscribe({ topic: cfg.kafka.topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: Math.max(1, cfg.kafka.partitions),
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload) => {
        if (!isRunning() || isStale() || batch.messages.length === 0) return;
        await rewinding;
        const { topic, partition } = batch;
        const { byRegion, earliest, dead, late, maxEventTime } = triage(topic, partition, batch.messages, {
          dedupHorizonMs: cfg.ingest.dedupHorizonMs,
          now: now(),
          windows: cfg.ingest.windows,
          sessions: cfg.ingest.sessions,
          watermark: watermarks.of(partition),
        });
        const flushes = [...byRegion].map(([region, events]) => actors.actor(region).apply(partition, events, epoch));
        const topicMessages = [
          ...(dead.length ? [{ topic: cfg.kafka.deadLetterTopic, messages: dead }] : []),
          ...(late.length ? [{ topic: cfg.kafka.lateTopic, messages: late }] : []),
        ];
        const sideSend = topicMessages.length ? producer.sendBatch({ acks: -1, topicMessages }) : Promise.resolve();
        const results = await Promise.allSettled([...flushes, sideSend]);
        const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) {
          const e = failed.reason as Error;
          if (e instanceof EpochChanged || e instanceof RedisStateLost) {
            // Nothing of this batch is committed; the rewind replays it.
            await adopt(e instanceof EpochChanged ? e.epoch : null);
            return;
          }
          throw e;
        }
        const last = batch.lastOffset();
        const lagAfter = BigInt(batch.highWatermark) - BigInt(last) - 1n;
        if (Number.isFinite(maxEventTime)) watermarks.observe(partition, maxEventTime, earliest, lagAfter <= 0n);
        resolveOffset(last);
        await consumer.commitOffsets([{ topic, partition, offset: (BigInt(last) + 1n).toString() }]);
        progress.batches++;
        progress.consumed += batch.messages.length;
        progress.deadLettered += dead.length;
        if (metrics) {
          metrics.consumed.inc(batch.messages.length);
          for (const d of dead) metrics.deadLettered.inc({ kind: reasonKind(String(d.headers[DLQ_REASON_HEADER])) });
          metrics.late.inc(late.length);
          metrics.lag.set({ topic, partition: String(partition) }, Math.max(0, Number(lagAfter)));
        }
        onProgress?.(progress);
        await heartbeat();
      },
    });
    const aborted = new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener('abort', () => resolve(), { once: true });
    });
    await Promise.race([aborted, crashed]);
  } finally {
    clearInterval(watcher);
    clearInterval(reporter);
    // Leaving the group waits for the in-flight batch (kafkajs stops after it), so its
    // flush and commit complete; then the actors are drained.
    await consumer.disconnect();
    await actors.drain();
  }
  return progress;
}
