/**
 * How much one region flush may take, learned from how long the flush script ran.
 *
 * A flush is one atomic script call: Redis serves no one else while it runs. What a flush
 * costs depends on what it holds: its events (the dedup check and record of each id) and its
 * distinct posts (half a dozen leaderboard writes each, more for posts new to a key, more
 * again in bounded mode). The two are learned apart: the script times its event step and its
 * post step and reports both, and the budget keeps an estimate of the microseconds per event
 * and per post. A flush is filled, event by event, until its expected time reaches the
 * target.
 *
 * One estimate per unit over a fixed mix (a post weighed as 32 events, calibrated when a post
 * cost ~25 µs) fell apart once a post cost ~5 µs against an event's ~0.8: learned on flushes
 * of many posts, it let a flush of many events over few posts (20,000 events, 1,250 posts)
 * run two to three times the target (the bench's longest scripts, 40-53 ms at a 20 ms target).
 *
 * Each estimate rises at once (half the gap) when its step runs over it and falls by a fifth
 * of the gap per flush, so a burst is cut down within a flush or two. Costs still jump (up to
 * 2x between two flushes in a burst of new posts, e.g. while a growing key's table is
 * rehashed), so a flush can still run to about twice the target. A step expected far below the
 * target (an idle trickle, a handful of posts: mostly the call's fixed cost) teaches nothing.
 */
export class FlushBudget {
  /**
   * The starting estimates, µs: above what was measured on an idle Redis (one flush per 2,000
   * events: per event 0.7-0.8; per post 4.8-6.1 in exact mode, 13-22 in bounded mode, the
   * more for posts new to the keys), so the first flushes run short, not long.
   */
  static readonly START_US_PER_EVENT = 3;
  static readonly START_US_PER_POST = 20;
  /** A step expected to take less than this share of the target teaches nothing. */
  static readonly MIN_SHARE = 0.1;

  private perEvent = FlushBudget.START_US_PER_EVENT;
  private perPost = FlushBudget.START_US_PER_POST;

  /** `targetMs` 0: no budget (only the fixed limits). */
  constructor(private readonly targetMs: number) {}

  /** The time the next flush may hold Redis, µs (Infinity: no budget). */
  get limitUs(): number {
    return this.targetMs > 0 ? this.targetMs * 1000 : Infinity;
  }

  /** The expected cost of one more event in a flush, µs. */
  get usPerEvent(): number {
    return this.perEvent;
  }

  /** The expected cost of one more distinct post in a flush, µs. */
  get usPerPost(): number {
    return this.perPost;
  }

  /** What a flush of `events` events over `posts` distinct posts is expected to take, µs. */
  expected(events: number, posts: number): number {
    return events * this.perEvent + posts * this.perPost;
  }

  /** What a flush of `events` events over `posts` posts took in its event step and its post step, µs. */
  observe(events: number, posts: number, eventUs: number, postUs: number): void {
    if (this.targetMs <= 0) return;
    const floor = FlushBudget.MIN_SHARE * this.limitUs;
    if (events > 0 && events * this.perEvent >= floor) this.perEvent = FlushBudget.next(this.perEvent, eventUs / events);
    if (posts > 0 && posts * this.perPost >= floor) this.perPost = FlushBudget.next(this.perPost, postUs / posts);
  }

  /** Up half the gap at once, down a fifth of it. */
  private static next(estimate: number, sample: number): number {
    return sample > estimate ? (estimate + sample) / 2 : 0.8 * estimate + 0.2 * sample;
  }
}
