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
  /** Since when it has been idle (performance.now()). */
  idleSince: number;
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

/**
 * A keep-alive connection idle longer than this is closed rather than used again: a server
 * closes one idle for its keep-alive timeout (Node's default, 5 s, for our API and bare
 * Express alike), and a request written just as it does is lost and counted as an error (3
 * in one bench run's (e), which stopped the run; the least used connections sit idle longest).
 */
export const IDLE_REUSE_MS = 4_000;

/** GET `url` at `rate` requests per second for `seconds`, over up to `connections` keep-alive connections. */
export async function steadyLoad(url: string, opts: { rate: number; seconds: number; connections?: number; idleMs?: number }): Promise<SteadyResult> {
  return (await steadyLoadTurns([url], opts))[0];
}

/**
 * Which of `servers` request i goes to: turns of `perTurn` requests, each server one turn
 * per round, in a shuffled order per round (a Fisher-Yates shuffle driven by a fixed LCG, so
 * every run draws the same orders).
 */
export function turnSchedule(servers: number, perTurn: number): (i: number) => number {
  let seed = 0x2545f491;
  const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const orders: number[][] = [];
  return (i: number) => {
    const turn = Math.floor(i / perTurn);
    const round = Math.floor(turn / servers);
    while (orders.length <= round) {
      const order = Array.from({ length: servers }, (_, u) => u);
      for (let k = order.length - 1; k > 0; k--) {
        const j = Math.floor(random() * (k + 1));
        [order[k], order[j]] = [order[j], order[k]];
      }
      orders.push(order);
    }
    return orders[round][turn % servers];
  };
}

/**
 * Several servers measured in one run, taking turns: the requests go to one URL at a time,
 * in turns of `turnMs`, and each round of turns visits every URL once in an order drawn from
 * a fixed pseudo-random sequence. So whatever else the machine does meanwhile — a periodic
 * burst of other processes' work included — falls on every URL alike: back-to-back runs of a
 * few seconds each can fall in step with such a burst (5-s runs against a 10-s one put every
 * run of one URL on it and every run of the other beside it). Each URL gets its own
 * connections and its own figures; the rate is the one every URL sees during its turns.
 */
