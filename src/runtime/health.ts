/**
 * GET /healthz of a running worker process: every dependency through the process's own
 * clients (no new connections per request, each probe bounded to a second), whether every
 * worker slot has an ingest member consuming, how far behind the stream Redis is (and
 * whether that is growing), and whether Redis is recovering from a rebuild.
 *
 * `down` (503) without Redis: nothing can be answered live. `degraded` (200) when answers
 * still flow but something needs an operator: a server down, a slot not ingesting, lag
 * growing, a replay after a rebuild.
 */
import type { Redis } from 'ioredis';
import { ConfigResourceTypes, type Admin } from 'kafkajs';
import type { Client as CassandraClient } from 'cassandra-driver';
import type { Client as TemporalClient } from '@temporalio/client';
import type { Config } from '../config';
import { SERVICES, withTimeout, type ServiceName } from '../health';
import { parseRecovery, type Recovery } from '../store/positions';
import { EPOCH_KEY, appliedKey, recoveryKey } from '../keys';
import type { SlotStatus } from './ipc';

export interface HealthClients {
  redis: Redis;
  /** An admin client that does not retry (a probe must answer within its bound). */
  kafkaAdmin: Admin;
  cassandra: CassandraClient;
  temporal: TemporalClient;
}

export interface DependencyHealth {
  up: boolean;
  version: string | null;
  error: string | null;
  ms: number;
}

export interface HealthReport {
  status: 'ok' | 'degraded' | 'down';
  /** Each thing an operator should look at, in words. */
  problems: string[];
  dependencies: Record<ServiceName, DependencyHealth>;
  ingest: {
    slots: { slot: number; pid: number | null; state: string; partitions: number[]; last_batch_at: number | null; supervisor_run: string | null }[];
    /** Records of the topic not yet applied in Redis, per partition and in total; null when unknown. */
    lag: { total: number; partitions: Record<string, number>; growing: boolean } | null;
  };
  /** The lifecycle processes (the workflows and their activities; none listed: the workers run them). */
  lifecycle: { process: number; pid: number | null; state: 'running' | 'restarting' }[];
  recovery: (Recovery & { note: string }) | null;
}

/** Bounds and thresholds of the checks. */
export const HEALTH_SETTINGS = {
  /** Each dependency probe answers within this (ms). */
  probeTimeoutMs: 1000,
  /** A report is reused this long (ms): a burst of requests probes once. */
  reuseMs: 1000,
  /** Lag is sampled this often (ms)… */
  lagSampleMs: 5000,
  /** …and is "growing" when it rose in each of this many consecutive samples (30 s)… */
  lagGrowingSamples: 6,
  /** …to at least this many records. */
  lagGrowingMin: 1000,
} as const;

export class RuntimeHealth {
  private readonly lagSamples: number[] = [];
  private sampler?: NodeJS.Timeout;
  private cached?: { at: number; report: Promise<HealthReport> };

  constructor(
    private readonly cfg: Config,
    private readonly clients: HealthClients,
    /** Every worker slot's process and ingest member (from the cluster's primary). */
    private readonly slots: () => Promise<SlotStatus[]>,
  ) {}

  /** Starts sampling the lag (so "growing" has a history). */
  start(): void {
    this.sampler = setInterval(() => {
      this.lag().then(
        (l) => {
          if (!l) return;
          this.lagSamples.push(l.total);
          if (this.lagSamples.length > HEALTH_SETTINGS.lagGrowingSamples + 1) this.lagSamples.shift();
        },
        () => undefined, // unknown this round: Kafka or Redis is down, which the report says
      );
    }, HEALTH_SETTINGS.lagSampleMs);
  }

  stop(): void {
    clearInterval(this.sampler);
  }

  report(): Promise<HealthReport> {
    const now = Date.now();
    if (this.cached && now - this.cached.at < HEALTH_SETTINGS.reuseMs) return this.cached.report;
    const report = this.build();
    this.cached = { at: now, report };
    report.catch(() => (this.cached = undefined));
    return report;
  }

  private async build(): Promise<HealthReport> {
    const [dependencies, slots, lag, redisState] = await Promise.all([
      this.dependencies(),
      withTimeout(this.slots(), HEALTH_SETTINGS.probeTimeoutMs, 'the primary').catch(() => null),
      withTimeout(this.lag(), HEALTH_SETTINGS.probeTimeoutMs, 'lag').catch(() => null),
      withTimeout(this.redisState(), HEALTH_SETTINGS.probeTimeoutMs, 'redis').catch(() => null),
    ]);
    return assess({ dependencies, slots, lag, lagSamples: this.lagSamples, redisState });
  }

  private async redisState(): Promise<{ epoch: string | null; recovery: Recovery | null }> {
    const [[, epoch], [, hash]] = (await this.clients.redis.multi().get(EPOCH_KEY).hgetall(recoveryKey(this.cfg.kafka.topic)).exec())! as [
      [null, string | null],
      [null, Record<string, string>],
    ];
    return { epoch, recovery: parseRecovery(hash) };
  }

