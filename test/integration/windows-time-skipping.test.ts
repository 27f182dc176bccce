/**
 * A simulated day of windows for several regions, through the whole lifecycle, on
 * Temporal's time-skipping test server: the coordinators receive watermarks for 24 hours
 * of event time, the windows close, finalize and expire while the server skips the clock.
 * Activities are sinon stubs here (this tests the workflows alone).
 */
import { expect } from 'chai';
import * as sinon from 'sinon';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { loadConfig } from '../../src/config';
import { testServerWrapper } from '../../scripts/stack/services';
import { WORKFLOWS_PATH } from '../../src/worker';
import { regionCoordinatorWorkflow } from '../../src/workflows/coordinator';
import { coordinatorWorkflowId, progressSignal, windowWorkflowId } from '../../src/workflows/definitions';
import { unique } from '../helpers';
import { SEARCH_ATTRIBUTES } from '../../src/bootstrap/temporal';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe('window lifecycle under time skipping (a simulated day, 3 regions)', function () {
  this.timeout(300_000);
  let env: TestWorkflowEnvironment;

  before(async () => {
    env = await TestWorkflowEnvironment.createTimeSkipping({
      server: { executable: { type: 'existing-path', path: testServerWrapper(loadConfig()) } },
    });
    await env.connection.operatorService.addSearchAttributes({ namespace: env.namespace ?? 'default', searchAttributes: SEARCH_ATTRIBUTES });
  });
  after(async () => {
    await env?.teardown();
  });

  it('takes every 1h and 24h window of a day OPEN → CLOSED → FINAL → EXPIRED, in seconds', async () => {
    const t0 = Date.now();
    const specs = loadConfig({ HH_WINDOWS: '1h/5m/2h,24h/30m/1d' }).ingest.windows.map(({ name, sizeMs, latenessMs, ttlMs }) => ({
      name,
      sizeMs,
      latenessMs,
      ttlMs,
    }));
    const regions = ['NA', 'EU', 'APAC'].map((r) => unique(r));
    const calls: string[] = [];
    const activities = {
      persistWindow: sinon.stub().callsFake(async ({ region, spec, start }: { region: string; spec: string; start: number }) => {
        calls.push(`persist ${region} ${spec} ${start}`);
        return { posts: 1, events: 3, top: [{ post_id: 'p', view_count: 3 }] };
      }),
      expireWindow: sinon.stub().callsFake(async ({ region, id }: { region: string; id: string }) => {
        calls.push(`expire ${region} ${id}`);
      }),
      restoreWindow: sinon.stub().resolves({ posts: 0, events: 0, top: [] }),
      runningWindows: sinon.stub().resolves([]), // fresh coordinators: no windows of an earlier one
    };
    const taskQueue = unique('ts');
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowsPath: WORKFLOWS_PATH, activities });

    // The coordinator ignores a watermark more than a day ahead of its clock, and the walk
    // below reaches an hour past the day: so the clock is first skipped to 2 h into the day
    // (the server starts at the real time, and at 00:03 UTC the last watermarks were ignored).
    const start = Math.ceil((await env.currentTimeMs()) / DAY) * DAY;
    await env.sleep(start + 2 * HOUR - (await env.currentTimeMs()));
    await worker.runUntil(async () => {
      // Event time walks through the day in half-hour steps, then one hour past it (to finalize the last windows).
      for (let wm = start; wm <= start + DAY + HOUR; wm += HOUR / 2) {
        for (const region of regions) {
          await env.client.workflow.signalWithStart(regionCoordinatorWorkflow, {
            workflowId: coordinatorWorkflowId(region),
            taskQueue,
            args: [{ region, specs }],
            signal: progressSignal,
            signalArgs: [{ watermark: wm, earliest: start }],
          });
        }
      }
      // Let the windows run out their TTLs: the server skips the clock ahead.
      for (const region of regions) {
        const last = env.client.workflow.getHandle(windowWorkflowId(region, '24h', start));
        // The coordinator starts it once it has taken the signals in (it first asks which windows run).
        for (let i = 0; ; i++) {
          try {
            await last.describe();
            break;
          } catch (e) {
            if (i > 300) throw e;
            await new Promise((r) => setTimeout(r, 100));
          }
        }
        await last.result();
      }
      for (const region of regions) {
        for (let h = 0; h < 24; h++) {
          const res = (await env.client.workflow.getHandle(windowWorkflowId(region, '1h', start + h * HOUR)).result()) as { state: string; persists: number };
          expect(res.state, `${region} hour ${h}`).to.equal('EXPIRED');
          // Persisted at CLOSED and at FINAL, or once when the step that closed it also finalized it.
          expect(res.persists, `${region} hour ${h}`).to.be.oneOf([1, 2]);
        }
      }
    });

    for (const region of regions) {
      const persists = calls.filter((c) => c.startsWith(`persist ${region} 1h `)).length;
      const expires = calls.filter((c) => c.startsWith(`expire ${region} 1h:`)).length;
      // 24 hours of the day (+ the hour after it, which closed too): each persisted at least once.
      expect(persists, region).to.be.at.least(24);
      expect(expires, region).to.be.at.least(24);
      expect(calls.filter((c) => c === `expire ${region} 24h:${start}`)).to.have.length(1);
    }
    const realMs = Date.now() - t0;
    process.stdout.write(`      simulated >2 days of workflow time (${regions.length} regions, ${calls.length} activity calls) in ${realMs} ms of real time\n`);
  });
});
