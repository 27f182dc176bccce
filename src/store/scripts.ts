/**
 * The stores' Lua scripts as typed Redis commands (EVALSHA, loaded on first use), defined
 * once per client. Each script's header is its KEYS/ARGV contract.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Redis } from 'ioredis';

const lua = (name: string) => fs.readFileSync(path.join(__dirname, name), 'utf8');

const SCRIPTS = {
  hhCheckpoint: { lua: lua('checkpoint.lua'), numberOfKeys: 5 },
  hhAdvancePosition: { lua: lua('advance-position.lua'), numberOfKeys: 3 },
  hhTrailing: { lua: lua('trailing.lua'), numberOfKeys: 1 },
  hhSessionSeal: { lua: lua('session-seal.lua'), numberOfKeys: 3 },
  hhSlidingAssemble: { lua: lua('sliding-assemble.lua'), numberOfKeys: 4 },
  hhWindowRoll: { lua: lua('window-roll.lua'), numberOfKeys: 4 },
  hhRateLimit: { lua: lua('rate-limit.lua'), numberOfKeys: 1 },
  hhFencedWrite: { lua: lua('fenced-write.lua') }, // its key count comes first
  /** Raises a hash field to a number, never lowers it (a mark that only moves forward). */
  hhRaise: {
    lua: "local c = redis.call('HGET', KEYS[1], ARGV[1]) if not c or tonumber(c) < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end return 1",
    numberOfKeys: 1,
  },
  /** Deletes a lock only while it still holds the caller's token. */
  hhRelease: { lua: "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", numberOfKeys: 1 },
  /** Extends a lock only while it still holds the caller's token. */
  hhRenew: { lua: "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0", numberOfKeys: 1 },
} as const;

type Arg = string | number;

export interface StoreScripts {
  /** checkpoint.lua: dirty, inflight, offsets, cut, meta; token, prefix → [cut time ms, [partition, offset, ...], [key id, entries, ...]]. */
  hhCheckpoint(
    dirty: string,
    inflight: string,
    offsets: string,
    cut: string,
    meta: string,
    token: string,
    prefix: string,
  ): Promise<[string, string[], (string | number)[]]>;
  /** advance-position.lua: epoch, applied, recovery; epoch, partition, offset → 1, or 0 under another epoch. */
  hhAdvancePosition(epochKey: string, applied: string, recovery: string, epoch: string, partition: string, offset: string): Promise<number>;
  /**
   * trailing.lua: the region's trailing state; op, prefix, spec name, pane ms, then the op's arguments
   * (plan, step, swap: a move; roll: source spec, its pane ms, target, budget, ttl ms → ['DONE', rolled | ''] | ['MORE']).
   */
  hhTrailing(state: string, op: 'plan' | 'step' | 'swap' | 'roll', prefix: string, spec: string, paneMs: number, ...args: Arg[]): Promise<string[]>;
  /** sliding-assemble.lua: marker, then (step) the sum's hash, added set, pane; (convert) the hash, the sum, unused; (finish) the sum, window key, global:dirty; op and its arguments. */
  hhSlidingAssemble(marker: string, sum: string, third: string, fourth: string, op: 'step' | 'convert' | 'finish', ...args: Arg[]): Promise<string | number>;
  /** window-roll.lua: sealed marks, unrolled children, dirty, meta; the page's JSON → ['EPOCH'] | ['DONE'] | ['OK', start, cursor, size, refused, members, parent ids...]. */
  hhWindowRoll(sealed: string, unrolled: string, dirty: string, meta: string, header: string): Promise<(string | number)[]>;
  /** session-seal.lua: bucket index, sealed marks, sealed sessions; spec fields… → [start, end, posts, ...]. */
  hhSessionSeal(index: string, sealed: string, sessions: string, ...args: Arg[]): Promise<(string | number)[]>;
  /** rate-limit.lua: the client's state; algorithm, rate, burst or window ms, request id, cost → [allowed, remaining, reset ms, retry ms]. */
  hhRateLimit(
    state: string,
    algorithm: string,
    rate: number,
    burstOrWindow: number,
    requestId: string,
    cost: number,
  ): Promise<[number, number, number, number]>;
  hhRelease(lock: string, token: string): Promise<number>;
  /** Raises hash field `field` to `value` (a number) unless it is already that high. */
  hhRaise(hash: string, field: string, value: string | number): Promise<number>;
  /** fenced-write.lua: key count, lock, the commands' keys, token, lock ms, [name, arg count, args...]... → 1, or 0 when the lock is not the caller's. */
  hhFencedWrite(numKeys: number, ...keysAndArgs: Arg[]): Promise<number>;
  /** 1 when the lock was still the caller's and now lives `ms` more, else 0. */
  hhRenew(lock: string, token: string, ms: number): Promise<number>;
}

export type ScriptedRedis = Redis & StoreScripts;

/** The client with the store scripts defined (once). */
export function scripted(redis: Redis): ScriptedRedis {
  for (const [name, def] of Object.entries(SCRIPTS)) if (!(name in redis)) redis.defineCommand(name, def);
  return redis as ScriptedRedis;
}
