/**
 * `npm run temporal -- <args>`: the Temporal CLI the stack built (in the cache folder, not on
 * PATH), pointed at this stack's server: e.g.
 * `npm run temporal -- workflow list --query "WindowState = 'CLOSED'"`.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { config } from '../src/config';
import { temporalBin } from './stack/services';

const cfg = config();
const bin = temporalBin(cfg);
if (!fs.existsSync(bin)) {
  process.stderr.write(`the Temporal CLI is not built yet (${bin}): run npm run stack:up first\n`);
  process.exit(2);
}
const r = spawnSync(bin, process.argv.slice(2), {
  stdio: 'inherit',
  env: {
    ...process.env,
    TEMPORAL_ADDRESS: process.env.TEMPORAL_ADDRESS ?? cfg.temporal.address,
    TEMPORAL_NAMESPACE: process.env.TEMPORAL_NAMESPACE ?? cfg.temporal.namespace,
  },
});
process.exit(r.status ?? 1);
