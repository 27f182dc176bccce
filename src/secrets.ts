/**
 * Per-checkout credentials: generated once by `stack:up` into `<stack dir>/secrets.json`
 * (mode 0600, git-ignored) and read by the config module as the fallback of the `HH_*`
 * variables that override them. They never appear in logs, errors or /healthz.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface StackSecrets {
  /** Bearer key of producers on POST /events. */
  producer_key: string;
  /** Bearer token of the /admin endpoints. */
  admin_token: string;
}

export const secretsPath = (stackDir: string): string => path.join(stackDir, 'secrets.json');

/** The secrets file's fields, or none where it does not exist (a bare clone before stack:up). */
export function readSecrets(stackDir: string): Partial<StackSecrets> {
  let text: string;
  try {
    text = fs.readFileSync(secretsPath(stackDir), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw e;
  }
  const v = JSON.parse(text) as Partial<StackSecrets>;
  return { producer_key: v.producer_key, admin_token: v.admin_token };
}

const fresh = () => randomBytes(24).toString('base64url');

/** Creates the secrets file once (fields missing from an older file are added); keeps it 0600. */
export function ensureSecrets(stackDir: string): StackSecrets {
  const file = secretsPath(stackDir);
  const have = readSecrets(stackDir);
  const want: StackSecrets = { producer_key: have.producer_key ?? fresh(), admin_token: have.admin_token ?? fresh() };
  if (have.producer_key !== want.producer_key || have.admin_token !== want.admin_token) {
    fs.mkdirSync(stackDir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(want, null, 2) + '\n', { mode: 0o600 });
    fs.renameSync(tmp, file);
  }
  fs.chmodSync(file, 0o600);
  return want;
}
