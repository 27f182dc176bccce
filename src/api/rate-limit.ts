/**
 * Per-client rate limiting of every route but /healthz and /metrics: the limiter (kept in
 * Redis, one atomic step) decides; a refused request gets 429 with Retry-After, and every
 * answer carries RateLimit-Limit / -Remaining / -Reset. While Redis cannot decide (down,
 * slow), requests pass and are counted (`hh_background_failures_total{operation="rate-limit"}`): the record
 * answers must stay reachable when the rank index is not.
 */
import type { RequestHandler } from 'express';
import type { RateLimiter } from '../store/rate-limit';
import type { Credentials } from './auth';
import { HttpError } from './errors';

export interface RateLimitDeps {
  limiter: RateLimiter;
  credentials: Credentials;
  /** A decision slower than this lets the request pass (ms). @default 250 */
  timeoutMs?: number;
  onUnavailable?: (e: Error) => void;
  onRefused?: (client: string) => void;
}

export function rateLimit(deps: RateLimitDeps): RequestHandler {
  const timeoutMs = deps.timeoutMs ?? 250;
  return (req, res, next) => {
    const client = deps.credentials.clientOf(req);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`rate limiter did not answer within ${timeoutMs} ms`)), timeoutMs);
    });
    void Promise.race([deps.limiter(client), timeout])
      .then(
        (d) => ({ d, e: undefined }),
        (e: Error) => ({ d: undefined, e }),
      )
      .then(({ d, e }) => {
        clearTimeout(timer);
        if (!d) {
          deps.onUnavailable?.(e!);
          return next();
        }
        res.set({
          'ratelimit-limit': String(d.limit),
          'ratelimit-remaining': String(Math.max(0, d.remaining)),
          'ratelimit-reset': String(Math.ceil(d.resetMs / 1000)),
        });
        if (d.allowed) return next();
        deps.onRefused?.(client);
        const retry = String(Math.max(1, Math.ceil(d.retryMs / 1000)));
        next(new HttpError(429, `rate limit exceeded: retry after ${retry} s`, 'rate', { 'retry-after': retry }));
      });
  };
}
