/**
 * Rate limits kept in Redis, one atomic script step per decision (rate-limit.lua): a token
 * bucket, a fixed window or a sliding window (a log of accepted requests), per client. A
 * decision may count several requests at once (a batch the API already let through).
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RateLimitSettings } from '../config';
import { rateLimitKey } from '../keys';
import { scripted } from './scripts';

export interface RateDecision {
  allowed: boolean;
  /** The limit a client sees (bucket size, or requests per window). */
  limit: number;
  remaining: number;
  /** Until the bucket is full again, or the window (its oldest request) moves on. */
  resetMs: number;
  /** How long to wait before a retry may pass; 0 when allowed. */
  retryMs: number;
}

/** Decides (and counts) `cost` requests of a client, 1 by default; allowed only when all of them fit. */
export type RateLimiter = (client: string, cost?: number) => Promise<RateDecision>;

export function redisRateLimiter(redis: Redis, s: Exclude<RateLimitSettings, { algorithm: 'off' }>): RateLimiter {
  const r = scripted(redis);
  const burstOrWindow = s.algorithm === 'token-bucket' ? s.burst : s.windowMs;
  const limit = s.algorithm === 'token-bucket' ? s.burst : s.perWindow;
  const rate = s.algorithm === 'token-bucket' ? s.ratePerSecond : s.perWindow;
  return async (client, cost = 1) => {
    const [allowed, remaining, resetMs, retryMs] = await r.hhRateLimit(rateLimitKey(client), s.algorithm, rate, burstOrWindow, randomUUID(), cost);
    return { allowed: allowed === 1, limit, remaining: Number(remaining), resetMs: Number(resetMs), retryMs: Number(retryMs) };
  };
}
