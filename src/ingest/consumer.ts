/**
 * The hot path: a kafkajs consumer-group member reading partition batches (eachBatch).
 * Per batch: validate, dead-letter the rejects (their reason in a header), route the valid
 * events to region actors, wait until every actor's atomic Redis step and the side topics
 * acknowledged, mark the batch applied in Redis, then commit the Kafka offset.
 *
 * Where a partition resumes is Redis's own applied mark (positions.ts), read whenever the
 * member is assigned partitions or Redis changes epoch; a batch fetched from beyond it (a
 * stale fetch, a group offset ahead of a Redis that lost state) is refused and the
 * partition is sought back. A crash anywhere replays from the mark; the actors' offset
 * fences and event_id dedup make the replay count nothing twice.
 */
import { lineLogger } from '../log';
import { PartitionAssigners, type Admin, type Batch, type Consumer, type EachBatchPayload, type Kafka, type Producer } from 'kafkajs';
import type { Redis } from 'ioredis';
import type { Client as TemporalClient } from '@temporalio/client';
import { EpochChanged, RedisStateLost, type ActorSystem } from '../actors/region-actor';
import { EPOCH_KEY, watermarksKey } from '../keys';
import type { RegionRecord } from '../store/record';
import { ensureEpoch } from '../store/rebuild';
import type { Config } from '../config';
import type { Metrics } from '../metrics';
import { advancePosition, handedNotApplied, readPositions, recordHanded } from '../store/positions';
import { sendChunked } from '../produce-chunked';
import { DLQ_REASON_HEADER, reasonKind, triage, type Triaged } from './triage';
import { Watermarks, type WatermarkSnapshot } from './watermarks';
import { WatermarkReporter } from './watermark-reporter';
import { GroupOffsets } from './group-offsets';
import { imbalance, loadAssigner } from './assigner';
import { StallWatch, type Stall } from './stall';

/** The consumer's settings, each with its unit and reason. */
export const CONSUMER_SETTINGS = {
  /** A member silent this long leaves the group; its partitions go to the others. */
  sessionTimeout: 15_000, // 15 s
  /** A rebalance reaches a member with its next heartbeat: the sooner, the shorter the pause. */
  heartbeatInterval: 1_000, // 1 s
  /** Bytes fetched per partition per request: one batch, one flush per region. */
  maxBytesPerPartition: 2 * 1024 * 1024, // 2 MiB
  /** An idle fetch returns after this long: bounds how stale an idle partition's counts get. */
  maxWaitTimeInMs: 200, // 200 ms
  /** How often the member checks Redis's epoch when no batch is flowing (a loss or a rebuild). */
  epochCheckMs: 1_000, // 1 s
  /** Batches of one partition handed to the actors and not yet marked applied: the next is fetched meanwhile. */
  maxBatchesInFlight: 4,
  /** How often a member commits again what it applied of every partition it holds (another member may have overwritten it). */
  offsetRefreshMs: 5_000, // 5 s
  /**
   * The longest a member waits, when it takes partitions over, for their previous holder's
   * batches in flight to be applied before it resumes them from the applied marks (a holder
   * that died leaves batches that never are).
   */
  handoffWaitMs: 3_000, // 3 s
  /** Failed flushes in a row (not a Redis loss) after which the member gives up: the activity's retry starts a fresh one. */
  failuresBeforeRestart: 8,
} as const;

/** A batch handed to the actors, waiting to be marked applied. */
interface InFlight {
  partition: number;
  last: string;
  highWatermark: string;
  records: number;
  /**
   * What complete() reports of the batch's triage. Not the triage itself: its events and its
   * dead and late records (which hold slices of the whole fetch response) are let go of once
   * handed on, instead of living until the batch's last flush.
   */
  outcome: Outcome;
  epoch: string;
  generation: number;
  done: Promise<unknown>;
  /** When it was handed to the actors (ms). */
  at: number;
}

