import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { loadMigrations, migrate } from '../../src/bootstrap/cassandra';
import { types } from 'cassandra-driver';
import { cassandraClient, opsRedis } from '../../src/clients';
import { RegionRecord, recordBucket } from '../../src/store/record';
import { regionOffsetsKey } from '../../src/keys';
import { freeRedisDb, restoreUnderLock } from '../support/redis';
import { cfg, unique } from '../helpers';
import { eventually } from '../../scripts/harness/runtime';

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

  it('carries a record written before migration 006 (a row per post) into region_counts, with its write times and TTLs', async () => {
    const ks = `${keyspace}_r`;
    const db = await freeRedisDb();
    const redis = opsRedis(cfg, db);
    try {
      await migrate(
        cfg,
        ks,
        loadMigrations().filter((m) => m.version < 6),
      );
      // What the old checkpoint wrote: rows stamped with the cut's time, windows with a TTL.
      const stamp = types.Long.fromNumber((Date.now() - 60_000) * 1000);
      const row = `INSERT INTO ${ks}.region_state (region_id, key_id, post_id, count) VALUES (?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?`;
      const old: [string, string, number, number][] = [
        ['all', 'p1', 7, 0],
        ['all', '__proto__', 5, 0],
        ['all', 'p2', 3, 0],
        // 20 s: the migration and the checks below must read it first (they took over 2 s on a busy machine).
        ['1m:60000', 'p1', 2, 20],
      ];
      for (const [key, post, count, ttl] of old) await client.execute(row, ['NA', key, post, types.Long.fromNumber(count), stamp, ttl], { prepare: true });
      await client.execute(
        `UPDATE ${ks}.region_state USING TIMESTAMP ? SET offsets = ?, checkpoint_at = ? WHERE region_id = ?`,
        [stamp, { 0: types.Long.fromNumber(41) }, new Date(), 'NA'],
        {
          prepare: true,
        },
      );
      await client.execute(`INSERT INTO ${ks}.regions (region_id, first_checkpoint_at) VALUES (?, ?)`, ['NA', new Date()], { prepare: true });
      const notes = await migrate(cfg, ks);
      expect(notes.join('\n')).to.match(/copied 4 entries of \S+\.region_state into region_counts/);
      const tables = await client.execute('SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?', [ks], { prepare: true });
      expect(tables.rows.map((r) => r.get('table_name') as string))
        .to.include('region_counts')
        .and.not.include('region_state');
      const record = new RegionRecord(redis, client, {
        keyspace: ks,
        windows: [{ name: '1m', sizeMs: 60_000, latenessMs: 0, ttlMs: 3_600_000 }],
        boundedK: 10,
      });
      const all = await record.readKey('NA', 'all');
      expect(all?.top).to.deep.equal([
        { post_id: 'p1', view_count: 7 },
        { post_id: '__proto__', view_count: 5 },
        { post_id: 'p2', view_count: 3 },
      ]);
      // The write times came along: a cell written after the old cut but before the
      // migration wins over the copied one; one written before it does not.
      const counts = `UPDATE ${ks}.region_counts USING TIMESTAMP ? SET counts = counts + ? WHERE region_id = ? AND key_id = ? AND bucket = ?`;
      await client.execute(counts, [stamp.add(1), new Map([['p2', types.Long.fromNumber(9)]]), 'NA', 'all', recordBucket('p2')], { prepare: true });
      await client.execute(counts, [stamp.subtract(1), new Map([['p1', types.Long.fromNumber(1)]]), 'NA', 'all', recordBucket('p1')], { prepare: true });
      expect((await record.readKey('NA', 'all'))?.top.map((p) => `${p.post_id}=${p.view_count}`)).to.deep.equal(['p2=9', 'p1=7', '__proto__=5']);
      // And the TTLs: the window's entry (20 s) is gone with it.
      expect((await record.readKey('NA', '1m:60000'))?.top).to.deep.equal([{ post_id: 'p1', view_count: 2 }]);
      await eventually(async () => {
        expect(await record.readKey('NA', '1m:60000')).to.equal(null);
      }, 30_000);
      // The offsets too: a rebuild restores them.
      await restoreUnderLock(redis, record);
      expect(await redis.hget(regionOffsetsKey('NA'), '0')).to.equal('41');
    } finally {
      await redis.flushdb();
      redis.disconnect();
      await client.execute(`DROP KEYSPACE IF EXISTS ${ks}`);
    }
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
