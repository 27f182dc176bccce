/**
 * How much one region flush may take, learned from how long the flush script ran.
 *
 * A flush is one atomic script call: Redis serves no one else while it runs. What a flush
 * costs depends on what it holds (events: dedup; distinct posts: half a dozen leaderboard writes
 * each, more for posts new to a key, more again in bounded mode), so fixed limits either
 * stall Redis (a burst of new posts: 100+ ms per call at 2,000 posts) or cut every flush
 * short. The script reports its own running time; the budget keeps an estimate of the
 * microseconds per unit (an event is one unit, a distinct post POST_UNITS) and sizes the next
 * flush to the target time. The estimate rises at once (half the gap) when a flush runs
 * over and falls by a fifth of the gap per flush, so a burst is cut down within a flush or
 * two. Costs jump (up to 2x between two flushes in a burst of new posts, e.g. while a growing
 * key's table is rehashed), so a flush can still run to about twice the target; following the
 * upper edge instead (rise to the sample, fall by a tenth) cut the throughput further without
 * shortening the longest call in a bench run. Flushes far below the budget (idle, a trickle:
 * mostly the call's fixed cost) teach nothing.
 */
export class FlushBudget {
  /** A distinct post's weight against an event's (measured: ~25 µs against ~0.7 in exact mode). */
  static readonly POST_UNITS = 32;
  /**
   * The starting estimate, µs per unit: above what was measured (a burst of new posts: exact
   * mode ~1.3, bounded ~2.2 on an idle Redis), so the first flushes run short, not long.
   */
  static readonly START_US_PER_UNIT = 3;

  private usPerUnit = FlushBudget.START_US_PER_UNIT;

  /** `targetMs` 0: no budget (only the fixed limits). */
  constructor(
    private readonly targetMs: number,
    /** The most a flush may hold whatever its time (the fixed limits, in units). */
    private readonly maxUnits: number,
  ) {}

  /** Units of a flush of `events` events over `posts` distinct posts. */
  static units(events: number, posts: number): number {
    return events + FlushBudget.POST_UNITS * posts;
  }

  /** The units the next flush may take (at least one post's worth: a flush always makes progress). */
  get limit(): number {
    if (this.targetMs <= 0) return this.maxUnits;
    const units = Math.floor((this.targetMs * 1000) / this.usPerUnit);
    return Math.max(FlushBudget.units(1, 1), Math.min(this.maxUnits, units));
  }

  /** What a flush of `units` units cost inside Redis, in µs. */
  observe(units: number, scriptUs: number): void {
    if (this.targetMs <= 0 || units < this.limit / 4) return;
    const sample = scriptUs / units;
    this.usPerUnit = sample > this.usPerUnit ? (this.usPerUnit + sample) / 2 : 0.8 * this.usPerUnit + 0.2 * sample;
  }

  /** The current estimate, µs per unit (metrics, tests). */
  get estimate(): number {
    return this.usPerUnit;
  }
}
