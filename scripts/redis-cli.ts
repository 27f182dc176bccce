/**
 * `npm run redis-cli -- [--as admin|api|ingest|ops] <redis-cli args>`: redis-cli logged in to
 * this stack's Redis as one of its ACL users — `admin` (every key, no server administration,
 * no flushes) unless `--as` says otherwise — e.g. `npm run -s redis-cli -- zrevrange 'region:{NA}:top_k' 0 9 withscores`.
 * The password goes through REDISCLI_AUTH, never the command line.
 */
import { spawnSync } from 'node:child_process';
import { config } from '../src/config';
import { SERVER_USERS } from '../src/secrets';
import { needPassword, roleArg } from './role-arg';

const cfg = config();
const { role, rest: args } = roleArg(process.argv.slice(2), SERVER_USERS.redis, 'admin');
const login = cfg.credentials.redis[role];
const password = needPassword(login.password, 'Redis');
const r = spawnSync('redis-cli', ['-h', cfg.host, '-p', String(cfg.redis.port), '-n', String(cfg.redis.db), '--user', login.user, ...args], {
  stdio: 'inherit',
  env: { ...process.env, REDISCLI_AUTH: password },
});
process.exit(r.status ?? 1);
