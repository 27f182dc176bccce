/**
 * `npm run kcat -- [--as producer|worker|api|admin] <kcat args>`: Debian's kcat logged in to
 * this stack's broker (SASL/SCRAM-SHA-512) as one of its Kafka users — `producer` unless
 * `--as` says otherwise — e.g. `npm run -s kcat -- -P -t views -k NA` (reads events from stdin).
 * The login goes through a temporary 0600 config file (`-F`), never the command line.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { config } from '../src/config';
import { SERVER_USERS } from '../src/secrets';
import { needPassword, roleArg } from './role-arg';

const cfg = config();
const { role, rest: args } = roleArg(process.argv.slice(2), SERVER_USERS.kafka, 'producer');
const login = cfg.credentials.kafka[role];
const password = needPassword(login.password, 'Kafka');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hh-kcat-'));
const file = path.join(dir, 'kcat.conf');
fs.writeFileSync(
  file,
  [
    `bootstrap.servers=${cfg.kafka.brokers.join(',')}`,
    'security.protocol=SASL_PLAINTEXT',
    'sasl.mechanisms=SCRAM-SHA-512',
    `sasl.username=${login.user}`,
    `sasl.password=${password}`,
    '',
  ].join('\n'),
  { mode: 0o600 },
);
try {
  const r = spawnSync('kcat', ['-F', file, ...args], { stdio: 'inherit' });
  if (r.error) throw r.error;
  process.exitCode = r.status ?? 1;
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
