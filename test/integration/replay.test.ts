import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { WORKFLOWS_PATH } from '../../src/worker';
import { SMOKE_WORKFLOWS_PATH } from '../fixtures/smoke-activities';

const DIR = path.join(__dirname, '..', 'histories');
const load = (f: string) => JSON.parse(fs.readFileSync(path.join(DIR, f), 'utf8')) as unknown;

describe('workflow replay of recorded histories (determinism guard)', function () {
  this.timeout(60_000);
  const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.json'));

  it('has recorded histories of every workflow', () => {
    expect(files).to.include.members([
      'smoke.json',
      'ingest-supervisor.json',
      'window.json',
      'coordinator.json',
      'global-merge.json',
      'window-patched.json',
      'coordinator-patched.json',
      'coordinator-earlier-windows.json',
      'coordinator-lagging-member.json',
      'coordinator-adopted-earlier.json',
      // A report during a step, before and after the patch that keeps its earliest event time.
      'coordinator-mid-step-unpatched.json',
      'coordinator-mid-step-report.json',
      // A step's window starts and its signals issued together (one workflow task each).
      'coordinator-together.json',
    ]);
  });

  for (const f of files) {
    it(`replays ${f} with the current workflow code`, async () => {
      // The smoke workflow is test-only: it lives in the fixtures' bundle.
      await Worker.runReplayHistory({ workflowsPath: f === 'smoke.json' ? SMOKE_WORKFLOWS_PATH : WORKFLOWS_PATH }, load(f));
    });
  }

  it('catches a non-deterministic change (activity moved before the timer)', async () => {
    let err: unknown;
    try {
      await Worker.runReplayHistory({ workflowsPath: require.resolve('../fixtures/smoke-nondeterministic') }, load('smoke.json'));
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(DeterminismViolationError);
  });
});
