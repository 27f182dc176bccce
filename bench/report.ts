/**
 * Writes a bench run's figures: `<name>.json` (the fields the issue names), `<name>.md` (a
 * table, the ratios against their targets) and `<name>.svg` (a bar chart); returns the ratios.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface MemoryFigures {
  mode: 'exact' | 'bounded';
  distinct: number;
  events: number;
  redis_used_bytes: number;
  exact_topk_bytes: number;
  bounded_topk_bytes: number;
  window_bytes: number;
  dedup_bytes: number;
  worker_rss_bytes: number;
  /** RSS of the lifecycle processes (the workflows), apart from the workers' (absent before HH_LIFECYCLE_PROCESSES). */
  lifecycle_rss_bytes?: number;
  /** The longest Lua script while the stream was counted (SLOWLOG): Redis serves nobody else meanwhile. */
  longest_script_ms: number;
  /** Which script that was (file name). */
  longest_script?: string;
  /** The next longest after it (ms and script), and how many script calls ran over 50 ms: one stall or many. */
  next_scripts?: { ms: number; script: string }[];
  scripts_over_50ms?: number;
}

export interface KStreamsFigures {
  eps: number;
  ms: number;
  cpu_s_per_100k: number;
  commit_ms: number;
  windows: number;
}

/**
 * Flat, as the soak's target has it: "±10 % over the second half", i.e. every sample of the
 * second half within 10 % of one level c (max ≤ 1.1 c and min ≥ 0.9 c). Such a c exists
 * exactly when max ÷ min ≤ 1.1 / 0.9 ≈ 1.222, so the target reads from the ratios in
 * latest.json. (Reports before 2026-12-04 held max ÷ min to 1.1, i.e. ±4.8 %.)
 */
export const SOAK_FLAT_RATIO = 1.1 / 0.9;

/** One mode's soak: a steady stream with new posts throughout, sampled every 10 s. */
export interface SoakFigures {
  mode: 'exact' | 'bounded';
  minutes: number;
  rate_eps: number;
  events: number;
  /** [seconds since start, Redis used_memory bytes, worker heap used bytes (all workers)]. */
  samples: [number, number, number][];
  /** Max ÷ min over the second half. */
  redis_used_bytes_ratio: number;
  worker_heap_ratio: number;
}

/** How a run's flushes went, from the runtime's own metrics (summed over its workers). */
export interface FlushSummary {
  flushes: number;
  events_per_flush: number;
  /** Mean time a flush script held Redis, and a whole flush took (script, round trip, the actor's work), ms. */
  script_ms: number;
  flush_ms: number;
  /** Seconds flushes waited for a checkpoint to take the entries waiting for one. */
  backpressure_s: number;
  /** Records read from Kafka per event applied (above 1: records read again, e.g. after a seek back). */
  reads_per_event: number;
}

