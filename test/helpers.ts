/** Shared by integration tests: the real stack's config and per-run unique names. */
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../src/config';

export const cfg = loadConfig();

/** A name unique to this test run (topics, keys, keyspaces, task queues), so reruns never collide. */
export function unique(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}
