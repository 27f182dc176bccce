import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { loadMigrations, migrate } from '../../src/bootstrap/cassandra';
import { cassandraClient } from '../../src/clients';
import { cfg, unique } from '../helpers';

describe('cassandra (real node)', function () {
  this.timeout(120_000);
  const keyspace = unique('hh_test').toLowerCase();
  const client = cassandraClient(cfg, 'admin');

  after(async () => {
    await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await client.shutdown();
  });

  it('is Cassandra 5.0', async () => {
    const rs = await client.execute('SELECT release_version FROM system.local');
    expect(String(rs.first().get('release_version'))).to.match(/^5\.0\./);
  });

  it('applies the project migrations once, then nothing on a rerun', async () => {
    const first = await migrate(cfg, keyspace);
    expect(first).to.have.length(loadMigrations().length).and.length.at.least(1);
    expect(await migrate(cfg, keyspace)).to.deep.equal([]);
    const rs = await client.execute('SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?', [keyspace], { prepare: true });
    expect(rs.rows.map((r) => r.get('table_name') as string)).to.include.members(['schema_migrations', 'posts']);
  });

  it('writes and reads through prepared statements', async () => {
    await client.execute(`INSERT INTO ${keyspace}.posts (post_id, author, content) VALUES (?, ?, ?)`, ['p1', 'ann', 'hello'], { prepare: true });
    const rs = await client.execute(`SELECT author, content FROM ${keyspace}.posts WHERE post_id = ?`, ['p1'], { prepare: true });
    expect(rs.first().get('author')).to.equal('ann');
  });

  it('refuses an applied migration whose file changed', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mig-'));
    fs.writeFileSync(path.join(dir, '001_t.cql'), 'CREATE TABLE IF NOT EXISTS t1 (id int PRIMARY KEY);');
    const ks = `${keyspace}_m`;
    try {
      expect(await migrate(cfg, ks, loadMigrations(dir))).to.have.length(1);
      fs.writeFileSync(path.join(dir, '001_t.cql'), 'CREATE TABLE IF NOT EXISTS t1 (id int PRIMARY KEY, v int);');
      let err: Error | undefined;
      await migrate(cfg, ks, loadMigrations(dir)).catch((e: Error) => (err = e));
      expect(err?.message).to.match(/001_t\.cql was changed after it was applied/);
    } finally {
      await client.execute(`DROP KEYSPACE IF EXISTS ${ks}`);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
