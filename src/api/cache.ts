/**
 * Reads shared by concurrent callers and reused for a while: callers that arrive while a
 * value is being computed share it (no added staleness), a computed value is reused for
 * `ttlMs`, and a failure is not kept. With `staleMs`: while a value is being computed again,
 * its callers get the previous one at once (if no older than ttl + staleMs) — a slow read
 * (Redis busy with another client's call) holds no request behind it — except the caller
 * that started the read of a value asked for rarely (below), which waits at most `waitMs`
 * for it, then gets the previous one. With `swrMs` (stale while revalidate; a previous value
 * is kept only with `staleMs`, so swrMs acts up to staleMs): a caller whose previous value is
 * no older than ttl + swrMs starts its read and gets that value at once — a value asked for
 * often is read again behind its callers, never in front of them, and one asked for rarely
 * is still read fresh. With `warmMs`: a value asked for within the last warmMs is read again
 * every ttl behind the callers' backs (at most `maxWarm` such keys, the last asked), so a key
 * asked for in bursts (a page polled every few hundred ms) finds its value fresh at the next
 * burst instead of reading it in front of that burst's first requests.
 * `ready` answers synchronously where `get` would answer at once with a value already
 * computed, and starts nothing for a key it does not hold (a caller that may be refused
 * after asking costs no computation). Bounded: the oldest key goes first.
 */
/** A computed value: the promise, and its result once it has one. */
interface Computed<T> {
  at: number;
  value: Promise<T>;
  result?: { value: T };
}

/** A value and when it was computed (Infinity while it is being computed), with the one it replaces. */
interface Entry<T> extends Computed<T> {
  previous?: Computed<T>;
  /** When a caller last asked for it, and how to compute it (what a warm read runs). */
  askedAt: number;
  compute: () => Promise<T>;
}

export interface SharedCacheOptions {
  /** The most keys held; the oldest goes first. @default 10,000 */
  maxEntries?: number;
  /** How much older than ttl a previous value may be and still answer while its successor is read (ms). @default 0 */
  staleMs?: number;
  /** How long the caller that starts the read of a value past ttl + swrMs waits before it gets the previous one (ms). @default 20 */
  waitMs?: number;
  /** A previous value no older than ttl + swrMs answers at once while it is read again (ms; acts up to staleMs). @default 0 */
  swrMs?: number;
  /** A value asked for within this long is read again every ttl without a caller (ms; 0: never). @default 0 */
  warmMs?: number;
  /** The most keys kept warm at once (the last asked). @default 32 */
  maxWarm?: number;
}

export class SharedCache<T> {
  private readonly entries = new Map<string, Entry<T>>();
  /** Keys with a warm read scheduled or running, by key: the timer. */
  private readonly warm = new Map<string, NodeJS.Timeout | null>();
  private readonly maxEntries: number;
  private readonly staleMs: number;
  private readonly waitMs: number;
  private readonly swrMs: number;
  private readonly warmMs: number;
  private readonly maxWarm: number;

  constructor(
    private readonly ttlMs: number,
    opts: SharedCacheOptions = {},
  ) {
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.staleMs = opts.staleMs ?? 0;
    this.waitMs = opts.waitMs ?? 20;
    this.swrMs = opts.swrMs ?? 0;
    this.warmMs = ttlMs > 0 ? (opts.warmMs ?? 0) : 0;
    this.maxWarm = opts.maxWarm ?? 32;
  }

  get(key: string, compute: () => Promise<T>): Promise<T> {
    const now = performance.now();
    const hit = this.asked(key, compute, now);
    if (hit && hit.at === Infinity) {
      // Being computed: its previous value answers at once while it may.
      const prev = hit.previous;
      return this.mayAnswer(prev, now) ? prev.value : hit.value;
    }
    if (hit && now - hit.at < this.ttlMs) return hit.value;
    return this.answer(this.recompute(key, compute, hit), now);
  }

  /**
   * The value `get` would answer at once, already computed: a fresh one, or the previous
   * one while it is computed again (within ttl + staleMs while a read is out; within ttl +
   * swrMs for the caller that starts it). Otherwise undefined, and nothing is started: `get`
   * is the way to wait for it.
   */
  ready(key: string, compute: () => Promise<T>): T | undefined {
    const now = performance.now();
    const hit = this.asked(key, compute, now);
    if (!hit) return undefined;
    if (hit.at !== Infinity && now - hit.at < this.ttlMs) return hit.result?.value; // fresh
    if (hit.at === Infinity) {
      // Being computed: its previous value answers while it may.
      const prev = hit.previous;
      return this.mayAnswer(prev, now) ? prev.result?.value : undefined;
    }
    // Expired: the hit itself answers, computed again behind it.
    if (!hit.result || !this.servesPrevious(hit, now)) return undefined;
    this.recompute(key, compute, hit);
    return hit.result.value;
  }

  /** Marks a key asked for now (with the latest way to compute it): its entry, if held. */
  private asked(key: string, compute: () => Promise<T>, now: number): Entry<T> | undefined {
    const hit = this.entries.get(key);
    if (hit) {
      hit.askedAt = now;
      hit.compute = compute;
    }
    return hit;
  }

  /** The previous value of an entry being read again may still answer: no older than ttl + staleMs (one is kept only with staleMs). */
  private mayAnswer(prev: Computed<T> | undefined, now: number): prev is Computed<T> {
    return prev !== undefined && now - prev.at < this.ttlMs + this.staleMs;
  }

