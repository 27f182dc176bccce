/**
 * The project's clients of its servers, built in one place from the config. Every client
 * logs in as one role (src/secrets.ts: SERVER_USERS) with the password the config holds.
 */
import * as fs from 'node:fs';
import { Kafka, logLevel, type RetryOptions, type SASLOptions } from 'kafkajs';
import { auth, Client as CassandraClient, policies } from 'cassandra-driver';
import { Redis, type RedisOptions } from 'ioredis';
import { Client, Connection, type ConnectionOptions } from '@temporalio/client';
import { NativeConnection, type NativeConnectionOptions } from '@temporalio/worker';
import type { Config } from './config';
import { kafkaLogCreator } from './log';
import type { CassandraRole, KafkaRole, RedisRole } from './secrets';
import { fixKafkajsRequestQueue } from './kafka-request-queue';

// Before any Kafka client exists: kafkajs 2.2.4's queues would otherwise spin a 1 ms timer per connection.
fixKafkajsRequestQueue();

export interface KafkaClientOptions {
  /** kafkajs's retry of a failed request (its own default: 5 retries with back-off). */
  retries?: number;
  /** Milliseconds a request may take. */
  requestTimeout?: number;
}

/** kafkajs's SASL/SCRAM-SHA-512 settings of a role. */
export function kafkaSasl(cfg: Config, role: KafkaRole): SASLOptions {
  const login = cfg.credentials.kafka[role];
  return { mechanism: 'scram-sha-512', username: login.user, password: login.password ?? '' };
}

export function kafkaClient(cfg: Config, clientId: string, role: KafkaRole, opts: KafkaClientOptions = {}): Kafka {
  const retry: RetryOptions | undefined = opts.retries === undefined ? undefined : { retries: opts.retries };
  return new Kafka({
    clientId,
    brokers: [...cfg.kafka.brokers],
    sasl: kafkaSasl(cfg, role),
    logLevel: logLevel.WARN,
    logCreator: kafkaLogCreator,
    ...(retry ? { retry } : {}),
    ...(opts.requestTimeout ? { requestTimeout: opts.requestTimeout, connectionTimeout: opts.requestTimeout } : {}),
  });
}

/** How every Temporal connection of the project is made: mTLS and an API key are configuration (HH_TEMPORAL_*). */
export function temporalConnectionOptions(cfg: Config): ConnectionOptions & NativeConnectionOptions {
  const t = cfg.temporal.tls;
  const read = (p: string | undefined) => (p ? fs.readFileSync(p) : undefined);
  const cert = read(t?.certPath);
  const key = read(t?.keyPath);
  return {
    address: cfg.temporal.address,
    ...(cfg.temporal.apiKey ? { apiKey: cfg.temporal.apiKey } : {}),
    ...(t
      ? {
          tls: {
            ...(cert && key ? { clientCertPair: { crt: cert, key } } : {}),
            ...(t.caPath ? { serverRootCACertificate: read(t.caPath) } : {}),
            ...(t.serverName ? { serverNameOverride: t.serverName } : {}),
          },
        }
      : {}),
  };
}

/** A Temporal client of the configured namespace (its connection is closed with `client.connection.close()`). */
export async function temporalClient(cfg: Config): Promise<Client> {
  return new Client({ connection: await Connection.connect(temporalConnectionOptions(cfg)), namespace: cfg.temporal.namespace });
}

/** The connection a Worker polls through. */
export function temporalWorkerConnection(cfg: Config): Promise<NativeConnection> {
  return NativeConnection.connect(temporalConnectionOptions(cfg));
}

export function cassandraAuth(cfg: Config, role: CassandraRole): auth.PlainTextAuthProvider {
  const login = cfg.credentials.cassandra[role];
  return new auth.PlainTextAuthProvider(login.user, login.password ?? '');
}

export function cassandraClient(cfg: Config, role: CassandraRole, keyspace?: string): CassandraClient {
  return new CassandraClient({
    contactPoints: [`${cfg.host}:${cfg.cassandra.port}`],
    localDataCenter: cfg.cassandra.localDataCenter,
    keyspace,
    authProvider: cassandraAuth(cfg, role),
    // Back within seconds of Cassandra's return (the default backs off to 10 minutes).
    policies: { reconnection: new policies.reconnection.ConstantReconnectionPolicy(1000) },
    // Maps as Map: a map keyed by post id (region_counts) may hold `__proto__` like any other id.
    encoding: { map: Map },
  });
}

/** ioredis's login of a role (host, port, user, password). */
export function redisLogin(cfg: Config, role: RedisRole): Pick<RedisOptions, 'host' | 'port' | 'username' | 'password'> {
  const login = cfg.credentials.redis[role];
  return { host: cfg.host, port: cfg.redis.port, username: login.user, password: login.password };
}

/**
 * A Redis client of the configured database. `hotPath` (user hh-ingest): commands wait for a
 * reconnect (the ingest and the checkpoints must not lose a step); `api` (user hh-api, reads
 * and rate-limit buckets only): commands fail at once while Redis is unreachable (an answer
 * from the record beats a hanging request).
 */
export function redisClient(cfg: Config, use: 'hotPath' | 'api', log?: (s: string) => void): Redis {
  if (use === 'hotPath') {
    const r = new Redis({ ...redisLogin(cfg, 'ingest'), db: cfg.redis.db, maxRetriesPerRequest: null });
    logOutages(r, log);
    return r;
  }
  const r = new Redis({ ...redisLogin(cfg, 'api'), db: cfg.redis.db, enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 2000 });
  r.on('error', () => undefined); // reconnects by itself; every failed read reports its own error
  return r;
}

/**
 * One line when a client loses Redis and one when it has it back, not one per reconnect
 * attempt (without a listener, ioredis prints every failed attempt as an unhandled error).
 */
export function logOutages(r: Redis, log: (s: string) => void = () => undefined): void {
  let down: { since: number; attempts: number } | null = null;
  r.on('error', (e: Error) => {
    if (down) down.attempts++;
    else {
      down = { since: Date.now(), attempts: 1 };
      log(`Redis unreachable (${e.message}); commands wait for the reconnect`);
    }
  });
  r.on('ready', () => {
    if (!down) return;
    log(`Redis reachable again after ${Date.now() - down.since} ms (${down.attempts} failed attempt(s))`);
    down = null;
  });
}

/** A client as the stack's own user (tests, benchmarks, the stack scripts): everything, FLUSHDB included. */
export function opsRedis(cfg: Config, db = cfg.redis.db, extra: RedisOptions = {}): Redis {
  return new Redis({ ...redisLogin(cfg, 'ops'), db, ...extra });
}
