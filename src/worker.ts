/** A Temporal Worker hosting this project's workflows and activities. */
import { NativeConnection, Worker } from '@temporalio/worker';
import type { Config } from './config';
import { createActivities, type ActivityDeps } from './activities';

export const WORKFLOWS_PATH = require.resolve('./workflows');

export async function createWorker(cfg: Config, deps: ActivityDeps, taskQueue = cfg.temporal.taskQueue): Promise<{ worker: Worker; connection: NativeConnection }> {
  const connection = await NativeConnection.connect({ address: cfg.temporal.address });
  const worker = await Worker.create({
    connection,
    namespace: cfg.temporal.namespace,
    taskQueue,
    workflowsPath: WORKFLOWS_PATH,
    activities: createActivities(deps),
  });
  return { worker, connection };
}
