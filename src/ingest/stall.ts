/**
 * Notices an ingest member that stopped making progress while Redis answers: a batch handed
 * to the actors (or a resume) pending far longer than any flush takes, or a partition with
 * records waiting that no batch was fetched for. Nothing else would: the ingest activity's
 * heartbeat beats on a timer, so a member stuck inside its own process looks alive to
 * Temporal and to /healthz ("consuming") while its partitions' lag only grows.
 *
 * Time while Redis was unreachable or being rebuilt, while a region waits for a checkpoint
 * (backpressure: the record is slow, not this member), or while the process itself did not run
 * (a stop, a long pause) does not count: those end by themselves.
 */

/** What the member has pending, as the watch reads it each tick. */
export interface StallProbe {
  /** Since when (ms) the oldest batch in flight or resume has been pending; null: nothing pending. */
  pendingSince: number | null;
  /** Partitions held with no batch fetched for them since (ms): they are idle or stuck. */
  unfetchedSince: Map<number, number>;
  /** A region is waiting for a checkpoint. */
  backpressure: boolean;
}

/** A stall: what has been pending, for how long. */
export interface Stall {
  kind: 'pending' | 'unfetched';
  forMs: number;
  /** For `unfetched`: the partitions with records waiting and no batch fetched. */
  partitions?: number[];
}

export class StallWatch {
  /** The last time Redis was unreachable or rebuilding, or a region waited for a checkpoint: pending time counts from after it. */
  private excusedAt: number;

  constructor(
    /** Pending this long (Redis answering) is a stall. */
    private readonly limitMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.excusedAt = now();
  }

  private lastTick: number | null = null;

  /**
   * Called every interval: a tick much later than due means this process itself did not run
   * (stopped, swapped out, a long pause), which is not a stall of the member either.
   */
  tick(intervalMs: number): void {
    const t = this.now();
    if (this.lastTick !== null && t - this.lastTick > 5 * intervalMs) this.excusedAt = t;
    this.lastTick = t;
  }

  /** Redis is unreachable, or lost its state and is being rebuilt: the member waits for it, which is not a stall. */
  waitingOnRedis(): void {
    this.excusedAt = this.now();
  }

  /**
   * A pending stall, or null. `waiting` is asked (only for partitions not fetched for longer
   * than the limit) which of them have records past where they resume.
   */
  async check(probe: StallProbe, waiting: (partitions: number[]) => Promise<number[]>): Promise<Stall | null> {
    const t = this.now();
    if (probe.backpressure) this.excusedAt = t;
    const from = (since: number) => Math.max(since, this.excusedAt);
    if (probe.pendingSince !== null && t - from(probe.pendingSince) > this.limitMs) return { kind: 'pending', forMs: t - from(probe.pendingSince) };
    if (probe.pendingSince !== null) return null; // a batch in flight, not yet too long: fetching waits for it
    const quiet = [...probe.unfetchedSince].filter(([, since]) => t - from(since) > this.limitMs).map(([p]) => p);
    if (quiet.length === 0) return null;
    const stuck = await waiting(quiet);
    if (stuck.length === 0) return null;
    const since = Math.min(...stuck.map((p) => probe.unfetchedSince.get(p)!));
    return { kind: 'unfetched', forMs: t - from(since), partitions: stuck.sort((a, b) => a - b) };
  }
}
