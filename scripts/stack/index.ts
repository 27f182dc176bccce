/**
 * npm run stack:up [--test-tools] | stack:down [service] | stack:status | stack:logs [service] [lines]
 *
 * up: installs what is missing (cached), starts each stopped server on 127.0.0.1, waits
 * for its health check (with a timeout naming the service and its log), then bootstraps
 * topics, keyspace migrations and the Temporal namespace. Idempotent: with everything
 * running it only checks and returns.
 */
import * as path from 'node:path';
import { loadConfig, type Config } from '../../src/config';
import { isAuthFailure, type Probe } from '../../src/health';
import { pruneScrapeTargets } from '../../src/runtime/scrape-targets';
import { bootstrap } from '../../src/bootstrap';
import { ensureSecrets, secretsPath } from '../../src/secrets';
import { logFile, runningPid, setGroupNice, sleep, stackPaths, stopRecorded, tailFile, type Paths } from './procs';
import {
  installTestServer,
  installTools,
  SERVICE_DEFS,
  STACK_PROBES as PROBES,
  STACK_SERVICES as SERVICES,
  VERSIONS,
  type StackService as ServiceName,
} from './services';

const say = (s: string) => process.stdout.write(`${s}\n`);

async function waitHealthy(cfg: Config, p: Paths, name: ServiceName, startedPid: number | undefined): Promise<Probe> {
  const def = SERVICE_DEFS[name];
  const t0 = Date.now();
  let lastNote = t0;
  for (;;) {
    const probe = await PROBES[name](cfg);
    if (probe.up) return probe;
    const elapsed = (Date.now() - t0) / 1000;
    if (startedPid !== undefined && runningPid(p, name) === undefined) {
      throw new Error(`${name} exited during start-up (after ${elapsed.toFixed(0)} s); log: ${logFile(p, name)}\n${tailFile(logFile(p, name), 25)}`);
    }
    if (elapsed > def.startTimeoutS) {
      throw new Error(
        `${name} not healthy after ${def.startTimeoutS} s (last check: ${probe.error}); log: ${logFile(p, name)}\n${tailFile(logFile(p, name), 25)}`,
      );
    }
    if (Date.now() - lastNote >= 10_000) {
      say(`[${name}] starting… ${elapsed.toFixed(0)} s (log: ${logFile(p, name)})`);
      lastNote = Date.now();
    }
    await sleep(name === 'cassandra' ? 1500 : 500);
  }
}

async function upOne(cfg: Config, p: Paths, name: ServiceName): Promise<Probe> {
  const def = SERVICE_DEFS[name];
  const ours = runningPid(p, name);
  if (ours === undefined) {
    // Something else may already serve this port (another checkout's stack): use it, never touch it.
    const existing = await PROBES[name](cfg, 1500);
    if (existing.up) {
      say(`[${name}] already answering on its port (not started by this checkout); using it`);
      return existing;
    }
    if (isAuthFailure(existing.error)) {
      throw new Error(
        `${name}: a server already answers on its port but refuses this checkout's credentials (${existing.error}): ` +
          `another checkout's stack runs there; stop it with its own npm run stack:down, or give this one other ports (HH_*_PORT)`,
      );
    }
    const pid = await def.start(cfg, p);
    say(`[${name}] started, pid ${pid}; ${setGroupNice(pid, def.groupNice)}`);
    return waitHealthy(cfg, p, name, pid);
  }
  return waitHealthy(cfg, p, name, undefined);
}

