/** The project's clients of its servers, built in one place from the config. */
import { Kafka, logLevel, type RetryOptions } from 'kafkajs';
import { Client as CassandraClient, policies } from 'cassandra-driver';
import { Redis } from 'ioredis';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import type { Config } from './config';

export interface KafkaClientOptions {
  /** kafkajs's retry of a failed request (its own default: 5 retries with back-off). */
  retries?: number;
  /** Milliseconds a request may take. */
  requestTimeout?: number;
}

export function kafkaClient(cfg: Config, clientId: string, opts: KafkaClientOptions = {}): Kafka {
  const retry: RetryOptions | undefined = opts.retries === undefined ? undefined : { retries: opts.retries };
  return new Kafka({
    clientId,
    brokers: [...cfg.kafka.brokers],
    logLevel: logLevel.WARN,
    ...(retry ? { retry } : {}),
    ...(opts.requestTimeout ? { requestTimeout: opts.requestTimeout, connectionTimeout: opts.requestTimeout } : {}),
  });
}

/** A Temporal client of the configured namespace (its connection is closed with `client.connection.close()`). */
export async function temporalClient(cfg: Config): Promise<Client> {
  return new Client({ connection: await Connection.connect({ address: cfg.temporal.address }), namespace: cfg.temporal.namespace });
}

/** The connection a Worker polls through. */
export function temporalWorkerConnection(cfg: Config): Promise<NativeConnection> {
  return NativeConnection.connect({ address: cfg.temporal.address });
}

export function cassandraClient(cfg: Config, keyspace?: string): CassandraClient {
  return new CassandraClient({
    contactPoints: [`${cfg.host}:${cfg.cassandra.port}`],
    localDataCenter: cfg.cassandra.localDataCenter,
    keyspace,
    // Back within seconds of Cassandra's return (the default backs off to 10 minutes).
    policies: { reconnection: new policies.reconnection.ConstantReconnectionPolicy(1000) },
  });
}

/**
 * A Redis client of the configured database. `hotPath`: commands wait for a reconnect (the
 * ingest and the checkpoints must not lose a step); `api`: commands fail at once while Redis
 * is unreachable (an answer from the record beats a hanging request).
 */
export function redisClient(cfg: Config, use: 'hotPath' | 'api'): Redis {
  const base = { host: cfg.host, port: cfg.redis.port, db: cfg.redis.db };
  if (use === 'hotPath') return new Redis({ ...base, maxRetriesPerRequest: null });
  const r = new Redis({ ...base, enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 2000 });
  r.on('error', () => undefined); // reconnects by itself; every failed read reports its own error
  return r;
}
