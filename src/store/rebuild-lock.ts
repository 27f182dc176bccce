/**
 * The rebuild lock: one process at a time rebuilds Redis from the record, and every write
 * of a rebuild goes through its lock (fenced-write.lua). The lock lives in Redis, so Redis
 * losing its state mid-rebuild (a crash, FLUSHDB) takes it along: the rebuild that held it
 * then writes nothing more (LostRebuildLock) and starts over, and one that took the lock
 * meanwhile never sees its writes mixed with a stale rebuild's.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { REBUILD_LOCK_KEY } from '../keys';
import { scripted } from './scripts';

/** How long the lock outlives its holder's last write (or its taking). */
export const REBUILD_LOCK_MS = 300_000;
/**
 * The most arguments one fenced command may carry after its key: the script spreads them
 * with unpack, which Redis's Lua refuses at 8,000 values ("too many results to unpack";
 * 7,990 pass, measured on the stack's Redis 7.0.15).
 */
export const MAX_FENCED_ARGS = 4000;

/** One write of a rebuild: a command, the one key it writes, its other arguments. */
export type FencedCommand = [command: string, key: string, ...args: (string | number)[]];

/** The rebuild's lock was gone (Redis lost its state, or it expired) when it went to write. */
export class LostRebuildLock extends Error {
  constructor() {
    super('the rebuild lost its lock (Redis lost its state, or the lock expired): nothing more of it is written');
    this.name = 'LostRebuildLock';
  }
}

export class RebuildLock {
  private constructor(
    private readonly redis: Redis,
    readonly token: string,
  ) {}

  /** The lock when it was free, else null (another process holds it). */
  static async tryAcquire(redis: Redis): Promise<RebuildLock | null> {
    const token = randomUUID();
    const ok = await redis.set(REBUILD_LOCK_KEY, token, 'PX', REBUILD_LOCK_MS, 'NX');
    return ok === null ? null : new RebuildLock(redis, token);
  }

  /**
   * Runs the commands as one atomic step while the lock is still this one's (and extends
   * it); throws LostRebuildLock, having written nothing, when it is not.
   */
  async write(commands: FencedCommand[]): Promise<void> {
    if (commands.length === 0) return;
    const keys: string[] = [];
    const args: (string | number)[] = [this.token, REBUILD_LOCK_MS];
    for (const [command, key, ...rest] of commands) {
      if (rest.length > MAX_FENCED_ARGS) throw new Error(`a fenced ${command} takes at most ${MAX_FENCED_ARGS} arguments (got ${rest.length})`);
      keys.push(key);
      args.push(command, rest.length, ...rest);
    }
    const done = await scripted(this.redis).hhFencedWrite(keys.length + 1, REBUILD_LOCK_KEY, ...keys, ...args);
    if (done !== 1) throw new LostRebuildLock();
  }

  /** Lets the lock go, if it is still this one's. */
  async release(): Promise<void> {
    await scripted(this.redis).hhRelease(REBUILD_LOCK_KEY, this.token);
  }
}
