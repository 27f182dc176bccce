/**
 * In the cluster's primary: lets the ingest members of one runtime join the consumer group
 * together. Each slot's member asks before it connects; the gate answers them all at once
 * when every slot has asked or was let go before since its process started (it joined, or is
 * joining: a slot restarted beside running ones goes at once, as does an ingest activity
 * retried in the same process), or when the first has waited `waitMs` (a slot that never
 * gets there does not hold the others back for longer).
 *
 * Why: a member that joins while the others read makes the group rebalance, and everyone
 * stops meanwhile. A slot's ingest activity is started through Temporal, so one can start
 * seconds after another: in full bench runs the second worker joined while the first was
 * reading the backlog (3 joins instead of 2) and the run read 10.3-32.9 % of its records
 * twice, at 0.67-0.74 of the naive pipelined consumer; together, the broker's initial
 * rebalance delay puts both in the group's first generation.
 */
export interface JoinGateOptions {
  /** The runtime's ingest slots (1..slots). */
  slots: number;
  /** The longest the first member to ask waits for the others (ms). */
  waitMs: number;
  log: (s: string) => void;
  now?: () => number;
}

export class JoinGate {
  /** The members waiting, by slot: what releases each. */
  private readonly waiting = new Map<number, () => void>();
  /** Slots let go since their process started: joined or joining. */
  private readonly released = new Set<number>();
  private since = 0;
  private timer?: NodeJS.Timeout;

  constructor(private readonly opts: JoinGateOptions) {}

  /** A slot's member asks to join; `release` runs when it may. */
  arrive(slot: number, release: () => void): void {
    const now = this.opts.now ?? Date.now;
    this.waiting.get(slot)?.(); // an earlier ask of the same slot (a process gone meanwhile) is let go
    if (!this.timer) {
      this.since = now();
      this.timer = setTimeout(() => this.open('the wait ran out'), this.opts.waitMs);
    }
    this.waiting.set(slot, release);
    if (this.absent().length === 0) this.open('every slot is ready');
  }

  /** A slot's process is gone: its ask, if any, is dropped, and it is waited for again. */
  left(slot: number): void {
    this.waiting.delete(slot);
    this.released.delete(slot);
    if (this.waiting.size === 0) this.clear();
  }

  /** The slots neither waiting nor let go before. */
  private absent(): number[] {
    const absent: number[] = [];
    for (let s = 1; s <= this.opts.slots; s++) if (!this.waiting.has(s) && !this.released.has(s)) absent.push(s);
    return absent;
  }

  /** Stops the timer (the primary stops). */
  close(): void {
    this.clear();
  }

  private open(why: string): void {
    const now = this.opts.now ?? Date.now;
    const slots = [...this.waiting.keys()].sort((a, b) => a - b);
    const absent = this.absent();
    for (const s of slots) this.released.add(s);
    const releases = [...this.waiting.values()];
    this.waiting.clear();
    this.clear();
    this.opts.log(
      `ingest slot${slots.length > 1 ? 's' : ''} ${slots.join(',')} may join the group (${why}, after ${now() - this.since} ms)${absent.length ? `; not ready: slot${absent.length > 1 ? 's' : ''} ${absent.join(',')}` : ''}`,
    );
    for (const r of releases) r();
  }

  private clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
