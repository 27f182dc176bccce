/**
 * Reads shared by concurrent callers and reused for a while: callers that arrive while a
 * value is being computed share it (no added staleness), a computed value is reused for
 * `ttlMs`, and a failure is not kept. With `staleMs`: a caller whose value is being computed
 * again waits at most `waitMs` for it, then gets the previous one (if no older than ttl +
 * staleMs) — a slow read (Redis busy with another client's call) does not hold every
 * request behind it, and a quick one (the usual case) still answers with the new value.
 * With `swrMs` (stale while revalidate; a previous value is kept only with `staleMs`, so
 * swrMs acts up to staleMs): a caller whose previous value is no older than ttl + swrMs gets
 * it at once, without waiting at all — a value asked for often is read again behind its
 * callers, never in front of them, and one asked for rarely is still read fresh.
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
}

export class SharedCache<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
    private readonly staleMs = 0,
    private readonly waitMs = 20,
    private readonly swrMs = 0,
  ) {}

  get(key: string, compute: () => Promise<T>): Promise<T> {
    const now = performance.now();
    const hit = this.entries.get(key);
    if (hit && hit.at === Infinity) return this.answer(hit, now); // being computed
    if (hit && now - hit.at < this.ttlMs) return hit.value;
    return this.answer(this.recompute(key, compute, hit), now);
  }

  /**
   * The value `get` would answer with at once, already computed: a fresh one, or the previous
   * one while it is computed again (within ttl + swrMs; the computation is started as `get`
   * would). Otherwise undefined, and nothing is started: `get` is the way to wait for it.
   */
  ready(key: string, compute: () => Promise<T>): T | undefined {
    const now = performance.now();
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    if (hit.at !== Infinity && now - hit.at < this.ttlMs) return hit.result?.value; // fresh
    // Being computed: its previous value answers; expired: the hit itself, computed again behind it.
    const prev = hit.at === Infinity ? hit.previous : hit;
    if (!prev?.result || !this.servesPrevious(prev, now)) return undefined;
    if (prev === hit) this.recompute(key, compute, hit);
    return prev.result.value;
  }

  /** A previous value computed at `c.at` is answered at once while its successor is computed. */
  private servesPrevious(c: { at: number }, now: number): boolean {
    return this.staleMs > 0 && now - c.at < this.ttlMs + Math.min(this.swrMs, this.staleMs);
  }

  /** Starts computing `key` again; the entry it replaces (if any) is kept as its previous value. */
  private recompute(key: string, compute: () => Promise<T>, hit: Entry<T> | undefined): Entry<T> {
    const entry: Entry<T> = { at: Infinity, value: compute() };
    if (hit && this.staleMs > 0) entry.previous = { at: hit.at, value: hit.value, result: hit.result };
    this.entries.set(key, entry);
    entry.value.then(
      (value) => {
        entry.previous = undefined;
        entry.result = { value };
        if (this.ttlMs > 0) entry.at = performance.now();
        else this.drop(key, entry);
      },
      () => this.drop(key, entry),
    );
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    return entry;
  }

  /** The value being computed, or the previous one if that takes longer than waitMs (and it is fresh enough). */
  private answer(entry: Entry<T>, now: number): Promise<T> {
    const prev = entry.previous;
    if (!prev || now - prev.at >= this.ttlMs + this.staleMs) return entry.value;
    if (this.servesPrevious(prev, now)) return prev.value;
    let timer: NodeJS.Timeout | undefined;
    const fallback = new Promise<T>((resolve) => (timer = setTimeout(() => resolve(prev.value), this.waitMs)));
    return Promise.race([entry.value.finally(() => clearTimeout(timer)), fallback]);
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
 * 7–45 ms per 10 s) put those requests at the API's p99.
 */
export class AnswerCache<T = Buffer> extends SharedCache<T> {
  /**
   * Reused for `ttlMs`; asked for within ttl + `swrMs` (default ttl) the previous answer serves
   * at once while it is read again; after that, a read longer than `waitMs` is answered by the
   * previous one for up to `staleMs` more.
   */
  constructor(ttlMs: number, staleMs = ttlMs > 0 ? ANSWER_STALE_MS : 0, waitMs?: number, swrMs = ttlMs) {
    super(ttlMs, undefined, staleMs, waitMs, swrMs);
  }
}

/** How much older than its reuse time an answer may be while a new one is read (ms). */
export const ANSWER_STALE_MS = 1000;
