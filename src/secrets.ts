/**
 * Per-checkout credentials: generated once by `stack:up` into `<stack dir>/secrets.json`
 * (mode 0600, git-ignored) and read by the config module as the fallback of the `HH_*`
 * variables that override them. They never appear in logs, errors or /healthz.
 *
 * Besides the API's producer key and admin token, the file holds the password of every
 * server user the stack creates (one per role; see `SERVER_USERS`).
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The users each server gets from `stack:up`, by role. Redis: ACL users (`default` is off);
 * Kafka: SCRAM-SHA-512 principals; Cassandra: login roles (the `cassandra` superuser dropped).
 */
export const SERVER_USERS = {
  redis: {
    /** The stack's own scripts, tests and benchmarks (FLUSHDB, INFO, SLOWLOG): not an application user. */
    ops: 'hh-ops',
    /** Operators' hand tools (`npm run redis-cli`): every key, no server administration, no flushes. */
    admin: 'hh-admin',
    /** The ingest workers: the keys they own (region:*, global:*, hh:*), scripts; no server administration. */
    ingest: 'hh-ingest',
    /** The API: reads every key, writes only its rate-limit buckets. */
    api: 'hh-api',
  },
  kafka: {
    /** Super user: the broker itself, topic and ACL bootstrap, tests. */
    admin: 'hh-admin',
    /** Reads the event topic in its group, writes the dead-letter and late topics. */
    worker: 'hh-worker',
    /** The API: writes the event topic (POST /events), reads its log ends (lag in /healthz). */
    api: 'hh-api',
    /** Outside producers (the load generator, kcat): writes the event topic only. */
    producer: 'hh-producer',
  },
  cassandra: {
    /** Superuser replacing `cassandra`: migrations and grants. */
    admin: 'hh_admin',
    /** The record: reads and writes the project's tables. */
    writer: 'hh_writer',
    /** The API: reads the project's tables, appends to the audit log. */
    reader: 'hh_reader',
  },
} as const;

export type RedisRole = keyof typeof SERVER_USERS.redis;
export type KafkaRole = keyof typeof SERVER_USERS.kafka;
export type CassandraRole = keyof typeof SERVER_USERS.cassandra;

export interface StackSecrets {
  /** Bearer key of producers on POST /events. */
  producer_key: string;
  /** Bearer token of the /admin endpoints. */
  admin_token: string;
  /** Passwords of the server users, by role. */
  redis: Record<RedisRole, string>;
  kafka: Record<KafkaRole, string>;
  cassandra: Record<CassandraRole, string>;
}

export interface PartialSecrets {
  producer_key?: string;
  admin_token?: string;
  redis?: Partial<Record<RedisRole, string>>;
  kafka?: Partial<Record<KafkaRole, string>>;
  cassandra?: Partial<Record<CassandraRole, string>>;
}

export const secretsPath = (stackDir: string): string => path.join(stackDir, 'secrets.json');

/** The secrets file's fields, or none where it does not exist (a bare clone before stack:up). */
export function readSecrets(stackDir: string): PartialSecrets {
  let text: string;
  try {
    text = fs.readFileSync(secretsPath(stackDir), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw e;
  }
  return JSON.parse(text) as PartialSecrets;
}

const fresh = () => randomBytes(24).toString('base64url');

function fill<R extends string>(roles: readonly R[], have: Partial<Record<R, string>> | undefined): Record<R, string> {
  return Object.fromEntries(roles.map((r) => [r, have?.[r] ?? fresh()])) as Record<R, string>;
}

/** Creates the secrets file once (fields missing from an older file are added); keeps it 0600. */
export function ensureSecrets(stackDir: string): StackSecrets {
  const file = secretsPath(stackDir);
  const have = readSecrets(stackDir);
  const keys = <T extends object>(o: T) => Object.keys(o) as (keyof T)[];
  const want: StackSecrets = {
    producer_key: have.producer_key ?? fresh(),
    admin_token: have.admin_token ?? fresh(),
    redis: fill(keys(SERVER_USERS.redis), have.redis),
    kafka: fill(keys(SERVER_USERS.kafka), have.kafka),
    cassandra: fill(keys(SERVER_USERS.cassandra), have.cassandra),
  };
  if (JSON.stringify(want) !== JSON.stringify(have)) {
    fs.mkdirSync(stackDir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(want, null, 2) + '\n', { mode: 0o600 });
    fs.renameSync(tmp, file);
  }
  fs.chmodSync(file, 0o600);
  return want;
}