export interface BenchResults {
  when: string;
  smoke: boolean;
  machine: { cpus: number; model: string; mem_gib: number; node: string };
  events: number;
  ingest: {
    limit_eps: number;
    ours_eps: number;
    naive_eps: number;
    /** The faster of naive_pipelined_runs_eps. */
    naive_pipelined_eps: number;
    /** (c2) run just before (b) and again after (e), our runtime stopped (absent in reports before it). */
    naive_pipelined_runs_eps?: number[];
    naive_events: number;
    exact: boolean;
    /** The Kafka Streams peer (bench/peers/kstreams), at least once; NaN when skipped. */
    kstreams_eps: number;
    kstreams?: { at_least_once: KStreamsFigures | null; exactly_once_v2: KStreamsFigures | null; skipped?: string };
  };
  freshness_ms: {
    p50: number;
    p99: number;
    max: number;
    probes: number;
    rate_eps: number;
    /** The rate the background load was asked for (absent in reports before it): it falls short on busy cores. */
    asked_eps?: number;
    at_quarter_rate: { p50: number; p99: number; max: number; probes: number; rate_eps: number; asked_eps?: number };
  };
  api: {
    rps: number;
    p50_ms: number;
    p99_ms: number;
    /**
     * The median of three steady-rate runs by p99 (all three p99s beside it): bench/steady-load.ts,
     * evenly spaced requests timed from when each was due. Reports before 2026-12-04 used
     * autocannon's overallRate (a burst at the start of every second) here.
     */
    at_2000_rps: { rps: number; p50_ms: number; p99_ms: number; p99_runs_ms: number[]; max_ms?: number; late_send_max_ms?: number };
    limit_rps: number;
    limit_p50_ms: number;
    limit_p99_ms: number;
    limit_at_2000_rps: { rps: number; p50_ms: number; p99_ms: number; p99_runs_ms: number[]; max_ms?: number; late_send_max_ms?: number };
    /** CPU the serving processes spent per request in the 16-connection runs (µs; absent in reports before it). */
    cpu_us_per_request?: number;
    limit_cpu_us_per_request?: number;
    body_bytes: number;
  };
  memory: Record<string, MemoryFigures>;
  /** `--soak` only: the worst of both modes' ratios, and each mode. */
  soak?: { redis_used_bytes_ratio: number; worker_heap_ratio: number; exact: SoakFigures; bounded: SoakFigures };
  scaling: {
    workers_1_eps: number;
    workers_2_eps: number;
    speedup: number;
    /** CPU seconds per 100k events by component (redis, kafka, cassandra, temporal, workers): where the time goes. */
    cpu_s_per_100k_events: Record<string, Record<string, number>>;
    /** Redis microseconds per event by command, the costliest first. */
    redis_us_per_event: Record<string, Record<string, number>>;
    /** How the runs' flushes went (the runtime's metrics). */
    flushes?: Record<string, FlushSummary | undefined>;
  };
  /**
   * Steal by phase (absent in reports before it): the share of the machine's CPU time (%) the
   * hypervisor took from this virtual machine while the phase ran (/proc/stat). Phases compared
   * with each other ran on the same machine only when their steal is alike.
   */
  steal_pct?: Record<string, number>;
  seconds: number;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const r2 = (n: number) => Math.round(n * 100) / 100;

export function ratios(r: BenchResults): Record<string, string> {
  const pair = (mode: string) => {
    const ms = Object.values(r.memory)
      .filter((m) => m.mode === mode)
      .sort((a, b) => a.distinct - b.distinct);
    return ms.length >= 2 ? [ms[0], ms[ms.length - 1]] : undefined;
  };
  const check = (ok: boolean) => (ok ? 'met' : 'NOT met');
  const ks = r.ingest.kstreams_eps;
  const mem1m = Object.values(r.memory).find((m) => m.mode === 'exact' && m.distinct >= 1_000_000);
  const longest = Math.max(0, ...Object.values(r.memory).map((m) => m.longest_script_ms));
  const over50 = Object.values(r.memory).reduce((a, m) => a + (m.scripts_over_50ms ?? 0), 0);
  const st = r.steal_pct;
  const stealNote = (a: string, b: string) => (st && a in st && b in st ? ` (steal ${st[a]} % and ${st[b]} %)` : '');
  const out: Record<string, string> = {
    'ours / naive pipelined (target ≥ 1.0)': `${r2(r.ingest.ours_eps / r.ingest.naive_pipelined_eps)} — ${check(r.ingest.ours_eps / r.ingest.naive_pipelined_eps >= 1)}${stealNote('ours', 'naive_pipelined')}`,
    'ours / Kafka Streams, at least once (target ≥ 1.5)': Number.isFinite(ks)
      ? `${r2(r.ingest.ours_eps / ks)} — ${check(r.ingest.ours_eps / ks >= 1.5)}`
      : `skipped (${r.ingest.kstreams?.skipped ?? 'not run'})`,
    'ours / limit': `${r2(r.ingest.ours_eps / r.ingest.limit_eps)}`,
    'ours / naive, one round trip per event': `${r2(r.ingest.ours_eps / r.ingest.naive_eps)}`,
    'freshness p99 at half rate (target ≤ 1000 ms)': `${r.freshness_ms.p99} ms — ${check(r.freshness_ms.p99 <= 1000)}`,
    'freshness p99 at a quarter rate (target ≤ 500 ms)': `${r.freshness_ms.at_quarter_rate.p99} ms — ${check(r.freshness_ms.at_quarter_rate.p99 <= 500)}`,
    'API p99 at 2,000 req/s / bare Express p99 (target ≤ 1.5)': `${r2(r.api.at_2000_rps.p99_ms / r.api.limit_at_2000_rps.p99_ms)} (${r.api.at_2000_rps.p99_ms} / ${r.api.limit_at_2000_rps.p99_ms} ms) — ${check(r.api.at_2000_rps.p99_ms <= 1.5 * r.api.limit_at_2000_rps.p99_ms)}`,
    'API rps / bare Express': `${r2(r.api.rps / r.api.limit_rps)}`,
    // The maximum is rounded to the millisecond: a call of 50.3 ms shows as 50, so the calls counted over 50 ms decide.
    'longest script, memory phases (target ≤ 50 ms)': `${longest} ms${over50 ? `, ${over50} call(s) over 50 ms` : ''} — ${check(longest <= 50 && over50 === 0)}`,
    ...(mem1m
      ? {
          'worker RSS per worker at 1M distinct posts (target ≤ 512 MiB)': `${mib(mem1m.worker_rss_bytes / 2)} — ${check(mem1m.worker_rss_bytes / 2 <= 512 * 2 ** 20)}`,
        }
      : {}),
    ...(r.soak
      ? {
          'soak: Redis used_memory max/min, second half (target ±10 %: ≤ 1.22)': `${r.soak.redis_used_bytes_ratio} — ${check(r.soak.redis_used_bytes_ratio <= SOAK_FLAT_RATIO)}`,
          'soak: worker heap max/min, second half (target ±10 %: ≤ 1.22)': `${r.soak.worker_heap_ratio} — ${check(r.soak.worker_heap_ratio <= SOAK_FLAT_RATIO)}`,
        }
      : {}),
    '2 workers / 1 worker': `${r.scaling.speedup}`,
  };
  const b = pair('bounded');
  if (b) {
    const ratio = b[1].redis_used_bytes / b[0].redis_used_bytes;
    out[`bounded mode: Redis memory, ${fmt(b[1].distinct)} / ${fmt(b[0].distinct)} posts (target ≤ 1.1)`] = `${r2(ratio)} — ${check(ratio <= 1.1)}`;
  }
  const e = pair('exact');
  if (e) out[`exact mode: Redis memory, ${fmt(e[1].distinct)} / ${fmt(e[0].distinct)} posts`] = `${r2(e[1].redis_used_bytes / e[0].redis_used_bytes)}`;
  return out;
}

/** ", asked for N" when the background load produced under 90 % of the rate it was asked for. */
const asked = (f: { rate_eps: number; asked_eps?: number }) =>
  f.asked_eps !== undefined && f.rate_eps < 0.9 * f.asked_eps ? ` (asked for ${fmt(f.asked_eps)}: the load fell short)` : '';

export function markdown(r: BenchResults, rs: Record<string, string>): string {
  const rows: [string, string, string][] = [
    ['(a) limit: kafkajs consumer, JSON.parse only', `${fmt(r.ingest.limit_eps)} events/s`, ''],
    ['(b) ours: full hot path, 2 workers', `${fmt(r.ingest.ours_eps)} events/s`, `top 100 of every region exact: ${r.ingest.exact}`],
    ['(c) naive: one ZINCRBY round trip per event', `${fmt(r.ingest.naive_eps)} events/s`, `first ${fmt(r.ingest.naive_events)} events`],
    [
      '(c2) naive: ZINCRBY per event, pipelined per batch',
      `${fmt(r.ingest.naive_pipelined_eps)} events/s`,
      `no validation, dedup, windows or fence${r.ingest.naive_pipelined_runs_eps ? `; the faster of a run just before (b) and one after (e) (${r.ingest.naive_pipelined_runs_eps.map(fmt).join(', ')})` : ''}`,
    ],
    [
      '(k) Kafka Streams: all-time + the tumbling windows with grace, at least once',
      Number.isFinite(r.ingest.kstreams_eps) ? `${fmt(r.ingest.kstreams_eps)} events/s` : 'skipped',
      r.ingest.kstreams?.at_least_once
        ? `commits every ${r.ingest.kstreams.at_least_once.commit_ms} ms, ${r.ingest.kstreams.at_least_once.windows} window specs, ${r.ingest.kstreams.at_least_once.cpu_s_per_100k.toFixed(2)} CPU s per 100k events${r.ingest.kstreams.exactly_once_v2 ? `; exactly_once_v2: ${fmt(r.ingest.kstreams.exactly_once_v2.eps)} events/s` : ''}`
        : (r.ingest.kstreams?.skipped ?? ''),
    ],
    [
      '(d) freshness, produce → visible in GET /top-posts',
      `p50 ${r.freshness_ms.p50} ms, p99 ${r.freshness_ms.p99} ms`,
      `at ${fmt(r.freshness_ms.rate_eps)} events/s${asked(r.freshness_ms)}, ${r.freshness_ms.probes} probes`,
    ],
    [
      '(d) freshness at a quarter of (b)',
      `p50 ${r.freshness_ms.at_quarter_rate.p50} ms, p99 ${r.freshness_ms.at_quarter_rate.p99} ms`,
      `at ${fmt(r.freshness_ms.at_quarter_rate.rate_eps)} events/s${asked(r.freshness_ms.at_quarter_rate)}, ${r.freshness_ms.at_quarter_rate.probes} probes`,
    ],
    [
      '(e) GET /top-posts (autocannon, 16 connections)',
      `${fmt(r.api.rps)} req/s, p50 ${r.api.p50_ms} ms, p99 ${r.api.p99_ms} ms`,
      `${r.api.body_bytes}-byte answers${r.api.cpu_us_per_request === undefined ? '' : `; ${r.api.cpu_us_per_request} CPU µs per request (the API processes)`}`,
    ],
    [
      '(e) GET /top-posts at a steady 2,000 req/s',
      `p50 ${r.api.at_2000_rps.p50_ms} ms, p99 ${r.api.at_2000_rps.p99_ms} ms`,
      `median of 3 runs by p99 (${r.api.at_2000_rps.p99_runs_ms.join(', ')} ms); evenly spaced requests, each timed from when it was due`,
    ],
    [
      '(e) limit: bare Express, constant body of the same size',
      `${fmt(r.api.limit_rps)} req/s, p50 ${r.api.limit_p50_ms} ms, p99 ${r.api.limit_p99_ms} ms`,
      `same worker count${r.api.limit_cpu_us_per_request === undefined ? '' : `; ${r.api.limit_cpu_us_per_request} CPU µs per request`}`,
    ],
    [
      '(e) limit at a steady 2,000 req/s',
      `p50 ${r.api.limit_at_2000_rps.p50_ms} ms, p99 ${r.api.limit_at_2000_rps.p99_ms} ms`,
      `beside the runtime, on the same cores (${r.api.limit_at_2000_rps.p99_runs_ms.join(', ')} ms)`,
    ],
    ...Object.values(r.memory).map((m): [string, string, string] => [
      `(f) memory, ${m.mode} mode, ${fmt(m.distinct)} distinct posts, ${fmt(m.events)} events`,
      `Redis +${mib(m.redis_used_bytes)}; worker RSS ${mib(m.worker_rss_bytes)}${m.lifecycle_rss_bytes ? ` (lifecycle process ${mib(m.lifecycle_rss_bytes)})` : ''}`,
      `exact top-k ${mib(m.exact_topk_bytes)}, bounded top-k ${(m.bounded_topk_bytes / 1024).toFixed(1)} KiB, windows ${mib(m.window_bytes)}, dedup ${mib(m.dedup_bytes)}; longest script ${fmt(m.longest_script_ms)} ms${m.longest_script ? ` (${m.longest_script})` : ''}${
        m.next_scripts?.length ? `, then ${m.next_scripts.map((n) => `${fmt(n.ms)} (${n.script})`).join(', ')}` : ''
      }${m.scripts_over_50ms !== undefined ? `; ${m.scripts_over_50ms} call(s) over 50 ms` : ''}`,
    ]),
    ['(g) scaling', `1 worker ${fmt(r.scaling.workers_1_eps)}, 2 workers ${fmt(r.scaling.workers_2_eps)} events/s`, `×${r.scaling.speedup}`],
    ...(r.soak
      ? (['exact', 'bounded'] as const).map((m): [string, string, string] => {
          const so = r.soak![m];
          return [
            `(s) soak, ${m} mode: ${fmt(so.rate_eps)} events/s for ${so.minutes} min, new posts throughout`,
            `Redis max/min ${so.redis_used_bytes_ratio}, worker heap max/min ${so.worker_heap_ratio} (second half)`,
            `Redis ${mib(Math.min(...so.samples.map((x) => x[1])))} – ${mib(Math.max(...so.samples.map((x) => x[1])))}, heap ${mib(Math.min(...so.samples.map((x) => x[2])))} – ${mib(Math.max(...so.samples.map((x) => x[2])))} over the whole run`,
          ];
        })
      : []),
  ];
  return [
    `# Benchmark ${r.smoke ? '(smoke) ' : ''}— ${r.when}`,
    '',
    `${r.machine.cpus} cores (${r.machine.model}), ${r.machine.mem_gib} GiB, Node ${r.machine.node}; Kafka, Redis, Cassandra and Temporal on the same machine. ${fmt(r.events)} pre-loaded events; the run took ${r.seconds} s.`,
    '',
    '| measure | figure | note |',
    '| --- | --- | --- |',
    ...rows.map((x) => `| ${x.join(' | ')} |`),
    '',
    '| ratio | value |',
    '| --- | --- |',
    ...Object.entries(rs).map(([k, v]) => `| ${k} | ${v} |`),
    '',
    ...(r.steal_pct
      ? [
          `Steal by phase (the share of the machine's CPU time the hypervisor took while it ran): ${Object.entries(r.steal_pct)
            .map(([k, v]) => `${k} ${v} %`)
            .join(', ')}.`,
          '',
        ]
      : []),
  ].join('\n');
}

/** Two horizontal bar groups: ingest events/s and API requests/s, each against its limit. */
function svg(r: BenchResults): string {
  const groups: { title: string; unit: string; bars: [string, number][] }[] = [
    {
      title: 'Ingest (events/s)',
      unit: 'events/s',
      bars: [
        ['limit: kafkajs + JSON.parse', r.ingest.limit_eps],
        ['ours, 2 workers', r.scaling.workers_2_eps],
        ['ours, 1 worker', r.scaling.workers_1_eps],
        ...(Number.isFinite(r.ingest.kstreams_eps) ? ([['Kafka Streams (same job)', r.ingest.kstreams_eps]] as [string, number][]) : []),
        ['naive, pipelined', r.ingest.naive_pipelined_eps],
        ['naive, 1 round trip per event', r.ingest.naive_eps],
      ],
    },
    {
      title: 'GET /top-posts (requests/s)',
      unit: 'req/s',
      bars: [
        ['limit: bare Express', r.api.limit_rps],
        ['ours', r.api.rps],
      ],
    },
  ];
  const W = 760;
  const labelW = 230;
  const barH = 22;
  let y = 30;
  const parts: string[] = [];
  for (const g of groups) {
    const max = Math.max(...g.bars.map((b) => b[1]));
    parts.push(`<text x="10" y="${y}" font-weight="bold">${g.title}</text>`);
    y += 10;
    for (const [label, v] of g.bars) {
      const w = Math.max(1, ((W - labelW - 110) * v) / max);
      parts.push(`<text x="10" y="${y + 16}">${label}</text>`);
      parts.push(
        `<rect x="${labelW}" y="${y + 2}" width="${w.toFixed(1)}" height="${barH - 4}" fill="${label.startsWith('limit') ? '#999' : label.startsWith('ours') ? '#2a7' : '#c63'}"/>`,
      );
      parts.push(`<text x="${labelW + w + 6}" y="${y + 16}">${fmt(v)}</text>`);
      y += barH;
    }
    y += 24;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" font-family="sans-serif" font-size="13">\n<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`;
}

/** The soak's samples: Redis used_memory and the workers' heap over time, per mode (lines). */
function soakSvg(soak: NonNullable<BenchResults['soak']>): string {
  const W = 760;
  const H = 220;
  const pad = { l: 60, r: 150, t: 30, b: 30 };
  const series: { label: string; color: string; pts: [number, number][] }[] = [];
  for (const mode of ['exact', 'bounded'] as const) {
    series.push({ label: `${mode}: Redis`, color: '#2a7', pts: soak[mode].samples.map((x) => [x[0], x[1] / 2 ** 20]) });
    series.push({ label: `${mode}: worker heap`, color: '#36c', pts: soak[mode].samples.map((x) => [x[0], x[2] / 2 ** 20]) });
  }
  const maxX = Math.max(1, ...series.flatMap((x) => x.pts.map((p) => p[0])));
  const maxY = Math.max(1, ...series.flatMap((x) => x.pts.map((p) => p[1]).filter(Number.isFinite)));
  const X = (v: number) => pad.l + ((W - pad.l - pad.r) * v) / maxX;
  const Y = (v: number) => H - pad.b - ((H - pad.t - pad.b) * v) / maxY;
  const lines = series.map((x, i) => {
    const dash = i >= 2 ? ' stroke-dasharray="6 4"' : '';
    const d = x.pts
      .filter((p) => Number.isFinite(p[1]))
      .map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`)
      .join(' ');
    return `<polyline fill="none" stroke="${x.color}" stroke-width="2"${dash} points="${d}"/><text x="${W - pad.r + 8}" y="${pad.t + 16 * i + 10}" fill="${x.color}">${x.label}</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="18" font-weight="bold">Soak: memory over time (MiB; solid exact mode, dashed bounded mode)</text>
<line x1="${pad.l}" y1="${H - pad.b}" x2="${W - pad.r}" y2="${H - pad.b}" stroke="#999"/><line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${H - pad.b}" stroke="#999"/>
<text x="${pad.l - 6}" y="${pad.t + 4}" text-anchor="end">${maxY.toFixed(0)}</text><text x="${pad.l - 6}" y="${H - pad.b}" text-anchor="end">0</text>
<text x="${W - pad.r}" y="${H - 10}" text-anchor="end">${Math.round(maxX / 60)} min</text>
${lines.join('\n')}
</svg>
`;
}

export function writeReport(r: BenchResults, dir: string, name: string): Record<string, string> {
  fs.mkdirSync(dir, { recursive: true });
  const rs = ratios(r);
  fs.writeFileSync(path.join(dir, `${name}.json`), `${JSON.stringify({ ...r, ratios: rs }, null, 2)}\n`);
  if (r.soak) fs.writeFileSync(path.join(dir, `${name}-soak.svg`), soakSvg(r.soak));
  fs.writeFileSync(path.join(dir, `${name}.md`), markdown(r, rs));
  fs.writeFileSync(path.join(dir, `${name}.svg`), svg(r));
  return rs;
}