async function up(cfg: Config, testTools: boolean): Promise<void> {
  const t0 = Date.now();
  const p = stackPaths(cfg.stack.dir);
  pruneScrapeTargets(cfg.stack.dir);
  // Installs first, in parallel (apt, two Maven resolutions, one Go build), then starts.
  await Promise.all([...SERVICES.map((s) => SERVICE_DEFS[s].install(cfg)), installTestServer(cfg), installTools(testTools)]);
  const results = await Promise.allSettled(SERVICES.map((s) => upOne(cfg, p, s)));
  const failed = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
  if (failed.length) {
    for (const f of failed) process.stderr.write(`stack:up FAILED: ${f}\n`);
    process.exitCode = 1;
    return;
  }
  for (const note of await bootstrap(cfg)) say(`[bootstrap] ${note}`);
  say(
    `credentials: ${path.relative(process.cwd(), secretsPath(cfg.stack.dir)) || secretsPath(cfg.stack.dir)} (mode 0600; producer_key for POST /events, admin_token for /admin)`,
  );
  await status(cfg);
  say(`stack up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

async function status(cfg: Config): Promise<boolean> {
  const p = stackPaths(cfg.stack.dir);
  const ports: Record<ServiceName, string> = {
    redis: String(cfg.redis.port),
    kafka: `${cfg.kafka.port}`,
    cassandra: `${cfg.cassandra.port}`,
    temporal: `${cfg.temporal.port} (UI ${cfg.temporal.uiPort})`,
    prometheus: String(cfg.prometheus.port),
  };
  const probes = await Promise.all(SERVICES.map((s) => PROBES[s](cfg)));
  const rows = probes.map((pr) => {
    const pid = runningPid(p, pr.service);
    return [
      pr.service,
      pr.up ? 'up' : 'DOWN',
      pid !== undefined ? String(pid) : pr.up ? 'external' : '-',
      ports[pr.service as ServiceName],
      pr.up ? (pr.version ?? '') : '',
      pr.up ? (pr.detail ?? '') : (pr.error ?? ''),
    ];
  });
  const head = ['service', 'state', 'pid', 'port', 'version', 'detail'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  for (const r of [head, ...rows])
    say(
      r
        .map((c, i) => c.padEnd(widths[i]))
        .join('  ')
        .trimEnd(),
    );
  say(`logs: ${p.logs}   pinned: kafka ${VERSIONS.kafka}, cassandra ${VERSIONS.cassandra}, temporal CLI ${VERSIONS.temporalCli}`);
  return probes.every((pr) => pr.up);
}

async function down(cfg: Config, only?: string): Promise<void> {
  const p = stackPaths(cfg.stack.dir);
  if (only !== undefined && !SERVICES.includes(only as ServiceName)) throw new Error(`unknown service "${only}"; one of ${SERVICES.join(', ')}`);
  const which = only ? [only as ServiceName] : SERVICES;
  // Kafka and Cassandra flush on SIGTERM; give them time before SIGKILL.
  const res = await Promise.all(which.map(async (s) => [s, await stopRecorded(p, s, s === 'redis' ? 5000 : 30000)] as const));
  for (const [s, r] of res) say(`[${s}] ${r}`);
}

function logs(cfg: Config, which?: string, lines = 40): void {
  const p = stackPaths(cfg.stack.dir);
  const names = which ? [which] : SERVICES;
  for (const n of names) {
    if (!SERVICES.includes(n as ServiceName)) throw new Error(`unknown service "${n}"; one of ${SERVICES.join(', ')}`);
    say(`==> ${logFile(p, n)} <==`);
    say(tailFile(logFile(p, n), lines));
  }
}

async function main(): Promise<void> {
  const [cmd, a, b] = process.argv.slice(2);
  let cfg = loadConfig();
  if (cmd === 'up') {
    // Per-checkout credentials (API keys, every server user's password), created once, mode 0600,
    // before anything starts: the servers are configured with them.
    ensureSecrets(cfg.stack.dir);
    cfg = loadConfig();
  }
  switch (cmd) {
    case 'up':
      return up(cfg, a === '--test-tools');
    case 'down':
      return down(cfg, a);
    case 'status':
      if (!(await status(cfg))) process.exitCode = 1;
      return;
    case 'logs':
      return logs(cfg, a, b ? Number(b) : undefined);
    default:
      throw new Error('usage: stack (up|down [service]|status|logs [service] [lines])');
  }
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (e: Error) => {
    process.stderr.write(`stack: ${e.message}\n`);
    process.exit(1);
  },
);