/** A batch's triage, as far as its completion reports it. */
interface Outcome {
  maxEventTime: number;
  earliest: Triaged['earliest'];
  keyMismatch: number;
  late: number;
  /** Each dead letter's kind of reason (metric label). */
  deadKinds: string[];
}

export interface IngestDeps {
  cfg: Config;
  kafka: Kafka;
  /** Shared producer of the process (dead letters, late-event copies). */
  producer: Producer;
  actors: ActorSystem;
  redis: Redis;
  /** The record Redis is rebuilt from when it lost its state. */
  record: RegionRecord;
  /** The process's Kafka admin client (log ends): a partition taken over reports its lag at once. */
  admin?: Admin;
  metrics?: Metrics;
  log?: (s: string) => void;
  /** Where watermarks are signalled (the region coordinators); without it none are sent. */
  temporal?: { client: TemporalClient; taskQueue: string };
  /** The current time (ms); event times are checked against it. */
  now?: () => number;
  /** Told what this member holds and does (health). */
  onState?: (s: IngestState) => void;
  /** The supervising workflow's run id (reported with the state). */
  run?: string;
  /**
   * Told when the member stalled (stall.ts) with what it holds; the worker process exits so
   * its primary starts it afresh (it resumes from the applied marks). Without it the member
   * crashes (the activity's retry starts a new one).
   */
  onStall?: (stall: Stall, report: string) => void;
  /**
   * Resolves when the member may join the group (the cluster runtime's members join together:
   * src/runtime/join-gate.ts). If it rejects, the member joins anyway. Without it, at once.
   */
  beforeJoin?: () => Promise<void>;
}

export interface IngestProgress {
  batches: number;
  consumed: number;
  deadLettered: number;
}

