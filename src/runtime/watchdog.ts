/**
 * Keeps this process's long-running workflows running: its slot's ingest supervisor and
 * the global merge. Anyone with access to Temporal can terminate a workflow; without this
 * the slot would stop ingesting (its consumer leaves the group) or the global keys would go
 * stale, silently. Every interval each is described, and started again if it is not running.
 */
import { WorkflowIdConflictPolicy, WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Config } from '../config';
import type { Metrics } from '../metrics';
import type { globalMergeWorkflow, ingestSupervisorWorkflow } from '../workflows';
import { globalMergeWorkflowId } from '../workflows/definitions';
import { ingestTaskQueue, supervisorId } from './ids';

/** How often the workflows are checked. @default 3 s — ingest resumes within about this after a termination. */
export const WATCHDOG_INTERVAL_MS = 3000;

export interface WatchdogDeps {
  cfg: Config;
  client: Client;
  slot: number;
  log: (s: string) => void;
  metrics?: Metrics;
}

export class Watchdog {
  private timer?: NodeJS.Timeout;
  private checking = false;
  private first = true;

  constructor(private readonly deps: WatchdogDeps) {}

  start(): void {
    this.timer = setInterval(() => void this.check(), WATCHDOG_INTERVAL_MS);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Starts whichever of the two is not running (failures are logged and retried next round). */
  async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    const { cfg, client, slot } = this.deps;
    const tq = cfg.temporal.taskQueue;
    try {
      await Promise.all([
        this.ensure('ingest supervisor', supervisorId(tq, slot), () =>
          client.workflow.start<typeof ingestSupervisorWorkflow>('ingestSupervisorWorkflow', {
            workflowId: supervisorId(tq, slot),
            taskQueue: tq,
            args: [{ activityTaskQueue: ingestTaskQueue(tq, slot), heartbeatTimeoutSeconds: Math.ceil(cfg.ingest.heartbeatTimeoutMs / 1000) }],
            workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
          }),
        ),
        this.ensure('global merge', globalMergeWorkflowId(tq), () =>
          client.workflow.start<typeof globalMergeWorkflow>('globalMergeWorkflow', {
            workflowId: globalMergeWorkflowId(tq),
            taskQueue: tq,
            args: [{ k: cfg.global.k, intervalMs: cfg.global.mergeIntervalMs }],
            workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
          }),
        ),
      ]);
    } finally {
      this.first = false;
      this.checking = false;
    }
  }

  private async ensure(what: string, workflowId: string, start: () => Promise<unknown>): Promise<void> {
    try {
      let status = 'NOT_FOUND';
      try {
        status = (await this.deps.client.workflow.getHandle(workflowId).describe()).status.name;
      } catch (e) {
        if (!(e instanceof WorkflowNotFoundError)) throw e;
      }
      if (status === 'RUNNING') return;
      await start();
      if (!this.first) {
        this.deps.log(`${what} ${workflowId} was ${status.toLowerCase()}: started it again`);
        this.deps.metrics?.workflowRestarts.inc({ workflow: what === 'global merge' ? 'global_merge' : 'ingest_supervisor' });
      }
    } catch (e) {
      this.deps.log(`cannot check the ${what} ${workflowId} (retrying): ${(e as Error).message}`);
    }
  }
}
