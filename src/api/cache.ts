/**
 * Reads shared by concurrent callers and reused for a while: callers that arrive while a
 * value is being computed share it (no added staleness), a computed value is reused for
 * `ttlMs`, and a failure is not kept. Bounded: the oldest key goes first.
 */
export class SharedCache<T> {
  private readonly entries = new Map<string, { at: number; value: Promise<T> }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  get(key: string, compute: () => Promise<T>): Promise<T> {
    const now = performance.now();
    const hit = this.entries.get(key);
    if (hit && (hit.at === Infinity || now - hit.at < this.ttlMs)) return hit.value;
    const entry = { at: Infinity, value: compute() };
    this.entries.set(key, entry);
    entry.value.then(
      () => (this.ttlMs > 0 ? (entry.at = performance.now()) : this.drop(key, entry)),
      () => this.drop(key, entry),
    );
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    return entry.value;
  }

  private drop(key: string, entry: { value: Promise<T> }): void {
    if (this.entries.get(key) === entry) this.entries.delete(key);
  }
}

/** GET /top-posts answers (serialized JSON) by request. */
export class AnswerCache extends SharedCache<string> {}
