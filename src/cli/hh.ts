/**
 * `hh`: the operator's command line (`npx hh <command>`), over the running API, Temporal's
 * visibility and Kafka, with the stack's credentials (.stack/secrets.json or HH_* variables).
 * Exit codes: 0 done, 1 the system answered with an error or could not be reached,
 * 2 a usage error, 3 not found.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { kafkaClient, temporalClient } from '../clients';
import { ConfigError, loadConfig, PROJECT_ROOT, type Config } from '../config';
import { DLQ_REASON_HEADER } from '../ingest/triage';
import { listWindows, temporalUiWorkflows, WINDOW_STATES } from '../api/window-list';

export const HELP = `hh — the heavy-hitters command line

usage: hh <command> [arguments] [--json] [--api <url>]

  top <region> [--k 10] [--timeframe all|1m|5m|…] [--window <spec>:<start ms>] [--variant exact|bounded]
                                the region's (or global's) Top K, with authors
  rank <post_id> [--region NA|global] [--timeframe all|…] [--neighbours 2]
                                a post's rank, count and neighbours
  windows <region> [--state OPEN|CLOSED|FINAL|EXPIRED] [--spec 1m] [--limit 20]
                                the region's window workflows (Temporal visibility), with UI links
  recompute <window id>         rebuild a window's Redis key from its snapshot (admin token)
  dlq tail [--n 20]             the last dead letters, with their reasons
  produce [file|-]              send events (a JSON array or one JSON object per line) to POST /events
  health                        GET /healthz
  temporal <args…>              the Temporal CLI the stack built, pointed at its server

  --json   machine-readable output (one JSON document)
  --api    the API's base URL (default http://127.0.0.1:$HH_API_PORT)
  --help   this text

exit codes: 0 done · 1 error from (or no answer of) the system · 2 usage · 3 not found
`;

export class UsageError extends Error {}
class NotFound extends Error {}
/** A failure whose result was already written (e.g. produce's report): exit 1, no second document. */
class Reported extends Error {}

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  stdin: () => Promise<string>;
}

interface Options {
  json: boolean;
  api: string;
  cfg: Config;
  io: Io;
}

