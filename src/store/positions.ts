/**
 * Where each partition's consumption resumes: Redis's own record of what it has applied
 * (`hh:applied:<topic>`, keys.ts), never the consumer group's committed offsets, which a
 * Redis loss leaves ahead of what Redis still holds. A rebuild from the record writes it
 * (the record's offsets) atomically with the new epoch; the hot path advances it after
 * each batch whose flushes all succeeded, under the epoch they ran in.
 */
import type { Redis } from 'ioredis';
import { EPOCH_KEY, appliedKey, handedKey, recoveryKey } from '../keys';
import type { FencedCommand, RebuildLock } from './rebuild-lock';
import { scripted } from './scripts';

/**
 * The Redis state's epoch and, per partition, the next offset to apply: after its applied
 * mark, else after the `*` default, else null (nothing recorded: the group's own offset).
 */
export async function readPositions(redis: Redis, topic: string, partitions: number[]): Promise<{ epoch: string | null; next: Map<number, bigint | null> }> {
  const fields = [...partitions.map(String), '*'];
  const [[e1, epoch], [e2, marks]] = (await redis
    .multi()
    .get(EPOCH_KEY)
    .hmget(appliedKey(topic), ...fields)
    .exec())! as [[Error | null, string | null], [Error | null, (string | null)[]]];
  if (e1 || e2) throw e1 ?? e2;
  const fallback = marks[marks.length - 1];
  const next = new Map<number, bigint | null>();
  partitions.forEach((p, i) => {
    const mark = marks[i] ?? fallback;
    next.set(p, mark === null ? null : BigInt(mark) + 1n);
  });
  return { epoch, next };
}

/** Records that a member handed `partition`'s records up to `offset` to its actors under `epoch` (not waited for: a lost write only shortens a later holder's wait). */
export function recordHanded(redis: Redis, topic: string, epoch: string, partition: number, offset: string): void {
  redis.hset(handedKey(topic), String(partition), `${epoch}:${offset}`).catch(() => undefined);
}

/**
 * Of `partitions`, those another member (or this one, earlier) handed records of to its actors
 * under the current epoch that are not applied yet: their applied mark is below the handed offset.
 */
export async function handedNotApplied(redis: Redis, topic: string, partitions: number[]): Promise<number[]> {
  if (partitions.length === 0) return [];
  const fields = partitions.map(String);
  const [[e1, epoch], [e2, handed], [e3, marks]] = (await redis
    .multi()
    .get(EPOCH_KEY)
    .hmget(handedKey(topic), ...fields)
    .hmget(appliedKey(topic), ...fields)
    .exec())! as [[Error | null, string | null], [Error | null, (string | null)[]], [Error | null, (string | null)[]]];
  if (e1 || e2 || e3) throw e1 ?? e2 ?? e3;
  if (epoch === null) return [];
  return partitions.filter((_, i) => {
    const h = handed[i];
    if (h === null) return false;
    const sep = h.lastIndexOf(':');
    if (h.slice(0, sep) !== epoch) return false;
    const mark = marks[i];
    return mark === null || BigInt(mark) < BigInt(h.slice(sep + 1));
  });
}

/** Marks `offset` of `partition` applied in every region; false when Redis is no longer at `epoch`. */
export async function advancePosition(redis: Redis, topic: string, epoch: string, partition: number, offset: string): Promise<boolean> {
  const r = await scripted(redis).hhAdvancePosition(EPOCH_KEY, appliedKey(topic), recoveryKey(topic), epoch, String(partition), offset);
  return r === 1;
}

/** A rebuild's replay in progress: when it ran, the record's age, and the partitions still replaying. */
export interface Recovery {
  epoch: string;
  /** When the rebuild ran (ms). */
  at: number;
  /** The oldest checkpoint the restored state came from (ms), null without one. */
  as_of: number | null;
  /** Partitions whose replay has not yet reached the log end of the rebuild's time. */
  partitions: number[];
}

/** The replay in progress after a rebuild, or null when Redis is caught up (or was never rebuilt). */
export async function readRecovery(redis: Redis, topic: string): Promise<Recovery | null> {
  return parseRecovery(await redis.hgetall(recoveryKey(topic)));
}

/** The recovery hash (HGETALL of recoveryKey) as a Recovery, null when none is running. */
export function parseRecovery(all: Record<string, string>): Recovery | null {
  if (!all.meta) return null;
  const meta = JSON.parse(all.meta) as Omit<Recovery, 'partitions'>;
  const partitions = Object.keys(all)
    .filter((f) => f.startsWith('p:'))
    .map((f) => Number(f.slice(2)))
    .sort((a, b) => a - b);
  return { ...meta, partitions };
}

/**
 * Writes what a rebuild restored: per partition the offset every restored region has
 * applied (the lowest of their recorded offsets), `*` = -1 (partitions the record does not
 * name replay from the beginning), and the replay targets (each partition's log end now).
 * Runs before the new epoch is published, so a consumer never reads the old marks with it;
 * one atomic step, and only while the rebuild still holds its lock.
 */
export async function writeRebuildPositions(
  lock: RebuildLock,
  topic: string,
  meta: Omit<Recovery, 'partitions'>,
  applied: Map<number, bigint>,
  logEnds: Map<number, bigint>,
): Promise<void> {
  const marks = [...applied].flatMap(([p, o]) => [String(p), o.toString()]);
  const targets: string[] = [];
  for (const [p, end] of logEnds) {
    const last = end - 1n;
    if (last > (applied.get(p) ?? -1n)) targets.push(`p:${p}`, last.toString());
  }
  const writes: FencedCommand[] = [
    ['DEL', appliedKey(topic)],
    ['DEL', recoveryKey(topic)],
    ['HSET', appliedKey(topic), '*', '-1', ...marks],
  ];
  if (targets.length) writes.push(['HSET', recoveryKey(topic), 'meta', JSON.stringify(meta), ...targets]);
  await lock.write(writes);
}
