/**
 * `npm start` (after the stack is up): the cluster runtime (N worker processes: actors and
 * the ingest activity; API processes on one port; a lifecycle process: the workflows) fed by a steady demo
 * stream from the load generator. `--no-demo` runs the runtime alone (tests, production).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { config } from './config';
import { runPrimary } from './runtime/cluster';
import { lineLogger, logger } from './log';
import { registerScrapeTarget } from './runtime/scrape-targets';
import { temporalUiWorkflows } from './api/window-list';

const log = lineLogger('main');

async function waitForApi(url: string, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`the API did not answer ${url} within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function main(): Promise<void> {
  const cfg = config();
  const demo = !process.argv.includes('--no-demo');
  const primary = await runPrimary({
    workers: cfg.runtime.workers,
    apiProcesses: cfg.runtime.apiProcesses,
    apiNice: cfg.runtime.apiNice,
    lifecycleProcesses: cfg.runtime.lifecycleProcesses,
    profileDir: cfg.runtime.profileDir,
    heapMb: cfg.runtime.workerHeapMb,
    semiSpaceMb: cfg.runtime.workerSemiSpaceMb,
    lifecycleSemiSpaceMb: cfg.runtime.lifecycleSemiSpaceMb,
    joinWaitMs: cfg.runtime.joinWaitMs,
  });
  const api = `http://${cfg.host}:${cfg.api.port}`;
  await waitForApi(`${api}/healthz`, 120_000);
  // The stack's Prometheus scrapes this runtime from now on (file_sd), until it stops.
  const unregister = registerScrapeTarget(cfg);

  let load: ChildProcess | undefined;
  if (demo) {
    const rate = String(cfg.runtime.demoRate);
    load = spawn(
      process.execPath,
      [
        ...process.execArgv,
        path.join(__dirname, '..', 'scripts', 'load.ts'),
        '--events',
        '1000000000',
        '--rate',
        rate,
        '--regions',
        '8',
        '--posts',
        '10000',
        '--zipf',
        '1.1',
        '--seed',
        String(Date.now() % 1e9),
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    log(`demo load: ${rate} events/s over 8 regions and 10,000 posts (HH_DEMO_RATE to change)`);
  }
  log(`API:         ${api}/top-posts?region=NA&timeframe=all&k=10`);
  log(`             ${api}/posts/post-0/rank?region=NA   ${api}/healthz   ${api}/metrics`);
  log(`Prometheus:  http://${cfg.host}:${cfg.prometheus.port}/alerts (scrapes ${api}/metrics every 5 s)`);
  log(`Temporal UI: ${temporalUiWorkflows(cfg)}`);
  log(
    `processes:   ${cfg.runtime.workers} ingest workers, ${cfg.runtime.apiProcesses || 'no'} API-only (HH_API_PROCESSES), ${cfg.runtime.lifecycleProcesses || 'no'} lifecycle (HH_LIFECYCLE_PROCESSES); Ctrl-C stops (drains actors, commits offsets)`,
  );

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    load?.kill('SIGTERM');
    unregister();
    await primary.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

main().catch((e: Error) => {
  logger.fatal({ err: e }, 'start failed');
  process.stderr.write(`start failed: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