const int = (v: string | undefined, name: string, fallback: number): number => {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} must be a whole number, got "${v}"`);
  return n;
};

async function api(o: Options, method: string, pathAndQuery: string, opts: { body?: string; token?: string } = {}): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(`${o.api}${pathAndQuery}`, {
      method,
      headers: { ...(opts.body ? { 'content-type': 'application/json' } : {}), ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}) },
      body: opts.body,
      signal: AbortSignal.timeout(30_000),
    });
  } catch (e) {
    throw new Error(`the API at ${o.api} did not answer (${(e as Error).message}); is the runtime running (npm start)?`);
  }
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: kept as text
  }
  if (res.status === 404) throw new NotFound((body as { error?: string }).error ?? `not found: ${pathAndQuery}`);
  if (!res.ok) {
    const b = body as { error?: string; param?: string };
    throw new Error(`HTTP ${res.status}: ${b.error ?? text}${b.param ? ` (${b.param})` : ''}`);
  }
  return body;
}

/** Left-aligned columns. */
function table(rows: (string | number | null)[][]): string {
  const cells = rows.map((r) => r.map((c) => (c === null ? '-' : String(c))));
  const widths = cells[0].map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

interface TopAnswer {
  region: string;
  timeframe?: string;
  window?: string;
  source: string;
  status?: string;
  as_of?: string;
  top_posts: { post_id: string; author: string | null; view_count: number; content: string | null }[];
}

async function top(o: Options, args: string[], flags: Record<string, string | undefined>): Promise<void> {
  const region = args[0];
  if (!region) throw new UsageError('top: which region? e.g. hh top NA --k 10');
  const q = new URLSearchParams({ region, k: String(int(flags.k, 'k', 10)) });
  if (flags.window) q.set('window', flags.window);
  else q.set('timeframe', flags.timeframe ?? 'all');
  if (flags.variant) q.set('variant', flags.variant);
  const a = (await api(o, 'GET', `/top-posts?${q}`)) as TopAnswer;
  if (o.json) return o.io.out(JSON.stringify(a));
  o.io.out(`${a.region} ${a.window ?? a.timeframe} — ${a.status ?? 'live'} from ${a.source}${a.as_of ? `, as of ${a.as_of}` : ''}`);
  o.io.out(
    table([
      ['#', 'post', 'views', 'author', 'content'],
      ...a.top_posts.map((p, i) => [i + 1, p.post_id, p.view_count, p.author, p.content?.slice(0, 40) ?? null]),
    ]),
  );
}

async function rank(o: Options, args: string[], flags: Record<string, string | undefined>): Promise<void> {
  const post = args[0];
  if (!post) throw new UsageError('rank: which post? e.g. hh rank post-9 --region global');
  const q = new URLSearchParams({
    region: flags.region ?? 'global',
    timeframe: flags.timeframe ?? 'all',
    neighbours: String(int(flags.neighbours, 'neighbours', 2)),
  });
  const a = (await api(o, 'GET', `/posts/${encodeURIComponent(post)}/rank?${q}`)) as {
    rank: number;
    view_count: number;
    neighbours: { rank: number; post_id: string; view_count: number }[];
  };
  if (o.json) return o.io.out(JSON.stringify(a));
  o.io.out(`${post}: rank ${a.rank} in ${q.get('region')} (${q.get('timeframe')}), ${a.view_count} views`);
  o.io.out(table([['#', 'post', 'views'], ...a.neighbours.map((n) => [n.rank, n.post_id, n.view_count])]));
}

async function windows(o: Options, args: string[], flags: Record<string, string | undefined>): Promise<void> {
  const region = args[0];
  if (!region) throw new UsageError('windows: which region? e.g. hh windows NA --state CLOSED');
  const state = flags.state?.toUpperCase();
  if (state && !(WINDOW_STATES as readonly string[]).includes(state))
    throw new UsageError(`--state must be one of ${WINDOW_STATES.join(', ')}, got "${flags.state}"`);
  const limit = int(flags.limit, 'limit', 20);
  const ui = temporalUiWorkflows(o.cfg);
  const client = await temporalClient(o.cfg);
  let found;
  try {
    found = await listWindows(client, ui, { region, state, spec: flags.spec, limit });
  } finally {
    await client.connection.close();
  }
  if (o.json) return o.io.out(JSON.stringify(found));
  if (!found.windows.length) return o.io.out(`no windows match ${found.query}`);
  o.io.out(table([['window', 'spec', 'start', 'state', 'workflow'], ...found.windows.map((r) => [r.id, r.spec, r.start, r.state, r.status])]));
  o.io.out(`in the Temporal UI: ${found.ui}`);
}

async function recompute(o: Options, args: string[]): Promise<void> {
  const id = args[0];
  if (!id) throw new UsageError('recompute: which window? e.g. hh recompute window:NA:1m:1764340800000');
  if (!o.cfg.api.adminToken) throw new Error('no admin token (HH_ADMIN_TOKEN or .stack/secrets.json: run npm run stack:up)');
  const a = (await api(o, 'POST', `/admin/windows/${encodeURIComponent(id)}/recompute`, { token: o.cfg.api.adminToken })) as { posts: number; events: number };
  o.io.out(o.json ? JSON.stringify(a) : `recomputed ${id}: ${a.posts} posts, ${a.events} events`);
}

async function dlqTail(o: Options, args: string[], flags: Record<string, string | undefined>): Promise<void> {
  if (args[0] !== 'tail') throw new UsageError('dlq: the subcommand is tail (hh dlq tail --n 20)');
  const n = int(flags.n, 'n', 20);
  const topic = o.cfg.kafka.deadLetterTopic;
  const kafka = kafkaClient(o.cfg, 'hh-cli', 'admin');
  const admin = kafka.admin();
  await admin.connect();
  const rows: { partition: number; offset: string; reason: string; source: string; key: string | null; value: string }[] = [];
  try {
    // Read each partition's last n records directly (no consumer group left behind).
    const ends = await admin.fetchTopicOffsets(topic);
    const consumerGroup = `hh-cli-${process.pid}-${Date.now()}`;
    const consumer = kafka.consumer({ groupId: consumerGroup });
    const wanted = ends.filter((e) => Number(e.high) > Number(e.low));
    if (wanted.length) {
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      const remaining = new Map(wanted.map((e) => [e.partition, Number(e.high)]));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`reading ${topic} took over 30 s`)), 30_000);
        void consumer.run({
          eachMessage: async ({ partition, message }) => {
            const h = (k: string) => (message.headers?.[k] === undefined ? '' : String(message.headers[k]));
            rows.push({
              partition,
              offset: message.offset,
              reason: h(DLQ_REASON_HEADER),
              source: h('dlq-source'),
              key: message.key?.toString() ?? null,
              value: message.value?.toString() ?? '',
            });
            if (rows.length > n * 4) rows.splice(0, rows.length - n * 4);
            if (Number(message.offset) + 1 >= remaining.get(partition)!) remaining.delete(partition);
            if (remaining.size === 0) {
              clearTimeout(timer);
              resolve();
            }
          },
        });
        consumer.on(consumer.events.GROUP_JOIN, () => {
          for (const e of wanted) consumer.seek({ topic, partition: e.partition, offset: String(Math.max(Number(e.low), Number(e.high) - n)) });
        });
      });
      await consumer.disconnect();
      await admin.deleteGroups([consumerGroup]).catch(() => undefined);
    }
  } finally {
    await admin.disconnect();
  }
  const last = rows.slice(-n);
  if (o.json) return o.io.out(JSON.stringify({ topic, dead_letters: last }));
  if (!last.length) return o.io.out(`${topic} is empty`);
  o.io.out(table([['source', 'reason', 'value'], ...last.map((r) => [r.source || `${topic}/${r.partition}/${r.offset}`, r.reason, r.value.slice(0, 60)])]));
}

/** Events from a JSON array or NDJSON text. */
export function parseEvents(text: string): unknown[] {
  const t = text.trim();
  if (!t) return [];
  if (t.startsWith('[')) {
    const v = JSON.parse(t) as unknown;
    if (!Array.isArray(v)) throw new UsageError('produce: expected a JSON array or one JSON object per line');
    return v;
  }
  return t
    .split('\n')
    .filter((l) => l.trim())
    .map((l, i) => {
      try {
        return JSON.parse(l) as unknown;
      } catch {
        throw new UsageError(`produce: line ${i + 1} is not JSON`);
      }
    });
}

async function produce(o: Options, args: string[]): Promise<void> {
  const file = args[0] ?? '-';
  const text = file === '-' ? await o.io.stdin() : fs.readFileSync(file, 'utf8');
  const events = parseEvents(text);
  const key = o.cfg.api.producerKeys[0];
  if (!key) throw new Error('no producer key (HH_PRODUCER_KEYS or .stack/secrets.json: run npm run stack:up)');
  let accepted = 0;
  const rejected: { index: number; reason: string }[] = [];
  for (let i = 0; i < events.length; i += o.cfg.api.maxPostEvents) {
    const chunk = events.slice(i, i + o.cfg.api.maxPostEvents);
    let res: Response;
    try {
      res = await fetch(`${o.api}/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify(chunk),
        signal: AbortSignal.timeout(60_000),
      });
    } catch (e) {
      throw new Error(`the API at ${o.api} did not answer (${(e as Error).message}); is the runtime running (npm start)?`);
    }
    const body = (await res.json().catch(() => ({}))) as { accepted?: number; error?: string; rejected?: { index: number; reason: string }[] };
    // A partly refused batch (400) still produced its valid events: count them, list the others.
    accepted += body.accepted ?? 0;
    if (res.status === 400 && body.rejected) rejected.push(...body.rejected.map((r) => ({ index: i + r.index, reason: r.reason })));
    else if (!res.ok) throw new Error(`HTTP ${res.status}: ${body.error ?? 'POST /events failed'}`);
  }
  const out = { sent: events.length, accepted, rejected };
  if (o.json) o.io.out(JSON.stringify(out));
  else {
    o.io.out(`sent ${events.length}, accepted ${accepted}${rejected.length ? `, refused ${rejected.length}:` : ''}`);
    for (const r of rejected.slice(0, 20)) o.io.out(`  event ${r.index}: ${r.reason}`);
  }
  if (rejected.length) throw new Reported(`${rejected.length} event(s) refused`);
}