  /** A previous value computed at `c.at` is answered at once by the caller that starts its successor's read. */
  private servesPrevious(c: { at: number }, now: number): boolean {
    return this.staleMs > 0 && now - c.at < this.ttlMs + Math.min(this.swrMs, this.staleMs);
  }

  /** Starts computing `key` again; the entry it replaces (if any) is kept as its previous value. */
  private recompute(key: string, compute: () => Promise<T>, hit: Entry<T> | undefined): Entry<T> {
    const entry: Entry<T> = { at: Infinity, value: compute(), askedAt: hit?.askedAt ?? performance.now(), compute };
    if (hit && this.staleMs > 0) entry.previous = { at: hit.at, value: hit.value, result: hit.result };
    this.entries.set(key, entry);
    entry.value.then(
      (value) => {
        entry.previous = undefined;
        entry.result = { value };
        if (this.ttlMs > 0) entry.at = performance.now();
        else this.drop(key, entry);
        this.keepWarm(key, entry);
      },
      () => {
        this.drop(key, entry);
        this.unwarm(key);
      },
    );
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    return entry;
  }

  /**
   * After a read of `key` completes: if it was asked for within warmMs, its next read starts
   * when this value turns ttl old (unless a caller starts one first); the chain ends when
   * nobody asked for warmMs, the key was dropped, or maxWarm other keys are warm.
   */
  private keepWarm(key: string, entry: Entry<T>): void {
    if (this.warmMs <= 0 || this.entries.get(key) !== entry) return;
    const held = this.warm.get(key);
    if (held) clearTimeout(held);
    if (performance.now() - entry.askedAt >= this.warmMs || (held === undefined && this.warm.size >= this.maxWarm)) {
      this.warm.delete(key);
      return;
    }
    const timer: NodeJS.Timeout = setTimeout(() => {
      if (this.warm.get(key) === timer) this.warm.delete(key);
      // Dropped, replaced by a caller's read (whose end goes on with the chain), or not asked for lately.
      if (this.entries.get(key) !== entry || performance.now() - entry.askedAt >= this.warmMs) return;
      this.warm.set(key, null); // a warm read is out
      this.recompute(key, entry.compute, entry);
    }, this.ttlMs);
    timer.unref();
    this.warm.set(key, timer);
  }

  /** For the caller that started `entry`'s read: the new value, or the previous one (at once within ttl + swrMs; within ttl + staleMs, after waitMs). */
  private answer(entry: Entry<T>, now: number): Promise<T> {
    const prev = entry.previous;
    if (!this.mayAnswer(prev, now)) return entry.value;
    if (this.servesPrevious(prev, now)) return prev.value;
    let timer: NodeJS.Timeout | undefined;
    const fallback = new Promise<T>((resolve) => (timer = setTimeout(() => resolve(prev.value), this.waitMs)));
    return Promise.race([entry.value.finally(() => clearTimeout(timer)), fallback]);
  }

  /** Ends the key's warm chain (a failed read is not read again by itself). */
  private unwarm(key: string): void {
    const timer = this.warm.get(key);
    if (timer) clearTimeout(timer);
    this.warm.delete(key);
  }

  private drop(key: string, entry: { value: Promise<T> }): void {
    if (this.entries.get(key) === entry) this.entries.delete(key);
  }
}

/**
 * GET /top-posts answers by request: serialized JSON, kept encoded (a reused answer is sent
 * as it is, not encoded again per request). An answer asked for again within twice its reuse
 * time is read again behind its callers (`swrMs` = ttl): they get the previous one at once,
 * at most ~2 × ttl and a read old. Before (2026-12-05) they waited up to 20 ms for the read:
 * at 2,000 req/s about 4 % of requests waited behind a refresh, and the slow refreshes (p99
 * 7–45 ms per 10 s) put those requests at the API's p99. An answer asked for within the last
 * second is kept warm (`warmMs`): read again every ttl, so the first requests of a burst find
 * it fresh. Before (2026-12-06) a key asked for in bursts more than 2 × ttl apart was read in
 * front of each burst's first requests, which waited for it (up to waitMs) through Express;
 * and requests arriving while a read took longer than ttl waited too: 0.5–2.5 % of requests at
 * 2,000 req/s under a 2,000 events/s load, where the API's p99 is decided.
 */
export class AnswerCache<T = Buffer> extends SharedCache<T> {
  /**
   * Reused for `ttlMs`; while it is read again the previous answer serves at once, up to
   * `staleMs` past ttl; asked for within `warmMs` it is read again every ttl by itself.
   */
  constructor(ttlMs: number, opts: SharedCacheOptions = {}) {
    super(ttlMs, {
      staleMs: ttlMs > 0 ? ANSWER_STALE_MS : 0,
      swrMs: ttlMs,
      warmMs: ANSWER_WARM_MS,
      maxWarm: ANSWER_MAX_WARM,
      ...opts,
    });
  }
}

/** How much older than its reuse time an answer may be while a new one is read (ms). */
export const ANSWER_STALE_MS = 1000;

/** An answer asked for within this long is kept fresh without a caller (ms). */
export const ANSWER_WARM_MS = 1000;

/** The most answers kept warm at once: a bound on the reads no request asked for (each warm key: one read per ttl). */
export const ANSWER_MAX_WARM = 16;
