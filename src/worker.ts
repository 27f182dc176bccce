/** The one way this project builds a Temporal Worker (the runtime's: a slot's ingest worker, the lifecycle's workflow worker; the tests'; the recorder's). */
import { Worker, type NativeConnection } from '@temporalio/worker';
import type { Duration } from '@temporalio/common';
import type { Config } from './config';

/** The product's workflows (a bundle: workflows import activities only as types). */
export const WORKFLOWS_PATH = require.resolve('./workflows');

export interface WorkerOptions {
  cfg: Config;
  connection: NativeConnection;
  taskQueue: string;
  activities: object;
  /** The workflows it hosts: the product's by default; `false` for an activity-only worker. */
  workflowsPath?: string | false;
  /** A bundle of the product's workflows made beforehand (workflow-bundle.ts), used instead of bundling them here. */
  workflowBundlePath?: string;
  /** At most this many activities at once (the ingest slot's worker: 1). */
  maxConcurrentActivityTaskExecutions?: number;
  /** How long a shutdown waits for running activities. */
  shutdownGraceTime?: Duration;
}

export function createWorker(o: WorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: o.connection,
    namespace: o.cfg.temporal.namespace,
    taskQueue: o.taskQueue,
    activities: o.activities,
    ...(o.workflowsPath === false
      ? {}
      : o.workflowBundlePath && o.workflowsPath === undefined
        ? { workflowBundle: { codePath: o.workflowBundlePath } }
        : { workflowsPath: o.workflowsPath ?? WORKFLOWS_PATH }),
    ...(o.maxConcurrentActivityTaskExecutions ? { maxConcurrentActivityTaskExecutions: o.maxConcurrentActivityTaskExecutions } : {}),
    ...(o.shutdownGraceTime ? { shutdownGraceTime: o.shutdownGraceTime } : {}),
  });
}
