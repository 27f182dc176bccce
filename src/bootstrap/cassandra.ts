/**
 * The keyspace and its versioned migrations: numbered CQL files under ./migrations,
 * applied in order once each, recorded with a checksum so an edited, already-applied
 * migration is refused rather than silently diverging.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { auth, Client as CassandraClient } from 'cassandra-driver';
import { cassandraAuth, cassandraClient } from '../clients';
import type { Config } from '../config';
import { CASSANDRA_DEFAULT_SUPERUSER, isAuthFailure } from '../health';
import { SERVER_USERS } from '../secrets';
import { copyRegionState } from './migrations/006_region_counts';

export interface Migration {
  file: string;
  version: number;
  name: string;
  statements: string[];
  checksum: string;
}

export const MIGRATIONS_DIR = path.join(__dirname, 'migrations');

/**
 * What a migration does beyond its CQL (run after its statements, before it is recorded as
 * applied, so a crash midway runs it again: each is idempotent). Returns a line for the
 * migration's notes, or null when it had nothing to do.
 */
const DATA_STEPS: Record<number, (client: CassandraClient, keyspace: string) => Promise<string | null>> = {
  6: copyRegionState,
};

/** Parses `NNN_name.cql` files: statements separated by `;`, `--` comments ignored. */
export function loadMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.cql'))
    .sort();
  const out: Migration[] = [];
  for (const f of files) {
    const m = /^(\d+)_([a-z0-9_]+)\.cql$/.exec(f);
    if (!m) throw new Error(`migration file name must be NNN_name.cql: ${f}`);
    const text = fs.readFileSync(path.join(dir, f), 'utf8');
    const statements = text
      .split('\n')
      .filter((l) => !l.trim().startsWith('--'))
      .join('\n')
      .split(';')
      .map((s) => s.trim())
      .filter(Boolean);
    const version = Number(m[1]);
    if (out.some((o) => o.version === version)) throw new Error(`two migrations numbered ${version}`);
    out.push({ file: f, version, name: m[2], statements, checksum: createHash('sha256').update(text).digest('hex') });
  }
  return out;
}

const cqlString = (s: string) => `'${s.replace(/'/g, "''")}'`;

/**
 * The login roles (PasswordAuthenticator + CassandraAuthorizer): on a fresh node the default
 * superuser `cassandra` makes `hh_admin` and is dropped; `hh_admin` then creates (or re-keys)
 * the writer and reader roles with the secrets file's passwords. Idempotent.
 */
export async function ensureRoles(cfg: Config): Promise<string[]> {
  const notes: string[] = [];
  const pw = (r: keyof typeof SERVER_USERS.cassandra) => {
    const p = cfg.credentials.cassandra[r].password;
    if (!p) throw new Error(`cassandra: no password for role ${r} (run npm run stack:up, which writes .stack/secrets.json)`);
    return p;
  };
  const as = (authProvider: auth.AuthProvider) =>
    new CassandraClient({ contactPoints: [`${cfg.host}:${cfg.cassandra.port}`], localDataCenter: cfg.cassandra.localDataCenter, authProvider });
  let admin = as(cassandraAuth(cfg, 'admin'));
  try {
    await admin.connect();
  } catch (e) {
    await admin.shutdown();
    if (!isAuthFailure(e)) throw e;
    const dflt = as(new auth.PlainTextAuthProvider(CASSANDRA_DEFAULT_SUPERUSER, CASSANDRA_DEFAULT_SUPERUSER));
    try {
      await dflt.execute(
        `CREATE ROLE IF NOT EXISTS ${SERVER_USERS.cassandra.admin} WITH SUPERUSER = true AND LOGIN = true AND PASSWORD = ${cqlString(pw('admin'))}`,
      );
    } catch (e2) {
      throw new Error(
        `cassandra refused both ${SERVER_USERS.cassandra.admin} (the secrets file's password) and its default superuser: ` +
          `its data belongs to other credentials; stop it and remove .stack/data/cassandra to start afresh (${(e2 as Error).message})`,
      );
    } finally {
      await dflt.shutdown();
    }
    notes.push(`created superuser role ${SERVER_USERS.cassandra.admin}`);
    admin = as(cassandraAuth(cfg, 'admin'));
  }
  try {
    const defaultRole = await admin.execute(`SELECT role FROM system_auth.roles WHERE role = ?`, [CASSANDRA_DEFAULT_SUPERUSER], { prepare: true });
    if (defaultRole.rowLength) {
      await admin.execute(`DROP ROLE IF EXISTS ${CASSANDRA_DEFAULT_SUPERUSER}`);
      notes.push(`dropped the default superuser ${CASSANDRA_DEFAULT_SUPERUSER}`);
    }
    for (const r of ['writer', 'reader'] as const) {
      const name = SERVER_USERS.cassandra[r];
      await admin.execute(`CREATE ROLE IF NOT EXISTS ${name} WITH LOGIN = true AND PASSWORD = ${cqlString(pw(r))}`);
      await admin.execute(`ALTER ROLE ${name} WITH PASSWORD = ${cqlString(pw(r))}`);
    }
  } finally {
    await admin.shutdown();
  }
  return notes;
}

