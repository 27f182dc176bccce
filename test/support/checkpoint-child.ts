/**
 * One region checkpoint in a process of its own, for the kill -9 test of the record
 * (test/integration/checkpoint-record.test.ts): prints "started" once the cut is about to
 * be taken and "done <entries>" when the checkpoint returned.
 * argv: redis db, keyspace, region, largest atomic cut, lock lease ms.
 */
import { cassandraClient, opsRedis } from '../../src/clients';
import { loadConfig } from '../../src/config';
import { RegionRecord } from '../../src/store/record';

async function main(): Promise<void> {
  const [db, keyspace, region, atomic, lockMs] = process.argv.slice(2);
  const cfg = loadConfig();
  const redis = opsRedis(cfg, Number(db));
  const cassandra = cassandraClient(cfg, 'writer');
  await cassandra.connect();
  await redis.ping();
  const record = new RegionRecord(redis, cassandra, {
    keyspace,
    windows: cfg.ingest.windows,
    boundedK: 10,
    atomicEntries: Number(atomic),
    lockMs: Number(lockMs),
  });
  process.stdout.write('started\n');
  const n = await record.checkpoint(region);
  process.stdout.write(`done ${n}\n`);
  redis.disconnect();
  await cassandra.shutdown();
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack ?? e.message}\n`);
  process.exit(1);
});
