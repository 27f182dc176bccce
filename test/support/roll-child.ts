/**
 * Rolls a region's FINAL children in a process of its own, for the kill -9 test of the roll-ups
 * (test/integration/window-roll.test.ts): prints "started" just before the roll and "done
 * <pages>" when it returned.
 * argv: redis db, region, upto (ms), members per page, HH_WINDOWS.
 */
import { opsRedis } from '../../src/clients';
import { loadConfig } from '../../src/config';
import { rollChildren, rollPlan } from '../../src/store/window-roll';

async function main(): Promise<void> {
  const [db, region, upto, page, windows] = process.argv.slice(2);
  const redis = opsRedis(loadConfig(), Number(db));
  await redis.ping();
  const plan = rollPlan(loadConfig({ HH_WINDOWS: windows }).ingest.windows)!;
  process.stdout.write('started\n');
  const r = await rollChildren(redis, region, plan, Number(upto), undefined, Number(page));
  process.stdout.write(`done ${r.pages}\n`);
  redis.disconnect();
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
