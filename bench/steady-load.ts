/**
 * An open-loop HTTP load at a steady rate, for the API's latency at a given request rate.
 *
 * autocannon's `overallRate` does not send at that rate: each connection sends its share of a
 * second's requests back to back as the second starts, then waits for the next second, so the
 * server is driven at its full speed for part of every second. And its correction for
 * coordinated omission assumes one request per millisecond per connection, so a response
 * taking t ms is recorded about t times: its p99 at a fixed rate is close to the single
 * longest stall of the run.
 *
 * Here request i is due at start + i / rate (evenly spaced). It goes out on the first idle
 * keep-alive connection of a pool; with none idle it waits in line. Its latency is counted
 * from when it was due, not from when it went out, so time spent waiting for a connection
 * (a slow server) is counted, once per request. One request per connection at a time (no
 * pipelining), like a browser or a proxy. Run as its own process (steadyLoadProcess), it
 * raises its priority where allowed, and reports how late its own sends were.
 */
import { execFile } from 'node:child_process';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

export interface SteadyResult {
  /** Responses per second over the run. */
  rps: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  requests: number;
  non2xx: number;
  errors: number;
  /** The most a request went out after it was due for want of this process's own time (its timers, not a busy connection). */
  late_send_max_ms: number;
}

interface Conn {
  socket: net.Socket;
  /** When the request on it was due (performance.now()); null when idle. */
  due: number | null;
  buf: Buffer;
  /** Bytes of the whole response being read (headers and body), once its headers are in. */
  need: number;
  status: number;
}

const HEADERS_END = Buffer.from('\r\n\r\n');

/** The response's length (headers and body) and status, once its headers are in `buf`; null before. */
export function responseLength(buf: Buffer): { length: number; status: number } | null {
  const end = buf.indexOf(HEADERS_END);
  if (end < 0) return null;
  const head = buf.toString('latin1', 0, end);
  const status = Number(head.slice(9, 12));
  const m = /\r\ncontent-length:[ \t]*(\d+)/i.exec(head);
  if (!m) throw new Error(`a response without content-length (status ${status}): not supported by this load`);
  return { length: end + 4 + Number(m[1]), status };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** GET `url` at `rate` requests per second for `seconds`, over up to `connections` keep-alive connections. */
export async function steadyLoad(url: string, opts: { rate: number; seconds: number; connections?: number }): Promise<SteadyResult> {
  const u = new URL(url);
  const port = Number(u.port || 80);
  const request = Buffer.from(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: keep-alive\r\n\r\n`, 'latin1');
  const max = opts.connections ?? 32;
  const total = Math.round(opts.rate * opts.seconds);
  const latencies: number[] = [];
  const waiting: number[] = []; // due times of requests waiting for a connection
  const idle: Conn[] = [];
  const conns = new Set<Conn>();
  let non2xx = 0;
  let errors = 0;
  let sent = 0;
  let done = 0;
  let failed: Error | undefined;
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  const settle = () => {
    if (++done === total) finish();
  };

  const send = (c: Conn, due: number) => {
    c.due = due;
    c.socket.write(request);
  };
  const release = (c: Conn) => {
    c.due = null;
    const next = waiting.shift();
    if (next !== undefined) send(c, next);
    else idle.push(c);
  };
  const open = (): Conn => {
    const c: Conn = { socket: net.connect(port, u.hostname), due: null, buf: Buffer.alloc(0), need: -1, status: 0 };
    c.socket.setNoDelay(true);
    conns.add(c);
    c.socket.on('data', (d: Buffer) => {
      c.buf = c.buf.length === 0 ? d : Buffer.concat([c.buf, d]);
      if (c.need < 0) {
        let r;
        try {
          r = responseLength(c.buf);
        } catch (e) {
          failed = e as Error;
          return finish();
        }
        if (!r) return;
        c.need = r.length;
        c.status = r.status;
      }
      if (c.buf.length < c.need) return;
      const at = performance.now();
      if (c.due !== null) latencies.push(at - c.due);
      if (c.status < 200 || c.status > 299) non2xx++;
      c.buf = c.buf.subarray(c.need);
      c.need = -1;
      settle();
      release(c);
    });
    const lost = () => {
      if (!conns.delete(c)) return;
      const i = idle.indexOf(c);
      if (i >= 0) idle.splice(i, 1);
      if (c.due !== null) {
        errors++;
        settle();
      }
    };
    c.socket.on('error', lost);
    c.socket.on('close', lost);
    return c;
  };

  const start = performance.now() + 5;
  const interval = 1000 / opts.rate;
  let lateMax = 0;
  const tick = () => {
    const now = performance.now();
    while (sent < total && start + sent * interval <= now) {
      const due = start + sent * interval;
      lateMax = Math.max(lateMax, now - due);
      sent++;
      const c = idle.pop() ?? (conns.size < max ? open() : undefined);
      if (c) send(c, due);
      else waiting.push(due);
    }
    if (sent < total) setTimeout(tick, Math.max(0, Math.min(1, start + sent * interval - performance.now())));
  };
  tick();
  const t0 = performance.now();
  const timeout = setTimeout(() => finish(), (opts.seconds + 30) * 1000);
  await finished;
  clearTimeout(timeout);
  const seconds = (performance.now() - t0) / 1000;
  for (const c of conns) c.socket.destroy();
  if (failed) throw failed;
  // Requests never answered (the run timed out) count as errors.
  errors += total - done;
  latencies.sort((a, b) => a - b);
  const r1 = (x: number) => Math.round(x * 10) / 10;
  return {
    rps: Math.round(latencies.length / seconds),
    p50_ms: r1(percentile(latencies, 50)),
    p99_ms: r1(percentile(latencies, 99)),
    max_ms: r1(latencies[latencies.length - 1] ?? NaN),
    requests: latencies.length,
    non2xx,
    errors,
    late_send_max_ms: r1(lateMax),
  };
}

/**
 * The same in a process of its own (`tsx bench/steady-load.ts URL RATE SECONDS` prints the
 * result as JSON): its timers are not held up by the bench process's own work and GC (which
 * holds the pre-loaded truth), which would count as the server's latency.
 */
export function steadyLoadProcess(url: string, opts: { rate: number; seconds: number }): Promise<SteadyResult> {
  const tsx = path.join(__dirname, '..', 'node_modules', 'tsx', 'dist', 'cli.mjs');
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [tsx, __filename, url, String(opts.rate), String(opts.seconds)],
      { timeout: (opts.seconds + 60) * 1000 },
      (e, stdout, stderr) => {
        if (e) return reject(new Error(`steady load: ${e.message} ${stderr}`));
        resolve(JSON.parse(stdout) as SteadyResult);
      },
    );
  });
}

if (require.main === module) {
  const [url, rate, seconds] = process.argv.slice(2);
  // Ahead of the servers it measures, where allowed: its own wait for a core is not theirs.
  try {
    os.setPriority(-10);
  } catch {
    // not permitted: late_send_max_ms says how late it was
  }
  steadyLoad(url, { rate: Number(rate), seconds: Number(seconds) }).then(
    (r) => process.stdout.write(JSON.stringify(r)),
    (e: Error) => {
      process.stderr.write(`${e.message}\n`);
      process.exit(1);
    },
  );
}
