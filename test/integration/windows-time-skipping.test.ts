/**
 * A simulated day of windows for several regions, through the whole lifecycle, on
 * Temporal's time-skipping test server: the coordinators receive watermarks for 24 hours
 * of event time, the windows close, finalize and expire while the server skips the clock.
 * Activities are sinon stubs here (this tests the workflows alone).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { temporal } from '@temporalio/proto';
import * as sinon from 'sinon';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { timeSkippingEnv } from '../support/time-skipping';
import type { WorkflowHandle } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { loadConfig } from '../../src/config';
import { WORKFLOWS_PATH } from '../../src/worker';
import { regionCoordinatorWorkflow } from '../../src/workflows/coordinator';
import { coordinatorStatusQuery, coordinatorWorkflowId, progressSignal, windowWorkflowId } from '../../src/workflows/definitions';
import { unique } from '../helpers';
import type { RunningWindow } from '../../src/activities';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe('window lifecycle under time skipping (a simulated day, 3 regions)', function () {
  this.timeout(300_000);
  let env: TestWorkflowEnvironment;

  before(async () => {
    env = await timeSkippingEnv();
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
      persistWindow: sinon.stub().callsFake(async ({ region, spec, start, final }: { region: string; spec: string; start: number; final?: boolean }) => {
        calls.push(`persist ${region} ${spec} ${start}${final ? ' final' : ''}`);
        return { posts: 1, events: 3, top: [{ post_id: 'p', view_count: 3 }] };
      }),
      expireWindow: sinon.stub().callsFake(async ({ region, id }: { region: string; id: string }) => {
        calls.push(`expire ${region} ${id}`);
      }),
      restoreWindow: sinon.stub().resolves({ posts: 0, events: 0, top: [] }),
      runningWindows: sinon.stub().resolves([]), // fresh coordinators: no windows of an earlier one
      countedWindows: sinon.stub().resolves([]), // and no counts that no report named
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
      // Each window's last persist is its FINAL one, the only one that stops the flushes writing to it.
      for (let h = 0; h < 24; h++) {
        const mine = calls.filter((c) => c.startsWith(`persist ${region} 1h ${start + h * HOUR}`));
        expect(
          mine.filter((c) => c.endsWith(' final')),
          `${region} hour ${h}`,
        ).to.have.length(1);
        expect(mine[mine.length - 1], `${region} hour ${h}`).to.match(/ final$/);
      }
    }
    const realMs = Date.now() - t0;
    process.stdout.write(`      simulated >2 days of workflow time (${regions.length} regions, ${calls.length} activity calls) in ${realMs} ms of real time\n`);
  });

  /**
   * The coordinator's history replays deterministically; HH_SAVE_HISTORY=1 keeps it for the
   * replay suite (test/histories/<file>).
   */
  async function replayAndKeep(handle: WorkflowHandle, file: string): Promise<void> {
    const history = await handle.fetchHistory();
    await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, history);
    if (process.env.HH_SAVE_HISTORY === '1') fs.writeFileSync(path.join(__dirname, '..', 'histories', file), historyToJSON(history));
  }

  /**
   * One region's coordinator on a worker whose Redis (countedWindows) holds the 1h window keys
   * `counted()` names; `exists` looks for a window workflow for a few seconds of real time (a
   * step takes its watermark in before it starts windows).
   */
  async function coordinatorOf(
    counted: () => number[],
    running: (base: number, region: string) => RunningWindow[] = () => [],
    /** Runs inside countedWindows after it read Redis (`counted()`), before it answers. */
    answering: () => Promise<void> = async () => undefined,
  ) {
    const specs = loadConfig({ HH_WINDOWS: '1h/5m/2h' }).ingest.windows.map(({ name, sizeMs, latenessMs, ttlMs }) => ({ name, sizeMs, latenessMs, ttlMs }));
    const region = unique('LATAM');
    const base = Math.floor((await env.currentTimeMs()) / HOUR) * HOUR - 6 * HOUR;
    const activities = {
      persistWindow: sinon.stub().resolves({ posts: 1, events: 1, top: [{ post_id: 'p', view_count: 1 }] }),
      expireWindow: sinon.stub().resolves(),
      restoreWindow: sinon.stub().resolves({ posts: 0, events: 0, top: [] }),
      runningWindows: sinon.stub().resolves(running(base, region)),
      countedWindows: sinon.stub().callsFake(async ({ ids }: { ids: string[] }) => {
        const found = ids.filter((id) => counted().some((h) => id === `1h:${base + h * HOUR}`));
        await answering();
        return found;
      }),
    };
    const taskQueue = unique('ts');
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowsPath: WORKFLOWS_PATH, activities });
    const status = env.client.workflow.getHandle(coordinatorWorkflowId(region));
    return {
      base,
      specs,
      worker,
      status,
      exists: async (hour: number): Promise<boolean> => {
        for (let i = 0; i < 50; i++) {
          try {
            await env.client.workflow.getHandle(windowWorkflowId(region, '1h', base + hour * HOUR)).describe();
            return true;
          } catch {
            await new Promise((r) => setTimeout(r, 100));
          }
        }
        return false;
      },
      region,
      taskQueue,
      /** Signals the coordinator, and waits until it took the watermark in. */
      step: async (watermark: number, earliest: number) => {
        await env.client.workflow.signalWithStart(regionCoordinatorWorkflow, {
          workflowId: coordinatorWorkflowId(region),
          taskQueue,
          args: [{ region, specs }],
          signal: progressSignal,
          signalArgs: [{ watermark, earliest }],
        });
        for (let i = 0; (await status.query(coordinatorStatusQuery)).watermark !== watermark; i++) {
          if (i > 300) throw new Error(`the coordinator did not take watermark ${watermark} in`);
          await new Promise((r) => setTimeout(r, 100));
        }
      },
    };
  }

  it('starts the windows of events a member reports only after the first step (a partition taken over before its backlog was read)', async () => {
    // A member that took a partition over from a snapshot reports the region's watermark
    // before it has read the partition's backlog: its first signal names no earlier event.
    // When it reads the backlog, the earlier events' windows must still get their workflows
    // (their keys hold counts that only a window workflow persists and expires).
    let counted: number[] = [];
    const c = await coordinatorOf(() => counted);
    await c.worker.runUntil(async () => {
      await c.step(c.base + 3 * HOUR, c.base + 3 * HOUR);
      expect(await c.exists(3), "the first step starts the watermark's window").to.equal(true);
      expect(await c.exists(1), 'no event of an earlier window counted yet').to.equal(false);
      // The backlog read: events of hours 0 (late for its window: no key), 1 and 2, reported with the next watermark.
      counted = [1, 2];
      await c.step(c.base + 3 * HOUR + HOUR / 2, c.base + 60_000);
      for (const h of [1, 2]) expect(await c.exists(h), `the window of hour ${h}, whose events came after the first step`).to.equal(true);
      expect(await c.exists(0), 'a window whose key holds no counts').to.equal(false);
      await replayAndKeep(c.status, 'coordinator-earlier-windows.json');
    });
  });

  it('checks again a window an earlier report found without counts, when its events are reported later (a member whose watermark lags)', async () => {
    let counted: number[] = [];
    const c = await coordinatorOf(() => counted);
    await c.worker.runUntil(async () => {
      await c.step(c.base + 5 * HOUR, c.base + 5 * HOUR);
      // One member reports events of hour 2; hour 3's events are still in another's backlog.
      counted = [2];
      await c.step(c.base + 5 * HOUR + HOUR / 4, c.base + 2 * HOUR + 60_000);
      expect(await c.exists(2), 'hour 2').to.equal(true);
      expect(await c.exists(3), 'hour 3: no counts yet').to.equal(false);
      // The lagging member reads them: hour 3 now holds counts.
      counted = [2, 3];
      await c.step(c.base + 5 * HOUR + HOUR / 2, c.base + 3 * HOUR + 60_000);
      expect(await c.exists(3), 'hour 3, checked again').to.equal(true);
      expect(await c.exists(4), 'hour 4: never counted').to.equal(false);
      await replayAndKeep(c.status, 'coordinator-lagging-member.json');
    });
  });

  it('a coordinator that adopted running windows starts the windows of earlier events reported after its first step', async () => {
    let counted: number[] = [];
    // The terminated coordinator's window of hour 4 is still running (found through visibility).
    const c = await coordinatorOf(
      () => counted,
      (base, region) => [{ id: windowWorkflowId(region, '1h', base + 4 * HOUR), spec: '1h', start: base + 4 * HOUR, state: 'OPEN' }],
    );
    await c.worker.runUntil(async () => {
      await c.step(c.base + 5 * HOUR, c.base + 5 * HOUR);
      expect(await c.exists(5)).to.equal(true);
      counted = [2];
      await c.step(c.base + 5 * HOUR + HOUR / 2, c.base + 2 * HOUR + 60_000);
      expect(await c.exists(2), 'hour 2, reported after the first step').to.equal(true);
      await replayAndKeep(c.status, 'coordinator-adopted-earlier.json');
    });
  });

  it('keeps the earliest event a report names while a step is still running (Redis rebuilt during the first step)', async () => {
    // Seen in a chaos round that killed Redis: the first step asked Redis which earlier
    // windows hold counts while Redis was empty (lost, rebuilt, not yet replayed). The replay's
    // report, naming the events of an earlier window, arrived during that step; the step's end
    // discarded its earliest event time, and the reporter had already let it go (its signal
    // was delivered), so that window never got its workflow.
    let counted: number[] = [];
    let asked!: () => void;
    const askedOnce = new Promise<void>((r) => (asked = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const c = await coordinatorOf(
      () => counted,
      undefined,
      async () => {
        asked();
        await released;
      },
    );
    await c.worker.runUntil(async () => {
      await env.client.workflow.signalWithStart(regionCoordinatorWorkflow, {
        workflowId: coordinatorWorkflowId(c.region),
        taskQueue: c.taskQueue,
        args: [{ region: c.region, specs: c.specs }],
        signal: progressSignal,
        signalArgs: [{ watermark: c.base + 3 * HOUR, earliest: c.base + 3 * HOUR }],
      });
      await askedOnce; // the first step is in Redis (empty: no window holds counts)
      await c.status.signal(progressSignal, { watermark: c.base + 3 * HOUR + HOUR / 2, earliest: c.base + HOUR + 60_000 });
      // Accepted: the signal is in the history, before the step goes on.
      counted = [1]; // the replay applied hour 1's events before its report
      release();
      expect(await c.exists(1), 'the window of hour 1, named by a report during the first step').to.equal(true);
      expect(await c.exists(3)).to.equal(true);
      expect(await c.exists(2), 'hour 2: no counts').to.equal(false);
      await replayAndKeep(c.status, 'coordinator-mid-step-report.json');
    });
  });

  it("issues a step's window starts together, and its signals to windows together (one workflow task each, not one per window)", async () => {
    // Each awaited start or signal took a workflow task of its own: a round trip through the
    // server. A fresh region's first step (a dozen windows with the default specs, more with
    // counted earlier ones) cost a dozen tasks; the steps of every region at once are what a
    // runtime's start, or a watermark crossing many boundaries, puts on Temporal.
    const c = await coordinatorOf(() => [1, 2, 3]);
    await c.worker.runUntil(async () => {
      await c.step(c.base + 5 * HOUR, c.base + 5 * HOUR);
      for (const h of [1, 2, 3, 5]) expect(await c.exists(h), `hour ${h}`).to.equal(true);
      await c.step(c.base + 7 * HOUR + HOUR / 4, c.base + 7 * HOUR);
      for (const h of [6, 7]) expect(await c.exists(h), `hour ${h}`).to.equal(true);
      const { EventType } = temporal.api.enums.v1;
      const perTask = (events: temporal.api.history.v1.IHistoryEvent[], type: number): number[] => {
        const counts: number[] = [];
        for (const e of events) {
          if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) counts.push(0);
          else if (e.eventType === type) counts[counts.length - 1]++;
        }
        return counts.filter((n) => n > 0);
      };
      const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
      let starts: number[] = [];
      let signals: number[] = [];
      // The second step's signals follow its starts (a task later): wait for all of them.
      for (let i = 0; i < 100 && sum(signals) < 5; i++) {
        const events = (await c.status.fetchHistory()).events ?? [];
        starts = perTask(events, EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED);
        signals = perTask(events, EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED);
        if (sum(signals) < 5) await new Promise((r) => setTimeout(r, 100));
      }
      // Step 1: the counted hours 1-3 (one task), then hour 5; step 2: hours 6 and 7.
      expect(starts, 'window starts per workflow task').to.deep.equal([3, 1, 2]);
      // Step 1 closed (and finalized: lateness 5 min) hours 1-3; step 2 hours 5 and 6.
      expect(signals, 'signals to windows per workflow task').to.deep.equal([3, 2]);
      await replayAndKeep(c.status, 'coordinator-together.json');
    });
  });

  it('a run continued as new steps on the report its predecessor took in during its last step', async () => {
    const c = await coordinatorOf(() => [1]);
    await c.worker.runUntil(async () => {
      await env.client.workflow.start(regionCoordinatorWorkflow, {
        workflowId: coordinatorWorkflowId(c.region),
        taskQueue: c.taskQueue,
        args: [
          {
            region: c.region,
            specs: c.specs,
            state: {
              watermark: c.base + 3 * HOUR,
              next: { '1h': c.base + 4 * HOUR },
              first: { '1h': c.base + 3 * HOUR },
              live: [],
              unstepped: { watermark: c.base + 3 * HOUR + HOUR / 2, earliest: c.base + HOUR + 60_000 },
            },
          },
        ],
      });
      expect(await c.exists(1), 'the window of the carried earliest event').to.equal(true);
      expect((await c.status.query(coordinatorStatusQuery)).watermark).to.equal(c.base + 3 * HOUR + HOUR / 2);
    });
  });

  it('starts, when it starts, the windows whose keys hold counts no report named (a member killed after its flushes, before its first report)', async () => {
    // The member that takes the partition over resumes after those events: no report will
    // ever name them. Only Redis knows their windows hold counts.
    const c = await coordinatorOf(() => [1]);
    await c.worker.runUntil(async () => {
      await c.step(c.base + 3 * HOUR, c.base + 3 * HOUR);
      expect(await c.exists(1), 'the window whose key holds counts').to.equal(true);
      expect(await c.exists(3), "the watermark's window").to.equal(true);
      for (const h of [0, 2]) expect(await c.exists(h), `hour ${h}: no counts`).to.equal(false);
    });
  });

  it('leaves a window that already ran alone when its key still holds counts (no start, no signal to a closed workflow)', async () => {
    // E.g. a key recreated after its window expired: the window must not run again, and a
    // signal to its closed workflow would fail the coordinator's step.
    const c = await coordinatorOf(() => [1]);
    const ran = await env.client.workflow.start('windowWorkflow', {
      workflowId: windowWorkflowId(c.region, '1h', c.base + HOUR),
      taskQueue: unique('nobody'),
      args: [{ region: c.region, spec: { name: '1h', sizeMs: HOUR, latenessMs: 300_000, ttlMs: 7_200_000 }, start: c.base + HOUR }],
    });
    await ran.terminate('ran before');
    await c.worker.runUntil(async () => {
      await c.step(c.base + 3 * HOUR, c.base + 3 * HOUR);
      await c.step(c.base + 4 * HOUR, c.base + 4 * HOUR); // the coordinator goes on
      expect((await ran.describe()).status.name).to.equal('TERMINATED');
      expect(await c.exists(4)).to.equal(true);
    });
  });

  it('goes on when a window it follows was terminated by an operator (its signal fails)', async () => {
    const c = await coordinatorOf(() => []);
    await c.worker.runUntil(async () => {
      await c.step(c.base + 3 * HOUR, c.base + 3 * HOUR);
      expect(await c.exists(3)).to.equal(true);
      await env.client.workflow.getHandle(windowWorkflowId(c.region, '1h', c.base + 3 * HOUR)).terminate('operator');
      await c.step(c.base + 4 * HOUR, c.base + 4 * HOUR); // hour 3 closes: its signal fails
      await c.step(c.base + 5 * HOUR, c.base + 5 * HOUR);
      expect(await c.exists(5)).to.equal(true);
    });
  });
});