/**
 * Least privilege on one keyspace: the record writer reads and writes its tables; the API
 * reader only reads them and appends to the audit log. Nobody but hh_admin alters schema.
 */
async function grantKeyspace(client: CassandraClient, keyspace: string): Promise<void> {
  const { writer, reader } = SERVER_USERS.cassandra;
  await client.execute(`GRANT SELECT ON KEYSPACE ${keyspace} TO ${writer}`);
  await client.execute(`GRANT MODIFY ON KEYSPACE ${keyspace} TO ${writer}`);
  await client.execute(`GRANT SELECT ON KEYSPACE ${keyspace} TO ${reader}`);
  const audit = await client.execute('SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?', [keyspace, 'admin_audit'], {
    prepare: true,
  });
  if (audit.rowLength) await client.execute(`GRANT MODIFY ON TABLE ${keyspace}.admin_audit TO ${reader}`);
}

/** Creates the keyspace (replication 1: one local node), applies pending migrations and grants the roles; returns what it applied. */
export async function migrate(cfg: Config, keyspace = cfg.cassandra.keyspace, migrations = loadMigrations()): Promise<string[]> {
  const client = cassandraClient(cfg, 'admin');
  const applied: string[] = [];
  try {
    await client.execute(`CREATE KEYSPACE IF NOT EXISTS ${keyspace} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`);
    await client.execute(`CREATE TABLE IF NOT EXISTS ${keyspace}.schema_migrations (version int PRIMARY KEY, name text, checksum text, applied_at timestamp)`);
    const rs = await client.execute(`SELECT version, name, checksum FROM ${keyspace}.schema_migrations`);
    const done = new Map(rs.rows.map((r) => [r.get('version') as number, r.get('checksum') as string]));
    for (const m of migrations) {
      const prior = done.get(m.version);
      if (prior !== undefined) {
        if (prior !== m.checksum) throw new Error(`migration ${m.file} was changed after it was applied; add a new migration instead`);
        continue;
      }
      await client.execute(`USE ${keyspace}`);
      for (const stmt of m.statements) await client.execute(stmt);
      const did = await DATA_STEPS[m.version]?.(client, keyspace);
      if (did) applied.push(`${did} (migration ${m.file})`);
      await client.execute(
        `INSERT INTO ${keyspace}.schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, toTimestamp(now()))`,
        [m.version, m.name, m.checksum],
        { prepare: true },
      );
      applied.push(`applied migration ${m.file} to ${keyspace}`);
    }
    await grantKeyspace(client, keyspace);
  } finally {
    await client.shutdown();
  }
  return applied;
}
