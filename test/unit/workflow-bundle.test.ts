import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { expect } from 'chai';
import { bundleInChild, bundlePathFor, removeStaleBundles } from '../../src/runtime/workflow-bundle';

describe('the workflow bundle (built once by the primary for every worker)', function () {
  this.timeout(120_000);
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hh-bundle-test-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is written by a child process, whole, with every workflow the runtime registers', async () => {
    const out = bundlePathFor(process.pid, dir);
    const { bytes } = await bundleInChild(out);
    const code = fs.readFileSync(out, 'utf8');
    expect(bytes).to.equal(fs.statSync(out).size).and.be.greaterThan(100_000);
    for (const name of ['regionCoordinatorWorkflow', 'windowWorkflow', 'globalMergeWorkflow', 'ingestSupervisorWorkflow']) expect(code).to.include(name);
    // Nothing half-written is left beside it.
    expect(fs.readdirSync(dir)).to.deep.equal([path.basename(out)]);
  });

  it('a failed bundling rejects with what the child said', async () => {
    const out = path.join(dir, 'missing-dir', 'bundle.js');
    let err: Error | undefined;
    await bundleInChild(out).catch((e: Error) => (err = e));
    expect(err?.message).to.match(/bundling the workflow code failed \(exit code 1\): .*ENOENT/s);
  });

  it('removes the bundles of primaries no longer running, and only those', async () => {
    const dead = spawn(process.execPath, ['-e', '']);
    const deadPid = dead.pid!;
    await new Promise((r) => dead.once('exit', r));
    fs.writeFileSync(bundlePathFor(deadPid, dir), 'x');
    fs.writeFileSync(bundlePathFor(process.pid, dir), 'x');
    fs.writeFileSync(path.join(dir, 'heavy-hitters-other.js'), 'x');
    expect(removeStaleBundles(dir)).to.deep.equal([path.basename(bundlePathFor(deadPid, dir))]);
    expect(fs.readdirSync(dir).sort()).to.deep.equal([path.basename(bundlePathFor(process.pid, dir)), 'heavy-hitters-other.js'].sort());
  });
});