/** What one ingest member is doing, for health checks. */
export interface IngestState {
  state: 'starting' | 'consuming' | 'stopped';
  partitions: number[];
  /** When the last batch was applied (ms), null before the first. */
  lastBatchAt: number | null;
  epoch: string | null;
  /** The run of the supervising workflow this member belongs to (null outside one). */
  run: string | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs the consumer until `signal` aborts (then drains: the in-flight batch finishes, its
 * offsets are committed, the consumer leaves the group) or the consumer crashes (rejects,
 * so the supervising workflow retries). As the group's leader it also returns, drained the
 * same way, when a rebalance by load is worth it: the supervising workflow starts it again.
 * `onProgress` runs after each batch.
 */
export async function runIngest(deps: IngestDeps, signal: AbortSignal, onProgress?: (p: IngestProgress) => void): Promise<IngestProgress> {
  const { cfg, kafka, producer, actors, metrics, redis, record } = deps;
  const topic = cfg.kafka.topic;
  const now = deps.now ?? Date.now;
  const log = deps.log ?? lineLogger('ingest');
  const progress: IngestProgress = { batches: 0, consumed: 0, deadLettered: 0 };
  const state: IngestState = { state: 'starting', partitions: [], lastBatchAt: null, epoch: null, run: deps.run ?? null };
  const assigned = new Set<number>();
  const tell = () => deps.onState?.({ ...state, partitions: [...assigned].sort((a, b) => a - b) });
  tell();
  const consumer: Consumer = kafka.consumer({
    groupId: cfg.ingest.groupId,
    sessionTimeout: CONSUMER_SETTINGS.sessionTimeout,
    heartbeatInterval: CONSUMER_SETTINGS.heartbeatInterval,
    maxBytesPerPartition: CONSUMER_SETTINGS.maxBytesPerPartition,
    maxWaitTimeInMs: CONSUMER_SETTINGS.maxWaitTimeInMs,
    // By load, so one member does not hold most regions (assigner.ts); round robin stays
    // listed for members of an older version during a rolling restart.
    partitionAssigners: [loadAssigner, PartitionAssigners.roundRobin],
    // A crash is reported to Temporal (activity failure -> retry), not retried silently here.
    retry: { retries: 5, restartOnFailure: async () => false },
  });
  // The group leader leaves (drained, as on a shutdown) when a rebalance by load is worth
  // it; the supervising workflow starts the member again at once, and its join rebalances.
  const rejoin = new AbortController();
  const stopping = AbortSignal.any([signal, rejoin.signal]);
  let leader = false;
  let joinedAt = 0;
  const crashed = new Promise<never>((_, reject) => {
    consumer.on(consumer.events.CRASH, (e) => reject(e.payload.error));
  });
  crashed.catch(() => undefined); // raced below

  let epoch = await ensureEpoch(redis, record, log, signal);
  state.epoch = epoch;
  /** Per held partition, the next offset to apply under `epoch` (null: the group's own offset). */
  const positions = new Map<number, bigint | null>();
  /**
   * Batches handed to the actors and not yet marked applied, per partition, in order. A
   * resume (a failure, a new epoch) starts a new generation: the older ones are forgotten
   * (their partitions are read again from the marks; what they did apply, the fences skip).
   */
  let generation = 0;
  const inflight = new Map<number, InFlight[]>();
  // A partition with a batch still flushing is not idle, however long the flush takes.
  const watermarks = new Watermarks(cfg.ingest.watermarkDelayMs, cfg.ingest.idleTimeoutMs, now, (p) => (inflight.get(p)?.length ?? 0) > 0);
  const reporter = new WatermarkReporter({
    cfg,
    redis,
    watermarks,
    held: () => assigned,
    temporal: deps.temporal,
    log,
    metrics,
    serialize: (region, fn) => actors.actor(region).exclusive(fn),
  });

  const chains = new Map<number, Promise<void>>();
  let failures = 0;
  let fatal: (e: Error) => void = () => undefined;
  const failedForGood = new Promise<never>((_, reject) => (fatal = reject));
  failedForGood.catch(() => undefined); // raced below

  /**
   * Reads where every held partition resumes (Redis's applied marks, under its current
   * epoch; rebuilding Redis first when it lost its state) and seeks there. Runs after a
   * failure, whenever Redis changes epoch, and (for the new partitions) after an assignment;
   * batches wait for it.
   */
  let resuming: Promise<void> = Promise.resolve();
  /** Since when the running resume has been running (null: none running or waiting), and how many are running or waiting. */
  let resumeSince: number | null = null;
  let resumesPending = 0;
  /** Per held partition, when a batch of it was last fetched (or it was assigned here). */
  const fetchedAt = new Map<number, number>();
  /** Partitions whose lag a batch has reported since they were assigned here. */
  const lagReported = new Set<number>();
  /**
   * A partition taken over reports its lag at once (log end minus where it resumes), not at
   * its next batch: an idle one may have none for long, and its last holder removed its own.
   */
  const reportLagOnAssignment = async (parts: [number, bigint][]): Promise<void> => {
    if (!deps.admin || !metrics || parts.length === 0) return;
    try {
      const ends = new Map((await deps.admin.fetchTopicOffsets(topic)).map((o) => [o.partition, BigInt(o.high)]));
      for (const [p, next] of parts) {
        const end = ends.get(p);
        if (end === undefined || !assigned.has(p) || lagReported.has(p)) continue;
        metrics.lag.set({ topic, partition: String(p) }, Math.max(0, Number(end - next)));
      }
    } catch (e) {
      log(`cannot read the log ends of newly assigned partitions (their lag is reported at their next batch): ${(e as Error).message}`);
    }
  };
  const groupOffsets = new GroupOffsets(CONSUMER_SETTINGS.offsetRefreshMs);
  const resume = (why: string, only?: number[]): Promise<void> => {
    resumeSince ??= now();
    resumesPending++;
    return (resuming = resuming.then(async () => {
      try {
        await resumeOnce(why, only);
      } finally {
        resumeSince = --resumesPending === 0 ? null : now();
      }
    }));
  };
  /**
   * Partitions taken over: the batches their previous holder handed its actors are let land
   * (the applied marks reach what it handed) before they resume from the marks, for at most
   * handoffWaitMs. Resumed at once, they were read again from behind those batches and their
   * records dropped by the fences (a bench run whose second worker joined late read 32.9 % of
   * its records twice; one with this wait 10.3 %).
   */
  const awaitHandoff = async (parts: number[]): Promise<void> => {
    const t0 = Date.now();
    const until = t0 + CONSUMER_SETTINGS.handoffWaitMs;
    for (;;) {
      let waiting: number[];
      try {
        waiting = await handedNotApplied(
          redis,
          topic,
          parts.filter((p) => assigned.has(p)),
        );
      } catch {
        return; // Redis unreachable: the resume's own retries deal with it
      }
      if (waiting.length === 0 || Date.now() >= until || stopping.aborted) {
        const waited = Date.now() - t0;
        if (waited >= 100) {
          log(
            `partitions ${parts.join(',')} taken over: waited ${waited} ms for their previous holder's batches in flight${waiting.length ? `, not applied on partitions ${waiting.join(',')} (resumed from what Redis applied)` : ''}`,
          );
        }
        return;
      }
      await sleep(100);
    }
  };
  /** Per partition paused while it is taken over: the join that paused it (a later join's take-over resumes it, not an earlier one's). */
  const takingOver = new Map<number, number>();
  let joins = 0;
  /**
   * Partitions taken over are paused (kafkajs neither fetches them nor hands over batches of
   * them) until their previous holder's batches landed and they were sought to their marks:
   * the member's other partitions go on meanwhile, and no batch is fetched from the group's
   * committed offset, behind the mark, only to be dropped.
   */
  const takeOver = async (parts: number[]): Promise<void> => {
    const join = ++joins;
    for (const p of parts) takingOver.set(p, join);
    consumer.pause([{ topic, partitions: parts }]);
    try {
      await awaitHandoff(parts);
      await resume('assignment', parts);
    } finally {
      const mine = parts.filter((p) => takingOver.get(p) === join);
      for (const p of mine) takingOver.delete(p);
      if (mine.length) consumer.resume([{ topic, partitions: mine }]);
    }
  };
  const resumeOnce = async (why: string, only?: number[]): Promise<void> => {
    if (!only) {
      generation++;
      inflight.clear();
    }
    for (;;) {
      try {
        const current = (await redis.get(EPOCH_KEY)) ?? (await ensureEpoch(redis, record, log, stopping));
        const parts = (only ?? [...assigned]).filter((p) => assigned.has(p));
        const read = await readPositions(redis, topic, parts);
        if (read.epoch !== current) continue; // changed again meanwhile
        if (current !== epoch) {
          log(`epoch ${epoch} -> ${current}: partitions ${parts.join(',') || '(none)'} resume from what Redis has applied`);
          if (only) {
            // A new epoch concerns every partition, not only the new ones.
            only = undefined;
            generation++;
            inflight.clear();
            continue;
          }
        }
        epoch = current;
        state.epoch = epoch;
        if (!only) positions.clear();
        const commits: { topic: string; partition: number; offset: string }[] = [];
        for (const [p, next] of read.next) {
          if (!assigned.has(p)) continue;
          positions.set(p, next);
          if (next === null) continue;
          consumer.seek({ topic, partition: p, offset: next.toString() });
          commits.push({ topic, partition: p, offset: next.toString() });
        }
        // The group's offsets say the same (for lag monitoring and tools). Not awaited: batches
        // wait for this resume, and during a rebalance the group refuses commits until the
        // member rejoins, which it does only once those batches return. A refused commit stays
        // owed; the watcher retries it every second.
        if (commits.length) {
          for (const c of commits) groupOffsets.rewind(c);
          consumer.commitOffsets(commits).then(
            () => commits.forEach((c) => groupOffsets.landed(c.partition, c.offset)),
            (e: Error) => {
              metrics?.failures.inc({ operation: 'commit_offsets' });
              log(`cannot commit where partitions ${commits.map((c) => c.partition).join(',')} resume (owed, retried every second): ${e.message}`);
            },
          );
        }
        if (only) void reportLagOnAssignment(commits.map((c) => [c.partition, BigInt(c.offset)]));
        return;
      } catch (e) {
        if (stopping.aborted) return;
        log(`cannot read where to resume (${why}): ${(e as Error).message}; retrying`);
        await sleep(1000);
      }
    }
  };

  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    leader = e.payload.isLeader;
    joinedAt = Date.now();
    const before = new Set(assigned);
    assigned.clear();
    for (const p of e.payload.memberAssignment[topic] ?? []) assigned.add(p);
    watermarks.retain(assigned);
    for (const p of assigned) if (!before.has(p)) fetchedAt.set(p, now());
    for (const p of before) {
      if (assigned.has(p)) continue;
      fetchedAt.delete(p);
      positions.delete(p);
      // Its new owner reports its lag: a last value left here would add to that one.
      metrics?.lag.remove({ topic, partition: String(p) });
      lagReported.delete(p);
    }
    tell();
    // Partitions held before keep their place (their batches in flight go on); new ones start from their marks.
    const fresh = [...assigned].filter((p) => !before.has(p) || !positions.has(p));
    const gone = [...before].filter((p) => !assigned.has(p));
    log(
      `joined the group${leader ? ' as its leader' : ''}: partitions ${[...assigned].sort((a, b) => a - b).join(',') || 'none'}${fresh.length ? `, new ${fresh.join(',')}` : ''}${gone.length ? `, given up ${gone.join(',')}` : ''}`,
    );
    // kafkajs fetches every partition of a new assignment from the group's committed offset,
    // also the ones this member kept. Those lag where it got to by the batches in flight, and
    // more while a rebalance refuses commits: a kept partition would be read again from there
    // and the records below its position dropped (440,000 records read for 400,000 in
    // test/e2e/assignment.test.ts's two rebalances). It goes on from its position instead.
    for (const p of assigned) {
      const next = before.has(p) ? positions.get(p) : undefined;
      if (next !== undefined && next !== null) consumer.seek({ topic, partition: p, offset: next.toString() });
    }
    if (fresh.length === 0) {
      void resume('assignment', fresh); // a new epoch meanwhile concerns the kept ones too
      return;
    }
    void takeOver(fresh);
    // Partitions taken over from another member carry on from its last watermark state.
    redis.hmget(watermarksKey(topic), ...fresh.map(String)).then(
      (snaps) => snaps.forEach((s, i) => s && assigned.has(fresh[i]) && watermarks.seed(fresh[i], JSON.parse(s) as WatermarkSnapshot)),
      (err: Error) => log(`cannot read the partitions' watermark state: ${err.message}`),
    );
  });

  /** A batch's flushes finished: mark it applied (in order), move the watermark, commit; or resume after a failure. */
  const complete = async (b: InFlight): Promise<void> => {
    try {
      await b.done;
    } catch (e) {
      if (b.generation !== generation) return;
      const err = e as Error;
      if (!(err instanceof EpochChanged || err instanceof RedisStateLost)) {
        failures++;
        metrics?.failures.inc({ operation: 'flush' });
        log(`a batch of partition ${b.partition} failed (${err.message}); resuming from what Redis has applied`);
        if (failures >= CONSUMER_SETTINGS.failuresBeforeRestart) fatal(err);
        else await sleep(Math.min(5000, 250 * 2 ** failures));
      }
      void resume(err.message);
      return;
    }
    if (b.generation !== generation) return;
    if (!(await advancePosition(redis, topic, b.epoch, b.partition, b.last))) {
      void resume('Redis changed epoch after the flushes');
      return;
    }
    failures = 0;
    const q = inflight.get(b.partition);
    if (q?.[0] === b) q.shift();
    const lagAfter = BigInt(b.highWatermark) - BigInt(b.last) - 1n;
    if (Number.isFinite(b.outcome.maxEventTime)) watermarks.observe(b.partition, b.outcome.maxEventTime, b.outcome.earliest, lagAfter <= 0n);
    // For lag monitoring and tools; where a partition resumes is the applied mark above.
    const commit = { topic, partition: b.partition, offset: (BigInt(b.last) + 1n).toString() };
    groupOffsets.advance(commit);
    await consumer.commitOffsets([commit]).then(
      () => groupOffsets.landed(commit.partition, commit.offset),
      (e: Error) => {
        metrics?.failures.inc({ operation: 'commit_offsets' });
        log(`cannot commit the offset of partition ${b.partition} (the applied mark holds it; retried every second): ${e.message}`);
      },
    );
    progress.batches++;
    progress.consumed += b.records;
    progress.deadLettered += b.outcome.deadKinds.length;
    state.lastBatchAt = now();
    if (metrics) {
      for (const kind of b.outcome.deadKinds) metrics.deadLettered.inc({ kind });
      metrics.late.inc(b.outcome.late);
      metrics.keyMismatch.inc(b.outcome.keyMismatch);
      metrics.lag.set({ topic, partition: String(b.partition) }, Math.max(0, Number(lagAfter)));
      lagReported.add(b.partition);
    }
    onProgress?.(progress);
  };

  const eachBatch = async ({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload) => {
    if (!isRunning() || isStale() || stopping.aborted || batch.messages.length === 0) return;
    fetchedAt.set(batch.partition, now());
    // Paused while it is taken over (a batch fetched before the pause): sought to its mark and
    // fetched again once it resumes.
    if (takingOver.has(batch.partition)) return;
    await resuming;
    const ep = epoch;
    const gen = generation;
    const { partition } = batch;
    let next = positions.get(partition);
    if (next === undefined) {
      const read = await readPositions(redis, topic, [partition]);
      if (read.epoch !== ep) return resume('epoch changed');
      if (gen !== generation) return; // a resume ran meanwhile: it positioned the partition
      next = read.next.get(partition)!;
      positions.set(partition, next);
    }
    // kafkajs's Batch carries the offset it was fetched from (not in its type declarations).
    const fetchedFrom = BigInt((batch as Batch & { fetchedOffset: string }).fetchedOffset);
    if (next !== null && fetchedFrom > next) {
      // Fetched from beyond what Redis has applied: never skip records; go back to the mark.
      consumer.seek({ topic, partition, offset: next.toString() });
      return;
    }
    const from = next;
    // In offset order (never empty here): only a batch that starts below the mark (a re-fetch) has records to drop.
    let messages = batch.messages;
    if (from !== null && BigInt(messages[0].offset) < from) messages = messages.filter((m) => BigInt(m.offset) >= from);
    metrics?.fenced.inc(batch.messages.length - messages.length);
    metrics?.consumed.inc(batch.messages.length);
    const last = batch.lastOffset();
    const triaged = triage(topic, partition, messages, {
      maxAgeMs: cfg.ingest.maxAgeMs,
      maxAheadMs: cfg.ingest.maxAheadMs,
      now: now(),
      windows: cfg.ingest.windows,
      sessions: cfg.ingest.sessions,
      watermark: watermarks.of(partition),
    });
    const flushes = [...triaged.byRegion].map(([region, events]) => actors.actor(region).apply(partition, events, ep));
    const side = [
      ...(triaged.dead.length ? [{ topic: cfg.kafka.deadLetterTopic, messages: triaged.dead }] : []),
      ...(triaged.late.length ? [{ topic: cfg.kafka.lateTopic, messages: triaged.late }] : []),
    ];
    const done = Promise.all([...flushes, side.length ? sendChunked(producer, side) : undefined]);
    done.catch(() => undefined); // reported in order by complete()
    const outcome: Outcome = {
      maxEventTime: triaged.maxEventTime,
      earliest: triaged.earliest,
      keyMismatch: triaged.keyMismatch,
      late: triaged.late.length,
      deadKinds: triaged.dead.map((d) => reasonKind(String(d.headers[DLQ_REASON_HEADER]))),
    };
    const b: InFlight = {
      partition,
      last,
      highWatermark: batch.highWatermark,
      records: batch.messages.length,
      outcome,
      epoch: ep,
      generation: gen,
      done,
      at: now(),
    };
    let q = inflight.get(partition);
    if (!q) inflight.set(partition, (q = []));
    q.push(b);
    // The next batch of the partition is fetched while these flush; they complete in order.
    positions.set(partition, BigInt(last) + 1n);
    recordHanded(redis, topic, ep, partition, last);
    resolveOffset(last);
    const chain = (chains.get(partition) ?? Promise.resolve()).then(() => complete(b));
    chains.set(partition, chain);
    // Bounded: at most this many batches of a partition in flight.
    if (q.length > CONSUMER_SETTINGS.maxBatchesInFlight) await q[0].done.catch(() => undefined);
    await heartbeat();
  };

  const stallWatch = new StallWatch(cfg.ingest.stallMs, now);
  /** Since when the oldest batch in flight or resume has been pending (null: nothing is). */
  const pendingSince = (): number | null => {
    let oldest = resumeSince;
    for (const q of inflight.values()) if (q.length && (oldest === null || q[0].at < oldest)) oldest = q[0].at;
    return oldest;
  };
  /** Of `parts`, those with records past where they resume (the log end beyond the position). */
  const waitingRecords = async (parts: number[]): Promise<number[]> => {
    if (!deps.admin) return [];
    const ends = new Map((await deps.admin.fetchTopicOffsets(topic)).map((o) => [o.partition, BigInt(o.high)]));
    return parts.filter((p) => {
      const at = positions.get(p);
      const end = ends.get(p);
      return assigned.has(p) && at !== undefined && at !== null && end !== undefined && end > at;
    });
  };
  /** One line: the stall, and what the member and its actors hold. */
  const stallReport = (stall: Stall): string => {
    const t = now();
    const what =
      stall.kind === 'pending'
        ? `a batch or a resume pending for ${Math.round(stall.forMs / 1000)} s`
        : `no batch fetched for ${Math.round(stall.forMs / 1000)} s for partition(s) ${stall.partitions!.join(',')} though records wait`;
    const flights = [...inflight]
      .filter(([, q]) => q.length)
      .map(([p, q]) => `p${p}: ${q.length} (oldest ${Math.round((t - q[0].at) / 1000)} s, generation ${q[0].generation}, epoch ${q[0].epoch})`);
    const pos = [...assigned].sort((a, b) => a - b).map((p) => `p${p}@${positions.get(p) ?? '-'}`);
    return (
      `ingest stalled (Redis answering): ${what}; generation ${generation}, epoch ${epoch}, ` +
      `resume ${resumeSince === null ? 'none' : `pending ${Math.round((t - resumeSince) / 1000)} s (${resumesPending})`}; ` +
      `in flight: ${flights.join('; ') || 'none'}; positions: ${pos.join(' ') || 'none'}; actors: ${actors.describe().join('; ') || 'all idle'}`
    );
  };

  if (deps.beforeJoin) {
    const t0 = Date.now();
    const aborted = new Promise<void>((resolve) => stopping.addEventListener('abort', () => resolve(), { once: true }));
    await Promise.race([deps.beforeJoin(), aborted]).then(
      () => stopping.aborted || log(`joining the group after ${Date.now() - t0} ms at the runtime's gate`),
      (e: Error) => log(`joining the group without the runtime's gate: ${e.message}`),
    );
    if (stopping.aborted) {
      // Stopped while waiting: never joined, nothing handed on.
      state.state = 'stopped';
      tell();
      return progress;
    }
  }
  await consumer.connect();
  let watcher: NodeJS.Timeout | undefined;
  let balanceCheck: NodeJS.Timeout | undefined;
  let groupAdmin: Admin | undefined;
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: Math.max(1, cfg.kafka.partitions),
      eachBatch,
    });
    state.state = 'consuming';
    tell();
    reporter.start();
    // Notice a loss or a rebuild of Redis even when no batch is flowing, and keep the group's
    // offsets equal to what was applied (refused commits retried, overwritten ones put right).
    let toldBatchAt: number | null = null;
    let stallCheck: Promise<void> | null = null;
    let stalled = false;
    watcher = setInterval(() => {
      stallWatch.tick(CONSUMER_SETTINGS.epochCheckMs);
      if (redis.status !== 'ready') stallWatch.waitingOnRedis();
      if (!stallCheck && !stalled) {
        stallCheck = stallWatch
          .check({ pendingSince: pendingSince(), unfetchedSince: fetchedAt, backpressure: actors.backpressured() }, waitingRecords)
          .then(
            (stall) => {
              if (!stall || stalled || stopping.aborted) return;
              stalled = true;
              const report = stallReport(stall);
              log(report);
              metrics?.failures.inc({ operation: 'ingest_stall' });
              if (deps.onStall) deps.onStall(stall, report);
              else fatal(new Error(report));
            },
            (e: Error) => log(`cannot check for a stall: ${e.message}`),
          )
          .finally(() => (stallCheck = null));
      }
      // Health hears of the last batch at most once a second (a message to the primary per batch would cost).
      if (state.lastBatchAt !== toldBatchAt) {
        toldBatchAt = state.lastBatchAt;
        tell();
      }
      redis.get(EPOCH_KEY).then(
        (e) => {
          if (e === null) stallWatch.waitingOnRedis(); // lost: a rebuild runs
          if (e !== epoch) void resume('epoch check');
        },
        () => undefined, // Redis unreachable: the next check (or batch) tells
      );
      groupOffsets.sync(assigned, Date.now(), (offsets) => consumer.commitOffsets(offsets)).catch(() => metrics?.failures.inc({ operation: 'commit_offsets' }));
    }, CONSUMER_SETTINGS.epochCheckMs);
    balanceCheck = setInterval(() => {
      if (!leader || stopping.aborted || Date.now() - joinedAt < cfg.ingest.balanceCheckMs) return;
      // As the member itself (the group's ACL is the ingest user's), connected at the first check.
      groupAdmin ??= kafka.admin();
      const admin = groupAdmin;
      admin
        .connect()
        .then(() => imbalance(admin, cfg.ingest.groupId, topic))
        .then(
          (why) => {
            if (!why || !leader || stopping.aborted) return;
            log(`leaving the group to rebalance it ${why}`);
            rejoin.abort();
          },
          (err: Error) => log(`cannot check the group's balance: ${err.message}`),
        );
    }, cfg.ingest.balanceCheckMs);
    const aborted = new Promise<void>((resolve) => {
      if (stopping.aborted) resolve();
      else stopping.addEventListener('abort', () => resolve(), { once: true });
    });
    await Promise.race([aborted, crashed, failedForGood]);
  } finally {
    clearInterval(watcher);
    clearInterval(balanceCheck);
    reporter.stop();
    // The batches in flight finish (flushed, marked applied, committed) before the member
    // leaves the group; new batches are not taken (the signal is aborted).
    await Promise.race([Promise.all(chains.values()), sleep(30_000)]);
    state.state = 'stopped';
    for (const p of assigned) metrics?.lag.remove({ topic, partition: String(p) });
    assigned.clear();
    tell();
    await consumer.disconnect();
    await groupAdmin?.disconnect().catch(() => undefined);
    await actors.drain();
  }
  return progress;
}
