/**
 * How the stack's Prometheus finds the runtimes to scrape: each running runtime's primary
 * writes one file_sd file `<stack dir>/prometheus/targets/<pid>.json` naming its API port
 * (whose /metrics aggregates every worker), and removes it when it stops. Files of
 * processes that are gone (a kill -9) are pruned by the next registration and by stack:up.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Config } from '../config';

export const scrapeTargetsDir = (stackDir: string): string => path.join(stackDir, 'prometheus', 'targets');

/** Whether a process runs (EPERM: it does, as another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes the target files of processes that no longer run; returns how many. */
export function pruneScrapeTargets(stackDir: string): number {
  const dir = scrapeTargetsDir(stackDir);
  let n = 0;
  for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    const pid = Number(/^(\d+)\.json$/.exec(f)?.[1]);
    if (pid && !processAlive(pid)) {
      fs.rmSync(path.join(dir, f), { force: true });
      n++;
    }
  }
  return n;
}

/** Registers this process's API as a scrape target; returns the function that unregisters it. */
export function registerScrapeTarget(cfg: Config): () => void {
  const dir = scrapeTargetsDir(cfg.stack.dir);
  fs.mkdirSync(dir, { recursive: true });
  pruneScrapeTargets(cfg.stack.dir);
  const file = path.join(dir, `${process.pid}.json`);
  const body = [{ targets: [`${cfg.host}:${cfg.api.port}`], labels: { task_queue: cfg.temporal.taskQueue } }];
  // Written whole, then renamed: Prometheus never reads half a file.
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(body) + '\n');
  fs.renameSync(`${file}.tmp`, file);
  return () => fs.rmSync(file, { force: true });
}
