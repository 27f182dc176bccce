/**
 * Fault injection on this checkout's own stack, for the fault tests and `npm run chaos`:
 * `kill -9` of a server by the PID the stack recorded (never by name), and the restart an
 * operator would do (`npm run stack:up`, which starts whatever is stopped).
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import type { Config } from '../../src/config';
import type { ServiceName } from '../../src/health';
import { runningPid, sleep, stackPaths } from './procs';

const ROOT = path.join(__dirname, '..', '..');
const TSX = path.join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs');

/** The PID this checkout's stack recorded for a running server, or undefined (not ours, or down). */
export function servicePid(cfg: Config, name: ServiceName): number | undefined {
  return runningPid(stackPaths(cfg.stack.dir), name);
}

/** SIGKILL of the server's recorded process; resolves once it is gone. Throws if it is not ours. */
export async function killService(cfg: Config, name: ServiceName): Promise<number> {
  const pid = servicePid(cfg, name);
  if (pid === undefined) throw new Error(`${name} is not running under this checkout's stack (nothing recorded to kill)`);
  process.kill(pid, 'SIGKILL');
  while (servicePid(cfg, name) === pid) await sleep(50);
  return pid;
}

/** `npm run stack:up` as an operator runs it: starts what is stopped, waits for health, bootstraps. */
export function stackUp(env: NodeJS.ProcessEnv = process.env, timeoutMs = 300_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [TSX, path.join(ROOT, 'scripts', 'stack', 'index.ts'), 'up'],
      { env, timeout: timeoutMs, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`stack:up failed: ${err.message}\n${stdout}\n${stderr}`));
        else resolve(stdout);
      },
    );
  });
}
