/**
 * One paged sliding-window sum in a process of its own, for the kill -9 test of
 * assembleSliding (test/integration/window-snapshots.test.ts): prints "started" just before
 * it and "done <members>" when it returned.
 * argv: region, window id, first pane start (ms), slide ms, panes, expiry (unix ms); the
 * panes are the `1m` spec's windows.
 */
import { cassandraClient, opsRedis } from '../../src/clients';
import { loadConfig } from '../../src/config';
import { windowStore } from '../../src/store/window-snapshots';

async function main(): Promise<void> {
  const [region, id, start, slide, panes, expireAt] = process.argv.slice(2);
  const cfg = loadConfig();
  const redis = opsRedis(cfg);
  await redis.ping();
  const store = windowStore(redis, cassandraClient(cfg, 'admin'), cfg.cassandra.keyspace);
  process.stdout.write('started\n');
  const n = await store.assembleSliding(region, id, '1m', Number(start), Number(panes) * Number(slide), Number(slide), Number(expireAt));
  process.stdout.write(`done ${n}\n`);
  process.exit(0);
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
