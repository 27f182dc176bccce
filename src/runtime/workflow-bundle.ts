/**
 * The product's workflow code, bundled once per primary instead of once per process.
 *
 * A Temporal Worker given `workflowsPath` bundles the workflows itself (webpack and swc, in
 * its own process) as it starts, and keeps what the build loaded and grew: swc's native
 * compiler and a heap sized for the build. On this machine that was about 80 MiB of RSS per
 * process (a scratch run, 200,000 events: 388–400 MiB per worker, 302–325 with the bundle).
 * So the primary bundles once, in a child process that exits when done (its memory goes
 * with it), and every member it forks that runs the workflows, restarts included, loads
 * that one file (`workflowBundle`). All of them run the same code, the code the primary
 * started with.
 *
 * The child is workflow-bundle-child.ts.
 */
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { processAlive } from './scrape-targets';

/** The environment variable naming the bundle a forked member's Worker loads. */
export const WORKFLOW_BUNDLE_ENV = 'HH_WORKFLOW_BUNDLE';

/** Where a primary's bundle goes: a file of its own, removed when it stops. */
export const bundlePathFor = (pid: number, dir = os.tmpdir()): string => path.join(dir, `heavy-hitters-workflows-${pid}.js`);

/** Removes the bundles of primaries no longer running (one killed with -9 leaves its file). */
export function removeStaleBundles(dir = os.tmpdir()): string[] {
  const removed: string[] = [];
  for (const name of fs.readdirSync(dir)) {
    const m = /^heavy-hitters-workflows-(\d+)\.js$/.exec(name);
    if (!m || processAlive(Number(m[1]))) continue;
    fs.rmSync(path.join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}

/**
 * Bundles the workflows in a child process (with the same Node flags as this one, so the
 * TypeScript loader too) into `out`; rejects with the child's error output if it fails.
 */
export function bundleInChild(out: string): Promise<{ bytes: number; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    // Run from TypeScript without tsx's flags (mocha loads it in-process): the child needs them.
    const ts = path.extname(__filename) === '.ts' && !process.execArgv.some((a) => a.includes('tsx'));
    const execArgv = [...process.execArgv, ...(ts ? ['--require', 'tsx/cjs'] : [])];
    const child = fork(path.join(__dirname, 'workflow-bundle-child') + path.extname(__filename), [out], {
      execArgv,
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0 && fs.existsSync(out)) resolve({ bytes: fs.statSync(out).size, ms: Date.now() - t0 });
      else reject(new Error(`bundling the workflow code failed (${signal ?? `exit code ${code}`}): ${stderr.trim() || 'no output'}`));
    });
  });
}
