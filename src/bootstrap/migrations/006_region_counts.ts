/**
 * Migration 006's data step: copies the record's rows of region_state (one per region, key
 * and post) into region_counts (one map per region, key and bucket of posts), each entry
 * with its write time and remaining TTL, the offsets with their cut's write time; then drops
 * region_state. Idempotent: run again after a crash midway, it writes the same cells with
 * the same write times (a newer checkpoint's cells still win).
 */
import { types, type Client } from 'cassandra-driver';
import { mapEntries, recordBucket } from '../../store/record';

const CONCURRENCY = 16;

/** Copies region_state into region_counts and drops it; says how many entries it copied (null when there was none to copy). */
export async function copyRegionState(client: Client, keyspace: string): Promise<string | null> {
  const table = await client.execute('SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?', [keyspace, 'region_state'], {
    prepare: true,
  });
  if (!table.rowLength) return null;
  const writes = new Set<Promise<unknown>>();
  const write = async (query: string, params: unknown[]) => {
    while (writes.size >= CONCURRENCY) await Promise.race(writes);
    const p = client.execute(query, params, { prepare: true }).finally(() => writes.delete(p));
    writes.add(p);
  };
  const statics = new Map<string, { offsets: unknown; at: Date; stamp: types.Long }>();
  let copied = 0;
  let pageState: string | undefined;
  do {
    const rs = await client.execute(
      `SELECT region_id, key_id, post_id, count, ttl(count) AS ttl, writetime(count) AS stamp, offsets, checkpoint_at, writetime(checkpoint_at) AS offsets_stamp FROM ${keyspace}.region_state`,
      [],
      { prepare: true, fetchSize: 5000, pageState },
    );
    const rows = new Map<string, { region: string; keyId: string; bucket: number; ttl: number; stamp: types.Long; counts: Map<string, types.Long> }>();
    for (const r of rs.rows) {
      const region = r.get('region_id') as string;
      const at = r.get('checkpoint_at') as Date | null;
      if (at !== null && !statics.has(region)) statics.set(region, { offsets: r.get('offsets'), at, stamp: r.get('offsets_stamp') as types.Long });
      const keyId = r.get('key_id') as string | null;
      if (keyId === null) continue; // only the static columns
      const postId = r.get('post_id') as string;
      const ttl = (r.get('ttl') as number | null) ?? 0;
      const stamp = r.get('stamp') as types.Long;
      const bucket = recordBucket(postId);
      const id = `${region} ${keyId} ${bucket} ${ttl} ${stamp.toString()}`;
      let row = rows.get(id);
      if (!row) rows.set(id, (row = { region, keyId, bucket, ttl, stamp, counts: new Map() }));
      row.counts.set(postId, r.get('count') as types.Long);
      copied++;
    }
    for (const row of rows.values())
      await write(`UPDATE ${keyspace}.region_counts USING TIMESTAMP ? AND TTL ? SET counts = counts + ? WHERE region_id = ? AND key_id = ? AND bucket = ?`, [
        row.stamp,
        row.ttl,
        row.counts,
        row.region,
        row.keyId,
        row.bucket,
      ]);
    pageState = rs.pageState ?? undefined;
  } while (pageState);
  for (const [region, s] of statics)
    await write(`UPDATE ${keyspace}.region_counts USING TIMESTAMP ? SET offsets = ?, checkpoint_at = ? WHERE region_id = ?`, [
      s.stamp,
      new Map(mapEntries<types.Long>(s.offsets).map(([p, o]) => [Number(p), o])),
      s.at,
      region,
    ]);
  await Promise.all(writes);
  await client.execute(`DROP TABLE IF EXISTS ${keyspace}.region_state`);
  return copied ? `copied ${copied} entries of ${keyspace}.region_state into region_counts` : null;
}
