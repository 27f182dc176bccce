/**
 * Per-client rate limiting of every route but /healthz and /metrics: the limiter (kept in
 * Redis, one atomic step) decides; a refused request gets 429 with Retry-After, and every
 * answer carries RateLimit-Limit / -Remaining / -Reset. While Redis cannot decide (down,
 * slow), requests pass and are counted (`hh_background_failures_total{operation="rate-limit"}`): the record
 * answers must stay reachable when the rank index is not.
 *
 * Far from its limit a client does not wait for Redis: while the last decision this process
 * got for it (under a second old) left more than `headroom` of its limit, less the requests
 * let through since and not yet decided, a request passes at once and is counted in the
 * background. The background counts of a client go one call at a time,
 * at most one every `countEveryMs`: the requests let through meanwhile are counted together
 * by the next (one call of cost n, rate-limit.lua), so a busy client costs ~100 Redis calls
 * a second, not one per request (every request is still counted). Near the limit each request waits for its own
 * decision, so the limit holds there as before; a request's Redis round trip (and Redis's
 * own stalls) is off the path of the clients that are nowhere near it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import type { RateDecision, RateLimiter } from '../store/rate-limit';
import type { Credentials } from './auth';
import { HttpError } from './errors';

export interface RateLimitDeps {
  limiter: RateLimiter;
  credentials: Credentials;
  /** A decision slower than this lets the request pass (ms). @default 250 */
  timeoutMs?: number;
  /** The share of a client's limit left above which a request does not wait for its decision. @default 0.25 */
  headroom?: number;
  /** A client's background counts start at most this often (ms). @default 10 */
  countEveryMs?: number;
  onUnavailable?: (e: Error) => void;
  onRefused?: (client: string) => void;
}

/** What this process last learned of a client's limit. */
interface Known {
  decision: RateDecision;
  at: number;
  /** The order of the call that decided it: an older decision coming back later is not learned. */
  seq: number;
  /** Requests let through since that decision whose own decision has not come back. */
  undecided: number;
}

/** A client's background counting. */
interface Counting {
  /** A call is out or waits for its turn. */
  out: boolean;
  /** Requests let through and not yet counted by a call. */
  queued: number;
  /** When its last call started. */
  last: number;
}

/**
 * A decision is trusted this long (ms); a client sending steadily refreshes it with every
 * background count. What it left can only have grown since (a bucket refills, a window
 * starts afresh) but for requests this process let through (counted against it as
 * undecided) and those other API processes let through meanwhile (unseen until the next
 * count comes back, ~countEveryMs later), which the headroom covers. At 100 ms (until
 * 2026-12-06) a client that paused longer (a page polled a few times a second, the bench's
 * 250-ms turns) sent its first request after each pause through a Redis round trip: a
 * Redis busy with a flush script (~20 ms) put those requests at the API's p99.
 */
export const KNOWN_FOR_MS = 1000;
/** Clients remembered (the oldest forgotten first). */
const MAX_KNOWN = 10_000;

/** The limit of the routes it guards: as Express middleware, and as a check for a path that answers without Express. */
export interface RateLimit {
  middleware: RequestHandler;
  /**
   * Whether `req` passes at once (its client far from its limit, a recent decision known):
   * then the step that lets it through (sets its headers, counts it in the background), else
   * undefined — the request is to wait for its own decision (the middleware). Nothing is
   * counted before that step runs.
   */
  passNow(req: IncomingMessage): ((res: ServerResponse) => void) | undefined;
}

