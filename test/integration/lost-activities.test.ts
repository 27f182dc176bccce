/**
 * Activities lost with their worker, on Temporal's time-skipping test server, the activities
 * stubs (this tests the workflows alone): an attempt that never completes and never beats —
 * as when its worker was killed, or the poll's answer was lost — is tried again within the
 * heartbeat timeout, not after the 2 minutes of the start-to-close timeout. For the global
 * merge that is how long `global:top_k` stayed stale; for a window, its snapshot.
 */
import { expect } from 'chai';
import { Context } from '@temporalio/activity';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { timeSkippingEnv } from '../support/time-skipping';
import { Worker } from '@temporalio/worker';
import { WORKFLOWS_PATH } from '../../src/worker';
import { globalMergeWorkflow } from '../../src/workflows/global-merge';
import { windowWorkflow } from '../../src/workflows/window';
import { globalMergeWorkflowId, watermarkSignal, windowWorkflowId } from '../../src/workflows/definitions';
import type { GlobalMergeReport } from '../../src/store/global-merge';
import type { WindowSnapshot } from '../../src/store/window-snapshots';
import { unique } from '../helpers';

const HOUR = 3_600_000;

describe('activities lost with their worker are retried within the heartbeat timeout (time skipping)', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;

  before(async () => {
    env = await timeSkippingEnv();
  });
  after(async () => {
    await env?.teardown();
  });

  /**
   * An activity whose first attempt is lost (it waits until released: no completion, no
   * heartbeat); every attempt is recorded with when the server scheduled it.
   */
  function losingFirst<T>(result: T) {
    const attempts: { attempt: number; scheduled: number }[] = [];
    let release: () => void = () => undefined;
    const lost = new Promise<void>((resolve) => (release = resolve));
    const activity = async (): Promise<T> => {
      const info = Context.current().info;
      attempts.push({ attempt: info.attempt, scheduled: info.currentAttemptScheduledTimestampMs });
      if (attempts.length === 1) await lost;
      return result;
    };
    /**
     * Waits up to a minute of real time for a second attempt (the server does not skip its
     * clock past an activity in flight: the lost one's timeout passes in real time), then
     * says how long after the lost one it came.
     */
    const retried = async (limitMs: number) => {
      const deadline = Date.now() + 60_000;
      while (attempts.length < 2 && Date.now() < deadline) await env.sleep(1000);
      release();
      expect(attempts.length, 'the lost attempt was tried again').to.be.at.least(2);
      expect(attempts[1].attempt).to.equal(2);
      const after = attempts[1].scheduled - attempts[0].scheduled;
      expect(after, `the second attempt came ${after} ms after the lost one`).to.be.below(limitMs);
    };
    return { activity, attempts, retried };
  }

  it('the global merge: a merge lost with its worker (heartbeat timeout 10 s)', async () => {
    const merge = losingFirst<GlobalMergeReport>({ families: 1, moved: 1, naive: 2, merged: {} });
    const taskQueue = unique('gm');
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowsPath: WORKFLOWS_PATH,
      activities: { mergeGlobal: merge.activity },
    });
    await worker.runUntil(async () => {
      const handle = await env.client.workflow.start(globalMergeWorkflow, {
        workflowId: globalMergeWorkflowId(taskQueue),
        taskQueue,
        args: [{ k: 10, intervalMs: 1000 }],
      });
      try {
        await merge.retried(30_000);
      } finally {
        await handle.terminate('test over');
      }
    });
  });

  it("a window: its closing snapshot's persist lost with its worker (heartbeat timeout 30 s)", async () => {
    const persist = losingFirst<WindowSnapshot>({ posts: 1, events: 1, top: [{ post_id: 'p', view_count: 1 }] });
    const taskQueue = unique('win');
    const region = unique('EU');
    const start = Math.floor((await env.currentTimeMs()) / HOUR) * HOUR - 3 * HOUR;
    const activities = { persistWindow: persist.activity, expireWindow: async () => undefined, restoreWindow: async () => ({ posts: 0, events: 0, top: [] }) };
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowsPath: WORKFLOWS_PATH, activities });
    await worker.runUntil(async () => {
      const handle = await env.client.workflow.start(windowWorkflow, {
        workflowId: windowWorkflowId(region, '1h', start),
        taskQueue,
        args: [{ region, spec: { name: '1h', sizeMs: HOUR, latenessMs: 5 * 60_000, ttlMs: 2 * HOUR }, start }],
      });
      try {
        await handle.signal(watermarkSignal, start + HOUR); // closes it: its snapshot is persisted
        await persist.retried(45_000);
      } finally {
        await handle.terminate('test over');
      }
    });
  });
});
