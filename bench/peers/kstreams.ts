/**
 * The Kafka Streams peer (bench/peers/kstreams/): built once from Maven Central (cached by
 * the hash of its sources), then run on the same pre-loaded topic as ours, timed the same
 * way: from its first committed input offset to its last.
 */
import { createHash } from 'node:crypto';
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Admin } from 'kafkajs';
import type { Config, WindowSpec } from '../../src/config';
import { java17 } from '../../scripts/stack/services';
import { committedRecords } from '../../scripts/harness/runtime';

const SRC = path.join(__dirname, 'kstreams');

function sourcesHash(): string {
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const f of fs.readdirSync(d).sort()) {
      const p = path.join(d, f);
      if (f === 'target') continue;
      if (fs.statSync(p).isDirectory()) walk(p);
      else h.update(p.slice(SRC.length)).update(fs.readFileSync(p));
    }
  };
  walk(SRC);
  return h.digest('hex').slice(0, 12);
}

const run = (cmd: string, args: string[], cwd?: string) =>
  new Promise<void>((resolve, reject) =>
    execFile(cmd, args, { cwd, maxBuffer: 64 << 20, timeout: 900_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stdout.slice(-2000)}\n${stderr.slice(-2000)}`)) : resolve(),
    ),
  );

/** The peer's classpath (built on first use), or why it cannot run here. */
export async function buildKStreams(cfg: Config): Promise<{ classpath: string; java: string } | { skipped: string }> {
  let java: string;
  try {
    java = java17();
  } catch (e) {
    return { skipped: `no JDK 17 (${(e as Error).message})` };
  }
  const dir = path.join(cfg.stack.cacheDir, `kstreams-peer-${sourcesHash()}`);
  const classpath = `${path.join(dir, 'kstreams-peer-1.jar')}:${path.join(dir, 'lib')}/*`;
  if (fs.existsSync(path.join(dir, '.complete'))) return { classpath, java };
  const build = `${dir}.build`;
  fs.rmSync(build, { recursive: true, force: true });
  fs.cpSync(SRC, build, { recursive: true, filter: (p) => !p.includes(`${path.sep}target`) });
  try {
    process.stdout.write('[bench] building the Kafka Streams peer with Maven (first use only)\n');
    await run('mvn', ['-B', '-q', 'package', 'dependency:copy-dependencies', '-DincludeScope=runtime', '-DoutputDirectory=target/lib'], build);
  } catch (e) {
    return { skipped: `Maven build failed: ${(e as Error).message.slice(0, 400)}` };
  }
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.cpSync(path.join(build, 'target', 'kstreams-peer-1.jar'), path.join(dir, 'kstreams-peer-1.jar'));
  fs.cpSync(path.join(build, 'target', 'lib'), path.join(dir, 'lib'), { recursive: true });
  fs.rmSync(build, { recursive: true, force: true });
  fs.writeFileSync(path.join(dir, '.complete'), new Date().toISOString());
  return { classpath, java };
}

export interface KStreamsRun {
  eps: number;
  ms: number;
  guarantee: string;
  cpu_s_per_100k: number;
  commit_ms: number;
  windows: number;
}

/** Runs the peer over the whole topic (its own application id = consumer group) and times it. */
export async function runKStreams(
  built: { classpath: string; java: string },
  opts: {
    cfg: Config;
    admin: Admin;
    topic: string;
    appId: string;
    windows: readonly WindowSpec[];
    guarantee: 'at_least_once' | 'exactly_once_v2';
    threads: number;
    /** Offsets and output are committed this often (Kafka Streams' default is 30 s at least once, 100 ms exactly once). */
    commitMs: number;
  },
): Promise<KStreamsRun> {
  const { admin, topic, appId } = opts;
  const out = `${appId}.out`;
  await admin.createTopics({ topics: [{ topic: out, numPartitions: 8, replicationFactor: 1 }] });
  const end = (await admin.fetchTopicOffsets(topic)).reduce((a, p) => a + Number(p.high), 0);
  const child = spawn(
    built.java,
    [
      '-Xmx1g',
      `-Dhh.commitMs=${opts.commitMs}`,
      '-cp',
      built.classpath,
      'hh.HeavyHittersStreams',
      opts.cfg.kafka.brokers[0],
      appId,
      topic,
      out,
      opts.guarantee,
      String(opts.threads),
      ...opts.windows.map((w) => `${w.sizeMs}:${w.latenessMs}`),
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      // It creates its internal topics: it logs in as the Kafka super user of the stack.
      env: {
        ...process.env,
        HH_KAFKA_SASL_USERNAME: opts.cfg.credentials.kafka.admin.user,
        HH_KAFKA_SASL_PASSWORD: opts.cfg.credentials.kafka.admin.password ?? '',
      },
    },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  try {
    let t0 = 0;
    let c0 = 0;
    let cpu0 = 0;
    const started = Date.now();
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the Kafka Streams peer exited (${child.exitCode}): ${stderr}`);
      const c = await committedRecords(admin, appId, topic);
      const now = performance.now();
      if (t0 === 0 && c > 0) [t0, c0, cpu0] = [now, c, cpuSeconds(child.pid!)];
      if (c >= end) {
        const cpu = cpuSeconds(child.pid!) - cpu0;
        return {
          eps: ((end - c0) / (now - t0)) * 1000,
          ms: now - t0,
          guarantee: opts.guarantee,
          cpu_s_per_100k: (cpu * 100_000) / Math.max(1, end - c0),
          commit_ms: opts.commitMs,
          windows: opts.windows.length,
        };
      }
      if (Date.now() - started > 900_000) throw new Error('the Kafka Streams peer did not finish within 15 minutes');
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 40_000))]);
    if (child.exitCode === null) child.kill('SIGKILL');
    const internal = (await admin.listTopics()).filter((t) => t.startsWith(`${appId}-`) || t === out);
    await admin.deleteTopics({ topics: internal }).catch(() => undefined);
    await admin.deleteGroups([appId]).catch(() => undefined);
  }
}

function cpuSeconds(pid: number): number {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}
