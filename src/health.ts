/**
 * Probes of the four servers through the project's own clients: is it answering, and
 * which version is it. Used by `npm run stack:*` and by the API's GET /healthz.
 */
import { Redis } from 'ioredis';
import { Kafka, logLevel, ConfigResourceTypes } from 'kafkajs';
import { auth, Client as CassandraClient, errors as cassandraErrors } from 'cassandra-driver';
import { Connection } from '@temporalio/client';
import type { Config } from './config';
import { cassandraAuth, kafkaSasl, redisLogin, temporalConnectionOptions } from './clients';

/** The superuser a fresh Cassandra node with PasswordAuthenticator creates (the bootstrap drops it). */
export const CASSANDRA_DEFAULT_SUPERUSER = 'cassandra';

/** True where a server answered but refused the credentials (so it runs, and is not this checkout's, or predates them). */
export function isAuthFailure(e: unknown): boolean {
  if (e instanceof cassandraErrors.NoHostAvailableError) return Object.values(e.innerErrors as Record<string, unknown>).some(isAuthFailure);
  if (e instanceof cassandraErrors.AuthenticationError) return true;
  const m = String((e as Error)?.message ?? e);
  return /WRONGPASS|NOAUTH|NOPERM|SASL|[Aa]uthentication failed|AuthenticationError|Provided username .* are incorrect/.test(m);
}

export type ServiceName = 'redis' | 'kafka' | 'cassandra' | 'temporal';
export const SERVICES: readonly ServiceName[] = ['redis', 'kafka', 'cassandra', 'temporal'];

export interface Probe {
  /** One of SERVICES, or a service only the stack scripts run (Prometheus). */
  service: string;
  up: boolean;
  version?: string;
  detail?: string;
  error?: string;
  ms: number;
}

/** Rejects with a timeout error if `p` has not settled after `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export async function timed(service: string, timeoutMs: number, fn: () => Promise<{ version: string; detail?: string }>): Promise<Probe> {
  const t0 = Date.now();
  try {
    const r = await withTimeout(fn(), timeoutMs, service);
    return { service, up: true, ...r, ms: Date.now() - t0 };
  } catch (e) {
    return { service, up: false, error: (e as Error).message, ms: Date.now() - t0 };
  }
}

export async function probeRedis(cfg: Config, timeoutMs = 2000): Promise<Probe> {
  return timed('redis', timeoutMs, async () => {
    const r = new Redis({
      ...redisLogin(cfg, 'ops'),
      lazyConnect: true,
      connectTimeout: timeoutMs,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      enableOfflineQueue: false,
    });
    r.on('error', () => undefined); // the awaited command reports the failure
    try {
      await r.connect();
      const info = await r.info('server');
      const version = /redis_version:([^\r\n]+)/.exec(info)?.[1] ?? 'unknown';
      return { version };
    } finally {
      r.disconnect();
    }
  });
}

export async function probeKafka(cfg: Config, timeoutMs = 4000): Promise<Probe> {
  return timed('kafka', timeoutMs, async () => {
    const kafka = new Kafka({
      clientId: 'heavy-hitters-probe',
      brokers: [...cfg.kafka.brokers],
      sasl: kafkaSasl(cfg, 'admin'),
      connectionTimeout: Math.min(timeoutMs, 3000),
      requestTimeout: timeoutMs,
      retry: { retries: 0 },
      logLevel: logLevel.NOTHING,
    });
    const admin = kafka.admin();
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      const brokerId = String(cluster.brokers[0]?.nodeId ?? 1);
      // Kafka has no "server version" request; the broker's own inter-broker protocol
      // version (derived from its release) is the nearest thing it reports about itself.
      const cfgs = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: ConfigResourceTypes.BROKER, name: brokerId, configNames: ['inter.broker.protocol.version'] }],
      });
      const ibp = cfgs.resources[0]?.configEntries.find((c) => c.configName === 'inter.broker.protocol.version')?.configValue;
      return { version: ibp ?? 'unknown', detail: `cluster ${cluster.clusterId}, ${cluster.brokers.length} broker(s)` };
    } finally {
      await admin.disconnect();
    }
  });
}

export async function probeCassandra(cfg: Config, timeoutMs = 5000): Promise<Probe> {
  return timed('cassandra', timeoutMs, async () => {
    const ask = async (authProvider: auth.AuthProvider) => {
      const client = new CassandraClient({
        contactPoints: [`${cfg.host}:${cfg.cassandra.port}`],
        localDataCenter: cfg.cassandra.localDataCenter,
        socketOptions: { connectTimeout: timeoutMs, readTimeout: timeoutMs },
        pooling: { warmup: false },
        authProvider,
      });
      try {
        const rs = await client.execute('SELECT release_version FROM system.local');
        return { version: String(rs.first()?.get('release_version') ?? 'unknown') };
      } finally {
        await client.shutdown();
      }
    };
    try {
      return await ask(cassandraAuth(cfg, 'admin'));
    } catch (e) {
      // A node started moments ago has only its default superuser until the bootstrap replaces it.
      if (!isAuthFailure(e)) throw e;
      return await ask(new auth.PlainTextAuthProvider(CASSANDRA_DEFAULT_SUPERUSER, CASSANDRA_DEFAULT_SUPERUSER)).catch(() => {
        throw e;
      });
    }
  });
}

export async function probeTemporal(cfg: Config, timeoutMs = 4000): Promise<Probe> {
  return timed('temporal', timeoutMs, async () => {
    const conn = await Connection.connect({ ...temporalConnectionOptions(cfg), connectTimeout: timeoutMs });
    try {
      const info = await conn.workflowService.getSystemInfo({});
      const ui = await fetch(`http://${cfg.host}:${cfg.temporal.uiPort}/`, { signal: AbortSignal.timeout(timeoutMs) });
      if (!ui.ok) throw new Error(`Web UI on port ${cfg.temporal.uiPort} answered HTTP ${ui.status}`);
      return { version: info.serverVersion || 'unknown', detail: `UI http://${cfg.host}:${cfg.temporal.uiPort}` };
    } finally {
      await conn.close();
    }
  });
}

export const PROBES: Record<ServiceName, (cfg: Config, timeoutMs?: number) => Promise<Probe>> = {
  redis: probeRedis,
  kafka: probeKafka,
  cassandra: probeCassandra,
  temporal: probeTemporal,
};

export function probeAll(cfg: Config): Promise<Probe[]> {
  return Promise.all(SERVICES.map((s) => PROBES[s](cfg)));
}
