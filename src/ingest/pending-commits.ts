/**
 * Group offsets a member failed to commit (a rebalance under way: "The coordinator is not
 * aware of this member"), retried until one lands. Where consumption resumes never depends on
 * them (Redis's applied marks do), but lag monitoring, tools and the bench read the group's
 * offsets: without a retry, the last commit before an idle stretch could stay behind forever.
 */
export interface OffsetCommit {
  topic: string;
  partition: number;
  offset: string;
}

export class PendingCommits {
  private readonly pending = new Map<number, OffsetCommit>();

  /** A commit of `c` failed: keep it (a later one of the partition replaces it). */
  failed(c: OffsetCommit): void {
    const cur = this.pending.get(c.partition);
    if (!cur || BigInt(c.offset) >= BigInt(cur.offset)) this.pending.set(c.partition, c);
  }

  /** A commit of the partition up to `offset` landed: nothing older is pending. */
  landed(partition: number, offset: string): void {
    const cur = this.pending.get(partition);
    if (cur && BigInt(cur.offset) <= BigInt(offset)) this.pending.delete(partition);
  }

  get size(): number {
    return this.pending.size;
  }

  /**
   * Commits what is pending for the partitions still held (the others' new owner commits
   * its own on assignment), in one request; what fails stays pending.
   */
  async retry(held: ReadonlySet<number>, commit: (offsets: OffsetCommit[]) => Promise<void>): Promise<void> {
    for (const p of [...this.pending.keys()]) if (!held.has(p)) this.pending.delete(p);
    const list = [...this.pending.values()];
    if (list.length === 0) return;
    await commit(list);
    for (const c of list) this.landed(c.partition, c.offset);
  }
}
