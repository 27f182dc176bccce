/**
 * The global merge workflow on Temporal's time-skipping test server, its activity a stub
 * (this tests the workflow alone): a merge lost with its worker — it never completes and
 * never beats, as when the worker was killed or the poll's answer was lost — is retried
 * within the heartbeat timeout, so `global:top_k` is not left stale for the 2 minutes of
 * the start-to-close timeout.
 */
import { expect } from 'chai';
import { Context } from '@temporalio/activity';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { loadConfig } from '../../src/config';
import { testServerWrapper } from '../../scripts/stack/services';
import { WORKFLOWS_PATH } from '../../src/worker';
import { globalMergeWorkflow } from '../../src/workflows/global-merge';
import { globalMergeWorkflowId } from '../../src/workflows/definitions';
import type { GlobalMergeReport } from '../../src/store/global-merge';
import { unique } from '../helpers';

describe('global merge under time skipping', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;

  before(async () => {
    env = await TestWorkflowEnvironment.createTimeSkipping({
      server: { executable: { type: 'existing-path', path: testServerWrapper(loadConfig()) } },
    });
  });
  after(async () => {
    await env?.teardown();
  });

  it('retries a merge lost with its worker within the heartbeat timeout, not the start-to-close timeout', async () => {
    const attempts: { attempt: number; scheduled: number }[] = [];
    let release: () => void = () => undefined;
    const lost = new Promise<void>((resolve) => (release = resolve));
    const activities = {
      async mergeGlobal(): Promise<GlobalMergeReport> {
        const info = Context.current().info;
        attempts.push({ attempt: info.attempt, scheduled: info.currentAttemptScheduledTimestampMs });
        if (attempts.length === 1) await lost; // the first merge is lost: no completion, no heartbeat
        return { families: 1, moved: 1, naive: 2, merged: {} };
      },
    };
    const taskQueue = unique('gm');
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowsPath: WORKFLOWS_PATH, activities });
    await worker.runUntil(async () => {
      const handle = await env.client.workflow.start(globalMergeWorkflow, {
        workflowId: globalMergeWorkflowId(taskQueue),
        taskQueue,
        args: [{ k: 10, intervalMs: 1000 }],
      });
      // The server does not skip its clock past an activity in flight: the lost merge's
      // timeout passes in real time. A minute is well past the heartbeat timeout (10 s) and
      // short of the start-to-close one (2 min).
      const deadline = Date.now() + 60_000;
      while (attempts.length < 2 && Date.now() < deadline) await env.sleep(1000);
      release();
      await handle.terminate('test over');
    });
    expect(attempts.length, 'the lost merge was tried again').to.be.at.least(2);
    expect(attempts[1].attempt).to.equal(2);
    const after = attempts[1].scheduled - attempts[0].scheduled;
    expect(after, `the second attempt came ${after} ms after the lost one`).to.be.below(30_000);
  });
});