async function health(o: Options): Promise<void> {
  const a = (await api(o, 'GET', '/healthz')) as { status: string; problems?: string[] };
  if (o.json) o.io.out(JSON.stringify(a));
  else {
    o.io.out(`status: ${a.status}`);
    for (const p of a.problems ?? []) o.io.out(`  - ${p}`);
  }
  if (a.status === 'down') throw new Error('the system is down');
}

function temporal(args: string[]): void {
  const r = spawnSync('npx', ['tsx', path.join(PROJECT_ROOT, 'scripts', 'temporal.ts'), ...args], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`temporal exited with ${r.status}`);
}

type Command = (o: Options, args: string[], flags: Record<string, string | undefined>, rawArgs: string[]) => Promise<void> | void;

const COMMANDS: Record<string, Command> = {
  top,
  rank,
  windows,
  recompute: (o, args) => recompute(o, args),
  dlq: dlqTail,
  produce: (o, args) => produce(o, args),
  health: (o) => health(o),
  temporal: (_o, _args, _flags, raw) => temporal(raw),
};

/** Runs one command line; returns the exit code. */
export async function main(argv: string[], io: Io, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: argv[0] !== 'temporal',
      options: {
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        api: { type: 'string' },
        k: { type: 'string' },
        timeframe: { type: 'string' },
        window: { type: 'string' },
        variant: { type: 'string' },
        region: { type: 'string' },
        neighbours: { type: 'string' },
        state: { type: 'string' },
        spec: { type: 'string' },
        limit: { type: 'string' },
        n: { type: 'string' },
      },
    });
  } catch (e) {
    io.err(`hh: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  const [cmd, ...args] = parsed.positionals;
  const flags = parsed.values as Record<string, string | undefined> & { json?: boolean; help?: boolean };
  if (flags.help || cmd === 'help') {
    io.out(HELP);
    return 0;
  }
  if (!cmd) {
    io.err(HELP);
    return 2;
  }
  try {
    const cfg = loadConfig(env);
    const o: Options = { json: Boolean(flags.json), api: flags.api ?? env.HH_API_URL ?? `http://${cfg.host}:${cfg.api.port}`, cfg, io };
    const run = COMMANDS[cmd];
    if (!run) throw new UsageError(`unknown command "${cmd}"`);
    await run(o, args, flags, argv.slice(1));
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`hh: ${e.message}\n\n${HELP}`);
      return 2;
    }
    if (e instanceof ConfigError) {
      io.err(`hh: ${e.message}`);
      return 2;
    }
    const msg = (e as Error).message;
    io.err(`hh: ${msg}`);
    if (flags.json && !(e instanceof Reported)) io.out(JSON.stringify({ error: msg }));
    return e instanceof NotFound ? 3 : 1;
  }
}

if (require.main === module) {
  const io: Io = {
    out: (s) => process.stdout.write(`${s}\n`),
    err: (s) => process.stderr.write(`${s}\n`),
    stdin: async () => {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    },
  };
  void main(process.argv.slice(2), io).then((code) => process.exit(code));
}
