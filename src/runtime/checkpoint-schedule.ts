/**
 * When an ingest worker's checkpoints run: one at a time, every interval (the cluster's timed
 * round) and at once when an actor waits for one (and again after the running one, if asked
 * meanwhile). While they fail (Cassandra down) they are retried every interval; nothing is
 * lost, the changes stay marked in Redis.
 *
 * stop() ends the schedule: it waits for the round in flight, then runs the last one. A
 * round still in flight when the process closes its Redis and Cassandra connections fails
 * ("Connection is closed") and leaves its cut to the next start.
 */
export interface CheckpointRounds {
  /** The cluster's timed round: null `written` when another worker ran it. */
  timed(): Promise<{ written: number | null; lastOk: number | null }>;
  /** Every changed region at once: the entries written. */
  all(): Promise<number>;
}

export interface CheckpointEvents {
  /** A round of this worker wrote `written` entries in `seconds`; `lastOk` is the cluster's last success (ms), if known. */
  done(written: number | null, lastOk: number | null, seconds: number): void;
  failed(e: Error): void;
}

export class CheckpointSchedule {
  private current: Promise<void> | null = null;
  private again = false;
  private failing = false;
  private stopped = false;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly rounds: CheckpointRounds,
    private readonly events: CheckpointEvents,
    private readonly log: (s: string) => void,
  ) {}

  /** Starts the timed rounds. */
  start(intervalMs: number): void {
    this.timer = setInterval(() => this.run(true), intervalMs);
  }

  /** A checkpoint at once (an actor waits for one); after the running one if one runs. */
  request(): void {
    this.run(false);
  }

  /** Whether the last round failed (the next timed one retries). */
  get isFailing(): boolean {
    return this.failing;
  }

  /** No more rounds; waits for the one in flight, then runs the last. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.current;
    await this.rounds.all().catch((e: Error) => this.log(`last checkpoint failed: ${e.message}`));
  }

  private run(timed: boolean): void {
    if (this.stopped) return;
    if (this.current) {
      this.again ||= !timed;
      return;
    }
    const t0 = process.hrtime.bigint();
    const round = timed ? this.rounds.timed() : this.rounds.all().then((written) => ({ written, lastOk: Date.now() }));
    this.current = round
      .then(
        ({ written, lastOk }) => {
          this.events.done(written, lastOk, Number(process.hrtime.bigint() - t0) / 1e9);
          if (written === null) return; // another worker's round
          if (this.failing) this.log('checkpoints to Cassandra resumed');
          this.failing = false;
        },
        (e: Error) => {
          this.events.failed(e);
          if (!this.failing) this.log(`checkpoint failed (retrying every interval): ${e.message}`);
          this.failing = true;
        },
      )
      .finally(() => {
        this.current = null;
        if (this.again && !this.failing) {
          this.again = false;
          this.run(false);
        }
      });
  }
}
