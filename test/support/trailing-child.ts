/**
 * One trailing move in a process of its own, for the kill -9 test of the stepped moves
 * (test/integration/actor.test.ts): prints "started" just before the move and "done <moved
 * specs>" when it returned.
 * argv: redis db, region, watermark ms, members per call; the spec is HH_WINDOWS 1m.
 */
import { opsRedis } from '../../src/clients';
import { loadConfig } from '../../src/config';
import { advanceTrailing } from '../../src/store/trailing';

async function main(): Promise<void> {
  const [db, region, watermark, budget] = process.argv.slice(2);
  const redis = opsRedis(loadConfig(), Number(db));
  await redis.ping();
  const spec = loadConfig({ HH_WINDOWS: '1m' }).ingest.windows[0];
  process.stdout.write('started\n');
  const moved = await advanceTrailing(redis, region, [spec], Number(watermark), { budget: Number(budget) });
  process.stdout.write(`done ${moved.join(',')}\n`);
  redis.disconnect();
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
