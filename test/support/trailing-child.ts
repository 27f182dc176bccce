/**
 * One trailing advance (roll-ups, then moves) in a process of its own, for the kill -9 tests of the stepped moves and roll-ups
 * (test/integration/actor.test.ts): prints "started" just before the move and "done <moved
 * specs>" when it returned.
 * argv: redis db, region, watermark ms, members per call[, HH_WINDOWS of the specs (default 1m)].
 */
import { opsRedis } from '../../src/clients';
import { loadConfig } from '../../src/config';
import { advanceTrailing } from '../../src/store/trailing';

async function main(): Promise<void> {
  const [db, region, watermark, budget, windows = '1m'] = process.argv.slice(2);
  const redis = opsRedis(loadConfig(), Number(db));
  await redis.ping();
  const specs = loadConfig({ HH_WINDOWS: windows }).ingest.windows;
  process.stdout.write('started\n');
  const moved = await advanceTrailing(redis, region, specs, Number(watermark), { budget: Number(budget) });
  process.stdout.write(`done ${moved.join(',')}\n`);
  redis.disconnect();
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
