/** A partition's watermark state, as one member leaves it for the next (in `hh:watermarks:<topic>`). */
export interface WatermarkSnapshot {
  max: number;
  regions: string[];
  /** Per region: its earliest event time not yet reported to its coordinator. */
  earliest?: Record<string, number>;
}

/**
 * Event-time watermarks of the partitions one ingest member holds: max event time seen
 * minus a bounded out-of-orderness; a partition that is caught up and idle for longer than
 * a timeout advances by processing time instead (so an idle region's windows still close) —
 * never while a batch of it is still being applied: its events would reach windows already closed.
 * A region's watermark is the lowest of the partitions its events came through. A
 * watermark never passes the clock minus the delay, whatever event times it has seen.
 */
export class Watermarks {
  private readonly maxEvent = new Map<number, number>();
  private readonly lastBatchAt = new Map<number, number>();
  private readonly caughtUp = new Map<number, boolean>();
  private readonly marks = new Map<number, number>();
  private readonly regionParts = new Map<string, Set<number>>();
  private readonly earliest = new Map<string, number>();

  constructor(
    private readonly delayMs: number,
    private readonly idleMs: number,
    private readonly now: () => number = Date.now,
    /** Whether a batch of the partition was taken and is not yet applied (observed). */
    private readonly busy: (partition: number) => boolean = () => false,
  ) {}

  /** After a batch: its highest event time, the regions in it, and whether the partition is now caught up. */
  observe(partition: number, maxEventTime: number, regions: Iterable<[string, number]>, caughtUp: boolean): void {
    if (maxEventTime > (this.maxEvent.get(partition) ?? -Infinity)) this.maxEvent.set(partition, maxEventTime);
    this.lastBatchAt.set(partition, this.now());
    this.caughtUp.set(partition, caughtUp);
    for (const [r, minEventTime] of regions) {
      let parts = this.regionParts.get(r);
      if (!parts) this.regionParts.set(r, (parts = new Set()));
      parts.add(partition);
      if (minEventTime < (this.earliest.get(r) ?? Infinity)) this.earliest.set(r, minEventTime);
    }
    this.advance(partition);
  }

  /** The partition's watermark (never moves back); undefined before its first batch. */
  of(partition: number): number | undefined {
    this.advance(partition);
    return this.marks.get(partition);
  }

  private advance(partition: number): void {
    const max = this.maxEvent.get(partition);
    if (max === undefined) return;
    const now = this.now();
    // Never past the clock: an event stamped ahead of it (within the accepted skew) must not
    // make every later on-time event of the partition late.
    let wm = Math.min(max, now) - this.delayMs;
    const idleFor = now - (this.lastBatchAt.get(partition) ?? now);
    if (this.caughtUp.get(partition) && idleFor >= this.idleMs && !this.busy(partition)) wm = now - this.delayMs;
    if (wm > (this.marks.get(partition) ?? -Infinity)) this.marks.set(partition, wm);
  }

  /** Each region seen: the lowest watermark of its partitions, and its earliest event time not yet taken. */
  regions(): Map<string, { watermark: number; earliest: number }> {
    const out = new Map<string, { watermark: number; earliest: number }>();
    for (const [region, parts] of this.regionParts) {
      let low = Infinity;
      for (const p of parts) low = Math.min(low, this.of(p) ?? -Infinity);
      if (Number.isFinite(low)) out.set(region, { watermark: low, earliest: this.earliest.get(region) ?? low });
    }
    return out;
  }

  /** The earliest event times up to here have reached the coordinator. */
  taken(region: string, earliest: number): void {
    if ((this.earliest.get(region) ?? Infinity) >= earliest) this.earliest.delete(region);
  }

  /**
   * What another member needs to carry on a partition's watermark: its max event time and
   * regions, and those regions' earliest event times not yet taken (events applied here whose
   * windows the coordinator may not know of yet, e.g. the round's signal failed: the next
   * owner does not read them again). Written by the report round, so events applied after a
   * member's last round are not in it; a new coordinator finds their windows in Redis.
   */
  snapshot(partition: number): WatermarkSnapshot | undefined {
    const max = this.maxEvent.get(partition);
    if (max === undefined) return undefined;
    const regions = [...this.regionParts].filter(([, parts]) => parts.has(partition)).map(([r]) => r);
    const pending = regions.filter((r) => this.earliest.has(r)).map((r) => [r, this.earliest.get(r)!] as const);
    return pending.length ? { max, regions, earliest: Object.fromEntries(pending) } : { max, regions };
  }

  /**
   * Takes over a partition another member held (after a rebalance), from its snapshot: the
   * partition counts as caught up and idle from now, so a quiet partition's watermark keeps
   * moving by processing time; a batch that arrives corrects both. No-op once it has data.
   */
  seed(partition: number, snap: WatermarkSnapshot): void {
    if (this.maxEvent.has(partition)) return;
    this.maxEvent.set(partition, snap.max);
    this.lastBatchAt.set(partition, this.now());
    this.caughtUp.set(partition, true);
    for (const r of snap.regions) {
      let parts = this.regionParts.get(r);
      if (!parts) this.regionParts.set(r, (parts = new Set()));
      parts.add(partition);
      const e = snap.earliest?.[r];
      if (typeof e === 'number' && e < (this.earliest.get(r) ?? Infinity)) this.earliest.set(r, e);
    }
    this.advance(partition);
  }

  /** Forgets partitions this member no longer holds (after a rebalance). */
  retain(partitions: Set<number>): void {
    for (const p of [...this.maxEvent.keys()]) {
      if (!partitions.has(p)) {
        this.maxEvent.delete(p);
        this.lastBatchAt.delete(p);
        this.caughtUp.delete(p);
        this.marks.delete(p);
      }
    }
    for (const parts of this.regionParts.values()) for (const p of [...parts]) if (!partitions.has(p)) parts.delete(p);
  }
}