  /** Log end minus what Redis has applied, per partition of the topic. */
  private async lag(): Promise<{ total: number; partitions: Record<string, number> }> {
    const [ends, applied] = await Promise.all([
      this.clients.kafkaAdmin.fetchTopicOffsets(this.cfg.kafka.topic),
      this.clients.redis.hgetall(appliedKey(this.cfg.kafka.topic)),
    ]);
    const partitions: Record<string, number> = {};
    let total = 0;
    for (const e of ends) {
      const mark = applied[String(e.partition)] ?? applied['*'];
      const behind = Math.max(0, Number(e.high) - (mark === undefined ? Number(e.low) : Number(mark) + 1));
      partitions[String(e.partition)] = behind;
      total += behind;
    }
    return { total, partitions };
  }

  private async dependencies(): Promise<Record<ServiceName, DependencyHealth>> {
    const { redis, kafkaAdmin, cassandra, temporal } = this.clients;
    const t = HEALTH_SETTINGS.probeTimeoutMs;
    const probes: Record<ServiceName, () => Promise<string>> = {
      redis: async () => /redis_version:([^\r\n]+)/.exec(await redis.info('server'))?.[1] ?? 'unknown',
      kafka: async () => {
        const cluster = await kafkaAdmin.describeCluster();
        // Kafka reports no server version; its inter-broker protocol version follows the release.
        const cfgs = await kafkaAdmin.describeConfigs({
          includeSynonyms: false,
          resources: [{ type: ConfigResourceTypes.BROKER, name: String(cluster.brokers[0]?.nodeId ?? 1), configNames: ['inter.broker.protocol.version'] }],
        });
        return cfgs.resources[0]?.configEntries.find((c) => c.configName === 'inter.broker.protocol.version')?.configValue ?? 'unknown';
      },
      cassandra: async () =>
        String((await cassandra.execute('SELECT release_version FROM system.local', [], { readTimeout: t })).first()?.get('release_version') ?? 'unknown'),
      temporal: async () => {
        const info = await temporal.connection.withDeadline(Date.now() + t, () => temporal.connection.workflowService.getSystemInfo({}));
        return info.serverVersion || 'unknown';
      },
    };
    const entries = await Promise.all(
      SERVICES.map(async (s): Promise<[ServiceName, DependencyHealth]> => {
        const t0 = Date.now();
        try {
          const version = await withTimeout(probes[s](), t, s);
          return [s, { up: true, version, error: null, ms: Date.now() - t0 }];
        } catch (e) {
          return [s, { up: false, version: null, error: (e as Error).message, ms: Date.now() - t0 }];
        }
      }),
    );
    return Object.fromEntries(entries) as Record<ServiceName, DependencyHealth>;
  }
}

/** What a health report is assessed from (each null where it could not be read). */
export interface HealthInputs {
  dependencies: Record<ServiceName, DependencyHealth>;
  slots: SlotStatus[] | null;
  lag: { total: number; partitions: Record<string, number> } | null;
  /** Recent lag totals, oldest first, one per sample interval. */
  lagSamples: readonly number[];
  redisState: { epoch: string | null; recovery: Recovery | null } | null;
}

/** The report and its status from what was read. Pure. */
export function assess({ dependencies, slots, lag, lagSamples, redisState }: HealthInputs): HealthReport {
  const problems: string[] = [];
  for (const s of SERVICES) if (!dependencies[s].up) problems.push(`${s} is down: ${dependencies[s].error}`);
  const slotRows = (slots ?? [])
    .filter((s) => !s.lifecycle)
    .map((s) => ({
      slot: s.slot,
      pid: s.pid,
      state: s.pid === null ? 'restarting' : (s.ingest?.state ?? 'starting'),
      partitions: s.ingest?.partitions ?? [],
      last_batch_at: s.ingest?.lastBatchAt ?? null,
      supervisor_run: s.ingest?.run ?? null,
    }));
  if (slots === null) problems.push('cannot ask the primary for the worker slots');
  for (const s of slotRows) if (s.state !== 'consuming') problems.push(`worker slot ${s.slot} is not ingesting (${s.state})`);
  const lifecycle = (slots ?? [])
    .filter((s) => s.lifecycle)
    .map((s) => ({ process: s.slot, pid: s.pid, state: s.pid === null ? ('restarting' as const) : ('running' as const) }));
  for (const l of lifecycle) {
    if (l.state !== 'running')
      problems.push(`lifecycle process ${l.process} is not running (${l.state}): windows, the global merge and the ingest supervisors wait for it`);
  }
  const n = HEALTH_SETTINGS.lagGrowingSamples;
  const recent = lagSamples.slice(-n);
  const growing = recent.length === n && recent[n - 1] >= HEALTH_SETTINGS.lagGrowingMin && recent.every((v, i) => i === 0 || v > recent[i - 1]);
  if (growing) problems.push(`consumer lag is growing: ${lag?.total ?? recent[n - 1]} records not yet applied`);
  let recovery: HealthReport['recovery'] = null;
  if (redisState?.epoch === null) problems.push('Redis lost its state: answers come from the record until it is rebuilt');
  if (redisState?.recovery) {
    const r = redisState.recovery;
    recovery = { ...r, note: `Redis was rebuilt from the record at ${new Date(r.at).toISOString()}; ${r.partitions.length} partition(s) still replaying` };
    problems.push(`recovering: ${recovery.note}`);
  }
  const status = !dependencies.redis.up ? 'down' : problems.length ? 'degraded' : 'ok';
  return { status, problems, dependencies, ingest: { slots: slotRows, lag: lag ? { ...lag, growing } : null }, lifecycle, recovery };
}
