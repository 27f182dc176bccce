/**
 * Processes the stack started: spawned detached, logs to a file, PID recorded with the
 * process's kernel start time. Stopping only ever signals a recorded PID, and only while
 * that PID still has the recorded start time (a reused PID belongs to another program).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';

export interface Paths {
  root: string;
  run: string;
  logs: string;
  data: string;
  conf: string;
  tmp: string;
}

export function stackPaths(stackDir: string): Paths {
  const p: Paths = {
    root: stackDir,
    run: path.join(stackDir, 'run'),
    logs: path.join(stackDir, 'logs'),
    data: path.join(stackDir, 'data'),
    conf: path.join(stackDir, 'conf'),
    tmp: path.join(stackDir, 'tmp'),
  };
  for (const d of Object.values(p)) fs.mkdirSync(d, { recursive: true });
  return p;
}

export interface PidRecord {
  pid: number;
  /** The kernel's start time of the process (clock ticks since boot): a PID plus this names one process. */
  procStart: string;
  startedAt: string;
  command: string[];
}

/** Field 22 of /proc/<pid>/stat, or undefined when there is no such live (non-zombie) process. */
function procStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

const pidFile = (p: Paths, name: string) => path.join(p.run, `${name}.pid`);
export const logFile = (p: Paths, name: string) => path.join(p.logs, `${name}.log`);

export function readPid(p: Paths, name: string): PidRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(pidFile(p, name), 'utf8')) as PidRecord;
  } catch {
    return undefined;
  }
}

/** The recorded process of `name` if it is alive and still the one we started, else undefined. */
export function runningPid(p: Paths, name: string): number | undefined {
  const rec = readPid(p, name);
  if (!rec) return undefined;
  const start = procStartTime(rec.pid);
  return start !== undefined && start === rec.procStart ? rec.pid : undefined;
}

/** Starts a detached process whose output goes to the service's log; records its PID. */
export function startDetached(p: Paths, name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, cwd = p.root): number {
  const log = logFile(p, name);
  fs.appendFileSync(log, `\n==== ${new Date().toISOString()} starting ${name}: ${cmd} ${args.join(' ')}\n`);
  const fd = fs.openSync(log, 'a');
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], env, cwd });
  fs.closeSync(fd);
  if (child.pid === undefined) throw new Error(`${name}: could not spawn ${cmd}`);
  child.unref();
  const procStart = procStartTime(child.pid);
  if (procStart === undefined) throw new Error(`${name}: ${cmd} exited at once; log: ${log}`);
  const rec: PidRecord = { pid: child.pid, procStart, startedAt: new Date().toISOString(), command: [cmd, ...args] };
  fs.writeFileSync(pidFile(p, name), JSON.stringify(rec, null, 2));
  return child.pid;
}

/**
 * Sets the nice value of the scheduling group of a process the stack started. Each server
 * is started detached, in a session of its own, and with the kernel's autogroup scheduling
 * (on by default) the cores are shared first between sessions: a process's own nice value
 * only orders it within its session, so `renice` of a server does not give it the cores
 * before another server's. The session's group nice (`/proc/<pid>/autogroup`) does.
 * Returns what was done, or why not (no autogroup scheduling, no permission for a
 * negative value): the stack runs either way.
 */
export function setGroupNice(pid: number, nice: number): string {
  if (process.env.HH_STACK_GROUP_NICE === 'off') return 'group nice off (HH_STACK_GROUP_NICE=off)';
  try {
    if (fs.readFileSync('/proc/sys/kernel/sched_autogroup_enabled', 'utf8').trim() !== '1') return 'group nice not set: autogroup scheduling is off';
    fs.writeFileSync(`/proc/${pid}/autogroup`, String(nice));
    return `group nice ${nice}`;
  } catch (e) {
    return `group nice ${nice} not set: ${(e as Error).message}`;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; only the recorded PID, only if it is still ours. */
export async function stopRecorded(p: Paths, name: string, graceMs: number): Promise<'stopped' | 'not running'> {
  const pid = runningPid(p, name);
  if (pid === undefined) {
    fs.rmSync(pidFile(p, name), { force: true });
    return 'not running';
  }
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && runningPid(p, name) === pid) await sleep(200);
  if (runningPid(p, name) === pid) process.kill(pid, 'SIGKILL');
  while (runningPid(p, name) === pid) await sleep(100);
  fs.rmSync(pidFile(p, name), { force: true });
  return 'stopped';
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Runs a command to completion. Progress of a long step: every 10 s one line with the
 * elapsed time, the number of output lines so far and the latest one; on failure the
 * last 30 lines are in the error. `hideArgs`: the arguments carry secrets and are left out
 * of every message.
 */
export function runStep(
  prefix: string,
  what: string,
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
  opts: { cwd?: string; hideArgs?: boolean } = {},
): Promise<void> {
  const { cwd } = opts;
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    let lines = 0;
    for (const stream of [child.stdout, child.stderr]) {
      readline.createInterface({ input: stream }).on('line', (line) => {
        lines++;
        tail.push(line);
        if (tail.length > 30) tail.shift();
      });
    }
    const beat = setInterval(() => {
      const last = (tail[tail.length - 1] ?? '').slice(0, 100);
      process.stdout.write(`[${prefix}] ${what}: running ${((Date.now() - t0) / 1000).toFixed(0)} s, ${lines} lines: ${last}\n`);
    }, 10_000);
    child.on('error', (e) => {
      clearInterval(beat);
      reject(new Error(`${prefix}: cannot run ${cmd}: ${e.message}`));
    });
    child.on('close', (code) => {
      clearInterval(beat);
      process.stdout.write(`[${prefix}] ${what}: finished in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
      if (code === 0) resolve();
      else
        reject(
          new Error(`${prefix}: ${cmd} ${opts.hideArgs ? '(arguments hidden: they hold secrets)' : args.join(' ')} exited with ${code}\n${tail.join('\n')}`),
        );
    });
  });
}

/** The last `n` lines of a file (for error messages and `stack:logs`). */
export function tailFile(file: string, n: number): string {
  try {
    const fd = fs.openSync(file, 'r');
    const size = fs.fstatSync(fd).size;
    const len = Math.min(size, 256 * 1024);
    const buf = Buffer.alloc(len);
    fs.readSync(fd, buf, 0, len, size - len);
    fs.closeSync(fd);
    return buf
      .toString('utf8')
      .split('\n')
      .slice(-n - 1)
      .join('\n');
  } catch {
    return `(no log at ${file})`;
  }
}
