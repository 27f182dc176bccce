/**
 * The consumer group's committed offsets, kept equal to what this member applied. Where
 * consumption resumes never depends on them (Redis's applied marks do), but lag monitoring,
 * tools and the bench read them, so they must not stay behind:
 * - a commit can be refused (a rebalance under way: "The coordinator is not aware of this
 *   member"): it is owed, and retried every tick until one lands;
 * - another member can overwrite one: Kafka checks the committer's generation, not that it
 *   owns the partition, so a previous owner's late (or retried) commit can put a partition
 *   back after its new owner committed and went idle. Every `refreshMs` the member commits
 *   again what it applied of every partition it holds.
 */
export interface OffsetCommit {
  topic: string;
  partition: number;
  /** The next offset to read (one past the last applied). */
  offset: string;
}

export class GroupOffsets {
  private readonly newest = new Map<number, OffsetCommit>();
  private readonly owed = new Set<number>();
  private lastRefresh = -Infinity;

  constructor(private readonly refreshMs: number) {}

  /** The member applied the partition up to `c.offset`: a commit of it is owed until one lands. */
  advance(c: OffsetCommit): void {
    const cur = this.newest.get(c.partition);
    if (cur && BigInt(cur.offset) > BigInt(c.offset)) return;
    this.newest.set(c.partition, c);
    this.owed.add(c.partition);
  }

  /**
   * The partition resumes at `c.offset` (Redis's applied mark, read by a resume): owed as the
   * newest even when lower than what was applied before (a rebuild rewound it), so the refresh
   * does not put the group's offset back ahead of what Redis holds.
   */
  rewind(c: OffsetCommit): void {
    this.newest.set(c.partition, c);
    this.owed.add(c.partition);
  }

  /** A commit of the partition up to `offset` landed. */
  landed(partition: number, offset: string): void {
    const cur = this.newest.get(partition);
    if (cur && BigInt(cur.offset) <= BigInt(offset)) this.owed.delete(partition);
  }

  /** Commits owed, of partitions still held. */
  get owing(): number {
    return this.owed.size;
  }

  /**
   * What to commit now, for the partitions still held (the others are forgotten: their new
   * owner commits its own): the owed ones, and every held one once per `refreshMs`.
   */
  due(held: ReadonlySet<number>, now: number): OffsetCommit[] {
    for (const p of [...this.newest.keys()]) {
      if (held.has(p)) continue;
      this.newest.delete(p);
      this.owed.delete(p);
    }
    if (now - this.lastRefresh >= this.refreshMs) {
      this.lastRefresh = now;
      return [...this.newest.values()];
    }
    return [...this.owed].map((p) => this.newest.get(p)!);
  }

  /** Commits what is due in one request; what fails stays owed. */
  async sync(held: ReadonlySet<number>, now: number, commit: (offsets: OffsetCommit[]) => Promise<void>): Promise<void> {
    const list = this.due(held, now);
    if (list.length === 0) return;
    try {
      await commit(list);
    } catch (e) {
      for (const c of list) if (this.newest.get(c.partition) === c) this.owed.add(c.partition);
      throw e;
    }
    for (const c of list) this.landed(c.partition, c.offset);
  }
}
