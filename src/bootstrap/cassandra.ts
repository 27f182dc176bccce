/**
 * The keyspace and its versioned migrations: numbered CQL files under ./migrations,
 * applied in order once each, recorded with a checksum so an edited, already-applied
 * migration is refused rather than silently diverging.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cassandraClient } from '../clients';
import type { Config } from '../config';

export interface Migration {
  file: string;
  version: number;
  name: string;
  statements: string[];
  checksum: string;
}

export const MIGRATIONS_DIR = path.join(__dirname, 'migrations');

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

/** Creates the keyspace (replication 1: one local node) and applies pending migrations; returns what it applied. */
export async function migrate(cfg: Config, keyspace = cfg.cassandra.keyspace, migrations = loadMigrations()): Promise<string[]> {
  const client = cassandraClient(cfg);
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
      await client.execute(
        `INSERT INTO ${keyspace}.schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, toTimestamp(now()))`,
        [m.version, m.name, m.checksum],
        { prepare: true },
      );
      applied.push(`applied migration ${m.file} to ${keyspace}`);
    }
  } finally {
    await client.shutdown();
  }
  return applied;
}