export async function steadyLoadTurns(
  urls: string[],
  opts: { rate: number; seconds: number; connections?: number; turnMs?: number; idleMs?: number },
): Promise<SteadyResult[]> {
  const max = opts.connections ?? 32;
  const idleMs = opts.idleMs ?? IDLE_REUSE_MS;
  const total = Math.round(opts.rate * opts.seconds);
  const interval = 1000 / opts.rate;
  const perTurn = Math.max(1, Math.round((opts.turnMs ?? 250) / interval));
  const targetOf = turnSchedule(urls.length, perTurn);
  const targets = urls.map((url) => {
    const u = new URL(url);
    return {
      host: u.hostname,
      port: Number(u.port || 80),
      request: Buffer.from(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: keep-alive\r\n\r\n`, 'latin1'),
      latencies: [] as number[],
      waiting: [] as number[], // due times of requests waiting for a connection
      idle: [] as Conn[],
      conns: new Set<Conn>(),
      asked: 0,
      done: 0,
      non2xx: 0,
      errors: 0,
    };
  });
  type Target = (typeof targets)[number];
  let done = 0;
  let failed: Error | undefined;
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  const settle = (t: Target) => {
    t.done++;
    if (++done === total) finish();
  };

  const send = (t: Target, c: Conn, due: number) => {
    c.due = due;
    c.socket.write(t.request);
  };
  const release = (t: Target, c: Conn) => {
    c.due = null;
    const next = t.waiting.shift();
    if (next !== undefined) send(t, c, next);
    else {
      c.idleSince = performance.now();
      t.idle.push(c);
    }
  };
  /** The most recently idle connection not idle for too long (older ones are closed on the way). */
  const idleConn = (t: Target, now: number): Conn | undefined => {
    for (let c = t.idle.pop(); c; c = t.idle.pop()) {
      if (now - c.idleSince <= idleMs) return c;
      t.conns.delete(c);
      c.socket.destroy();
    }
    return undefined;
  };
  const open = (t: Target): Conn => {
    const c: Conn = { socket: net.connect(t.port, t.host), due: null, idleSince: 0, buf: Buffer.alloc(0), need: -1, status: 0 };
    c.socket.setNoDelay(true);
    t.conns.add(c);
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
      if (c.due !== null) t.latencies.push(at - c.due);
      if (c.status < 200 || c.status > 299) t.non2xx++;
      c.buf = c.buf.subarray(c.need);
      c.need = -1;
      settle(t);
      release(t, c);
    });
    const lost = () => {
      if (!t.conns.delete(c)) return;
      const i = t.idle.indexOf(c);
      if (i >= 0) t.idle.splice(i, 1);
      if (c.due !== null) {
        t.errors++;
        settle(t);
      }
    };
    c.socket.on('error', lost);
    c.socket.on('close', lost);
    return c;
  };

  const start = performance.now() + 5;
  let sent = 0;
  let lateMax = 0;
  const tick = () => {
    const now = performance.now();
    while (sent < total && start + sent * interval <= now) {
      const due = start + sent * interval;
      lateMax = Math.max(lateMax, now - due);
      const t = targets[targetOf(sent)];
      sent++;
      t.asked++;
      const c = idleConn(t, now) ?? (t.conns.size < max ? open(t) : undefined);
      if (c) send(t, c, due);
      else t.waiting.push(due);
    }
    if (sent < total) setTimeout(tick, Math.max(0, Math.min(1, start + sent * interval - performance.now())));
  };
  tick();
  const t0 = performance.now();
  const timeout = setTimeout(() => finish(), (opts.seconds + 30) * 1000);
  await finished;
  clearTimeout(timeout);
  const seconds = (performance.now() - t0) / 1000;
  for (const t of targets) for (const c of t.conns) c.socket.destroy();
  if (failed) throw failed;
  const r1 = (x: number) => Math.round(x * 10) / 10;
  return targets.map((t) => {
    t.latencies.sort((a, b) => a - b);
    // The rate during its turns: its responses over its share of the run's time.
    const turnsSeconds = (seconds * t.asked) / total;
    return {
      rps: Math.round(t.latencies.length / turnsSeconds),
      p50_ms: r1(percentile(t.latencies, 50)),
      p99_ms: r1(percentile(t.latencies, 99)),
      max_ms: r1(t.latencies[t.latencies.length - 1] ?? NaN),
      requests: t.latencies.length,
      non2xx: t.non2xx,
      // Requests never answered (the run timed out) count as errors.
      errors: t.errors + (t.asked - t.done),
      late_send_max_ms: r1(lateMax),
    };
  });
}

/**
 * The same in a process of its own (`tsx bench/steady-load.ts RATE SECONDS TURN_MS URL...`
 * prints the results as JSON): its timers are not held up by the bench process's own work
 * and GC (which holds the pre-loaded truth), which would count as the servers' latency.
 */
export function steadyLoadProcess(urls: string[], opts: { rate: number; seconds: number; turnMs?: number }): Promise<SteadyResult[]> {
  const tsx = path.join(__dirname, '..', 'node_modules', 'tsx', 'dist', 'cli.mjs');
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [tsx, __filename, String(opts.rate), String(opts.seconds), String(opts.turnMs ?? 250), ...urls],
      { timeout: (opts.seconds + 60) * 1000 },
      (e, stdout, stderr) => {
        if (e) return reject(new Error(`steady load: ${e.message} ${stderr}`));
        resolve(JSON.parse(stdout) as SteadyResult[]);
      },
    );
  });
}

if (require.main === module) {
  const [rate, seconds, turnMs, ...urls] = process.argv.slice(2);
  // Ahead of the servers it measures, where allowed: its own wait for a core is not theirs.
  try {
    os.setPriority(-10);
  } catch {
    // not permitted: late_send_max_ms says how late it was
  }
  steadyLoadTurns(urls, { rate: Number(rate), seconds: Number(seconds), turnMs: Number(turnMs) }).then(
    (r) => process.stdout.write(JSON.stringify(r)),
    (e: Error) => {
      process.stderr.write(`${e.message}\n`);
      process.exit(1);
    },
  );
}
