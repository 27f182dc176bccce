/**
 * Windows that should be FINAL by now and are not: per tumbling spec, the running window
 * workflows of this runtime's task queue still OPEN or CLOSED although their end plus
 * allowed lateness plus the watermark delay is more than `overdueMs` behind the clock
 * (Temporal visibility, every interval). Exported as hh_windows_overdue{spec}; the alert
 * rule HeavyHittersWindowOverdue fires on it.
 */
import type { Client } from '@temporalio/client';
import type { WindowSpec } from '../config';
import type { Metrics } from '../metrics';

export interface OverdueOptions {
  client: Client;
  taskQueue: string;
  windows: readonly WindowSpec[];
  watermarkDelayMs: number;
  overdueMs: number;
  metrics: Metrics;
  log: (s: string) => void;
}

/** The visibility query of one spec's overdue windows at `now`. Pure. */
export function overdueQuery(o: Pick<OverdueOptions, 'taskQueue' | 'watermarkDelayMs' | 'overdueMs'>, w: WindowSpec, now: number): string {
  const startedBefore = new Date(now - w.sizeMs - w.latenessMs - o.watermarkDelayMs - o.overdueMs).toISOString();
  return (
    `TaskQueue = '${o.taskQueue}' AND WindowSpec = '${w.name}' AND ExecutionStatus = 'Running' ` +
    `AND WindowState IN ('OPEN', 'CLOSED') AND WindowStart < '${startedBefore}'`
  );
}

export class OverdueWindows {
  private timer: NodeJS.Timeout | undefined;
  private failing = false;

  constructor(private readonly o: OverdueOptions) {}

  async check(now = Date.now()): Promise<void> {
    try {
      for (const w of this.o.windows) {
        const { count } = await this.o.client.workflow.count(overdueQuery(this.o, w, now));
        this.o.metrics.windowsOverdue.set({ spec: w.name }, count);
      }
      this.failing = false;
    } catch (e) {
      this.o.metrics.failures.inc({ operation: 'overdue_windows' });
      if (!this.failing) this.o.log(`cannot count overdue windows (retrying): ${(e as Error).message}`);
      this.failing = true;
    }
  }

  start(intervalMs = 30_000): void {
    void this.check();
    this.timer = setInterval(() => void this.check(), intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
