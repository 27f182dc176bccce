import { randomBytes } from 'node:crypto';

/** A name unique to this run (topics, keys, keyspaces, task queues), so reruns never collide. */
export function unique(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}
