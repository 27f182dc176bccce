/**
 * Runs a test's child script (test/support/*-child.ts) in a process of its own and kills it
 * with SIGKILL `delayMs` after it printed "started"; resolves with everything it printed.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../../src/config';

export async function killAfterStarted(script: string, args: string[], delayMs: number): Promise<string> {
  const child = spawn(process.execPath, ['--require', 'tsx/cjs', path.join(__dirname, script), ...args], {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  while (!out.includes('started')) {
    if (child.exitCode !== null) throw new Error(`${script} exited early: ${out}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  await new Promise((r) => setTimeout(r, delayMs));
  child.kill('SIGKILL');
  await exited;
  return out;
}