export function createRateLimit(deps: RateLimitDeps): RateLimit {
  const timeoutMs = deps.timeoutMs ?? 250;
  const headroom = deps.headroom ?? 0.25;
  const countEveryMs = deps.countEveryMs ?? 10;
  const known = new Map<string, Known>();
  const counting = new Map<string, Counting>();
  let calls = 0;
  const learn = (client: string, seq: number, decision: RateDecision, undecided: number) => {
    const k = known.get(client);
    if (k && k.seq > seq) return;
    known.delete(client);
    known.set(client, { decision, at: Date.now(), seq, undecided });
    if (known.size > MAX_KNOWN) known.delete(known.keys().next().value as string);
  };
  /** `n` of the client's requests let through have been decided (counted, or lost): its undecided left. */
  const settle = (client: string, n: number) => {
    const k = known.get(client);
    if (k) k.undecided = Math.max(0, k.undecided - n);
    return k?.undecided ?? 0;
  };
  const headers = (res: ServerResponse, d: RateDecision, remaining: number) => {
    res.setHeader('ratelimit-limit', String(d.limit));
    res.setHeader('ratelimit-remaining', String(Math.max(0, remaining)));
    res.setHeader('ratelimit-reset', String(Math.ceil(d.resetMs / 1000)));
  };

  /** Counts the client's queued requests in one call, no sooner than countEveryMs after its last one. */
  const schedule = (client: string, c: Counting) => {
    c.out = true;
    const wait = c.last + countEveryMs - Date.now();
    if (wait <= 0) countNow(client, c);
    else setTimeout(() => countNow(client, c), wait).unref();
  };
  const countNow = (client: string, c: Counting) => {
    const n = c.queued;
    if (n === 0) {
      c.out = false; // a waiting request's call counted them meanwhile
      return;
    }
    c.last = Date.now();
    c.queued = 0;
    const seq = ++calls;
    const afterCall = () => {
      if (c.queued > 0) schedule(client, c);
      else c.out = false;
    };
    deps.limiter(client, n).then(
      (d) => {
        learn(client, seq, d, settle(client, n));
        afterCall();
      },
      (e: Error) => {
        settle(client, n);
        deps.onUnavailable?.(e);
        afterCall();
      },
    );
  };

  /** The client's last decision, when it lets a request through at once. */
  const passing = (client: string): Known | undefined => {
    const k = known.get(client);
    return k && Date.now() - k.at < KNOWN_FOR_MS && k.decision.allowed && k.decision.remaining - k.undecided - 1 > headroom * k.decision.limit ? k : undefined;
  };
  /** Lets a request through on that decision; it is counted in the background. */
  const admit = (client: string, k: Known, res: ServerResponse) => {
    k.undecided++;
    headers(res, k.decision, k.decision.remaining - k.undecided);
    let c = counting.get(client);
    if (!c) {
      counting.set(client, (c = { out: false, queued: 0, last: 0 }));
      if (counting.size > MAX_KNOWN) {
        for (const [other, o] of counting) {
          if (!o.out) {
            counting.delete(other);
            break;
          }
        }
      }
    }
    c.queued++;
    if (!c.out) schedule(client, c);
  };

  const passNow = (req: IncomingMessage) => {
    const client = deps.credentials.clientOf(req);
    const k = passing(client);
    return k ? (res: ServerResponse) => admit(client, k, res) : undefined;
  };

  const middleware: RequestHandler = (req, res, next) => {
    const pass = passNow(req);
    if (pass) {
      pass(res);
      next();
      return;
    }
    const client = deps.credentials.clientOf(req);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`rate limiter did not answer within ${timeoutMs} ms`)), timeoutMs);
    });
    const seq = ++calls;
    // Requests let through and still waiting for their background count go first, in this
    // call: a decision never misses what was already served (this one is refused when they
    // take what is left).
    const c = counting.get(client);
    const carried = c?.queued ?? 0;
    if (c) c.queued = 0;
    void Promise.race([deps.limiter(client, 1 + carried), timeout])
      .then(
        (d) => ({ d, e: undefined }),
        (e: Error) => ({ d: undefined, e }),
      )
      .then(({ d, e }) => {
        clearTimeout(timer);
        const undecided = settle(client, carried);
        if (!d) {
          deps.onUnavailable?.(e!);
          return next();
        }
        learn(client, seq, d, undecided);
        headers(res, d, d.remaining);
        if (d.allowed) return next();
        deps.onRefused?.(client);
        const retry = String(Math.max(1, Math.ceil(d.retryMs / 1000)));
        next(new HttpError(429, `rate limit exceeded: retry after ${retry} s`, 'rate', { 'retry-after': retry }));
      });
  };
  return { middleware, passNow };
}
