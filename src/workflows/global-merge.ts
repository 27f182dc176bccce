/**
 * The global merge (id `global-merge:<task queue>`): a durable timer loop that merges, every
 * interval, the key families the hot path changed (all-time, windows, trailing timeframes)
 * from the regions' leaderboards into `global:top_k[:<id>]` with the exact threshold
 * protocol (ranking/tput.ts, store/global-merge.ts). Its `status` query shows the last merge's
 * figures: entries moved beside what merging full leaderboards would move.
 * Continues as new before its history grows large.
 */
import { continueAsNew, proxyActivities, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { globalMergeStatusQuery, type GlobalMergeStatus } from './definitions';

const { mergeGlobal } = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  // A merge beats at every round trip to Redis: one lost with its worker (killed, or its
  // poll's answer lost) is retried after this, not after the 2 minutes.
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

export interface GlobalMergeInput {
  k: number;
  intervalMs: number;
  /** Carried across continue-as-new. */
  status?: GlobalMergeStatus;
}

export async function globalMergeWorkflow(input: GlobalMergeInput): Promise<void> {
  const status: GlobalMergeStatus = input.status ?? { merges: 0, families: 0, moved: 0, naive: 0, last: null };
  setHandler(globalMergeStatusQuery, () => status);
  for (;;) {
    const report = await mergeGlobal({ k: input.k });
    status.merges++;
    status.families += report.families;
    status.moved += report.moved;
    status.naive += report.naive;
    if (report.families > 0) status.last = report;
    if (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > 5000) {
      await continueAsNew<typeof globalMergeWorkflow>({ ...input, status });
    }
    await sleep(input.intervalMs);
  }
}
