/**
 * Supervises one worker process's ingest activity (a Kafka consumer-group member) on
 * that process's own task queue. The activity runs until its process shuts down (or, as
 * the group's leader, it leaves the group to rebalance it by load: started again at once); when
 * it fails or its process dies (heartbeats stop), the retry policy starts it again,
 * on the restarted process. Events never pass through here.
 */
import { continueAsNew, proxyActivities, sleep, workflowInfo, log, isCancellation } from '@temporalio/workflow';
import type { Activities } from '../activities';

export interface IngestSupervisorInput {
  /** The task queue of the process slot whose ingest this workflow supervises. */
  activityTaskQueue: string;
  /** Seconds without a heartbeat after which the attempt is retried. */
  heartbeatTimeoutSeconds: number;
}

export async function ingestSupervisorWorkflow(input: IngestSupervisorInput): Promise<void> {
  const { ingest } = proxyActivities<Activities>({
    taskQueue: input.activityTaskQueue,
    // Long-running by design; liveness comes from the heartbeat timeout.
    startToCloseTimeout: '3650 days',
    heartbeatTimeout: `${input.heartbeatTimeoutSeconds} seconds`,
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' },
  });
  for (let runs = 0; ; runs++) {
    try {
      const done = await ingest();
      log.info('ingest returned (its process shut down, or it left the group to rebalance it by load); scheduling the next run', { ...done });
    } catch (e) {
      if (isCancellation(e)) throw e;
      log.warn('ingest failed beyond its retry policy; restarting after a pause', { error: String(e) });
      await sleep('10 seconds');
    }
    if (workflowInfo().continueAsNewSuggested || runs >= 100) {
      await continueAsNew<typeof ingestSupervisorWorkflow>(input);
    }
  }
}
