/**
 * The one place that reads the environment. Every setting has a documented default;
 * a bad value fails at start with an error naming the variable.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { MAX_SESSION_SPECS, MAX_TUMBLING_SPECS, WINDOW_KEY_GRACE_MS } from './keys';
import { readSecrets, SERVER_USERS, type CassandraRole, type KafkaRole, type PartialSecrets, type RedisRole } from './secrets';

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function str(env: Env, name: string, fallback: string): string {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  return v;
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(name, `expected an integer, got "${raw}"`);
  const n = Number(raw.trim());
  if (n < min || n > max) throw new ConfigError(name, `expected an integer in ${min}..${max}, got ${n}`);
  return n;
}

const port = (env: Env, name: string, fallback: number) => int(env, name, fallback, 1, 65535);

/**
 * The ports a browser and Node's fetch refuse to connect to (the Fetch standard's "bad ports"):
 * a page or a probe served on one could never be reached.
 */
export const FETCH_BAD_PORTS: ReadonlySet<number> = new Set([
  1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137,
  139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049,
  3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
]);

/** A port served over HTTP to browsers and fetch (the API, the Temporal UI, Prometheus): not one they refuse. */
function httpPort(env: Env, name: string, fallback: number): number {
  const p = port(env, name, fallback);
  if (FETCH_BAD_PORTS.has(p))
    throw new ConfigError(name, `port ${p} is one browsers and fetch refuse to connect to (the Fetch standard's bad ports): choose another`);
  return p;
}

function identifier(env: Env, name: string, fallback: string, pattern: RegExp, what: string): string {
  const v = str(env, name, fallback);
  if (!pattern.test(v)) throw new ConfigError(name, `expected ${what}, got "${v}"`);
  return v;
}

const TOPIC = /^[A-Za-z0-9._-]{1,200}$/;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `500ms`, `30s`, `5m`, `1h`, `7d` into milliseconds; undefined if malformed. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[1]) * UNIT_MS[m[2]];
  return n > 0 ? n : undefined;
}

/** HH_EVENT_MAX_AHEAD's default (also the region actor's, where no config is passed). */
export const EVENT_MAX_AHEAD_DEFAULT = '5m';

function duration(env: Env, name: string, fallback: string): number {
  const v = str(env, name, fallback);
  const ms = parseDuration(v);
  if (ms === undefined) throw new ConfigError(name, `expected a duration such as 30s, 5m, 1h or 2d, got "${v}"`);
  return ms;
}

function checkpointOn(env: Env): 'loop' | 'thread' {
  const v = str(env, 'HH_CHECKPOINT_ON', 'loop');
  if (v !== 'loop' && v !== 'thread') throw new ConfigError('HH_CHECKPOINT_ON', `must be loop or thread, got "${v}"`);
  return v;
}

/** `exact`: every post counted; `bounded`: Space-Saving leaderboards of HH_TOPK_BOUNDED_K posts (HH_TOPK_MODE). */
export type TopKMode = 'exact' | 'bounded';

function topkMode(env: Env, sessions: readonly SessionSpec[]): TopKMode {
  const v = str(env, 'HH_TOPK_MODE', 'exact');
  if (v !== 'exact' && v !== 'bounded') throw new ConfigError('HH_TOPK_MODE', `must be exact or bounded, got "${v}"`);
  if (v === 'bounded' && sessions.length)
    throw new ConfigError('HH_TOPK_MODE', 'bounded mode keeps no session buckets: remove the gap<duration> entries from HH_WINDOWS');
  return v;
}

function adminToken(env: Env, secrets: PartialSecrets): string | undefined {
  const v = env.HH_ADMIN_TOKEN ?? secrets.admin_token;
  if (v === undefined || v === '') return undefined;
  if (v.length < 16) throw new ConfigError('HH_ADMIN_TOKEN', 'must be at least 16 characters');
  return v;
}

function producerKeys(env: Env, secrets: PartialSecrets): readonly string[] {
  const v = env.HH_PRODUCER_KEYS ?? secrets.producer_key ?? '';
  const keys = v
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  for (const k of keys) if (k.length < 16) throw new ConfigError('HH_PRODUCER_KEYS', 'each key must be at least 16 characters');
  return keys;
}

/** A server user: its name and password (undefined before `stack:up` made the secrets file). */
export interface ServerLogin {
  readonly user: string;
  readonly password: string | undefined;
}

/**
 * Each server's users by role: the name from SERVER_USERS, the password from
 * HH_<SERVER>_PASSWORD_<ROLE> (e.g. HH_REDIS_PASSWORD_API), else the stack's secrets file.
 */
function logins<R extends string>(env: Env, server: 'redis' | 'kafka' | 'cassandra', users: Record<R, string>, have: Partial<Record<R, string>> | undefined) {
  return Object.fromEntries(
    (Object.keys(users) as R[]).map((role) => {
      const v = env[`HH_${server.toUpperCase()}_PASSWORD_${role.toUpperCase()}`] ?? have?.[role];
      return [role, { user: users[role], password: v === '' ? undefined : v }];
    }),
  ) as Record<R, ServerLogin>;
}

function temporalTls(env: Env): Config['temporal']['tls'] {
  const [certPath, keyPath, caPath, serverName] = ['HH_TEMPORAL_TLS_CERT', 'HH_TEMPORAL_TLS_KEY', 'HH_TEMPORAL_TLS_CA', 'HH_TEMPORAL_TLS_SERVER_NAME'].map(
    (n) => env[n] || undefined,
  );
  if (!certPath && !keyPath && !caPath && !serverName) return undefined;
  if (!certPath !== !keyPath) throw new ConfigError(certPath ? 'HH_TEMPORAL_TLS_KEY' : 'HH_TEMPORAL_TLS_CERT', 'mTLS needs both the certificate and its key');
  return { certPath, keyPath, caPath, serverName };
}

export type RateLimitAlgorithm = 'token-bucket' | 'fixed-window' | 'sliding-window';
export type RateLimitSettings =
  | { readonly algorithm: 'off' }
  | { readonly algorithm: 'token-bucket'; readonly ratePerSecond: number; readonly burst: number }
  | { readonly algorithm: 'fixed-window' | 'sliding-window'; readonly perWindow: number; readonly windowMs: number };

function rateLimit(env: Env): RateLimitSettings {
  const algorithm = str(env, 'HH_RATE_LIMIT', 'token-bucket');
  if (algorithm === 'off') return { algorithm };
  const rps = int(env, 'HH_RATE_LIMIT_RPS', 500, 1, 100_000_000);
  if (algorithm === 'token-bucket') return { algorithm, ratePerSecond: rps, burst: int(env, 'HH_RATE_LIMIT_BURST', 2 * rps, 1, 1_000_000_000) };
  if (algorithm === 'fixed-window' || algorithm === 'sliding-window') {
    const windowMs = duration(env, 'HH_RATE_LIMIT_WINDOW', '1s');
    return { algorithm, windowMs, perWindow: Math.max(1, Math.round((rps * windowMs) / 1000)) };
  }
  throw new ConfigError('HH_RATE_LIMIT', `must be token-bucket, fixed-window, sliding-window or off, got "${algorithm}"`);
}

export interface WindowSpec {
  /** The spec's name, as written in HH_WINDOWS and in window ids (e.g. `5m`). */
  readonly name: string;
  readonly sizeMs: number;
  /** Events up to this late (event time behind the watermark) still update a closed window. */
  readonly latenessMs: number;
  /** How long a window's Redis key lives after the window ends. */
  readonly ttlMs: number;
}

/** How long a window's key outlives its TTL (keys.ts, where the workflows read it too). */
export { WINDOW_KEY_GRACE_MS };

/** When a tumbling window's Redis key (and its record entries) expire: its TTL after its end, plus the grace. */
export const windowKeyExpireAt = (spec: WindowSpec, start: number): number => start + spec.sizeMs + spec.ttlMs + WINDOW_KEY_GRACE_MS;

/**
 * A sliding window spec `<size>@<slide>`: windows [s, s + size) for every s on the slide
 * grid, each the sum of the tumbling windows of its `pane` spec (size = the slide) it covers.
 */
export interface SlidingSpec extends WindowSpec {
  readonly slideMs: number;
  /** The tumbling spec whose windows are its panes. */
  readonly pane: string;
}

/**
 * A session window spec `gap<duration>`: per region, a maximal run of event-time buckets
 * holding events, where each bucket follows the previous one within the gap. Buckets are
 * 1/30 of the gap (at least 1 s); a session is sealed once the watermark is a gap plus the
 * allowed lateness past its end.
 */
export interface SessionSpec {
  readonly name: string;
  readonly gapMs: number;
  readonly bucketMs: number;
  readonly latenessMs: number;
  readonly ttlMs: number;
}

/**
 * The pane of a spec's trailing timeframe: 1/60 of its size (at least 1 s; the whole size
 * when 1 s does not divide it), so `timeframe=1h` moves in 1-minute steps.
 */
export function trailingPaneMs(sizeMs: number): number {
  const pane = Math.floor(sizeMs / 60);
  if (pane >= 1000 && sizeMs % pane === 0) return pane;
  return sizeMs % 1000 === 0 ? 1000 : sizeMs;
}

/**
 * How each spec's trailing panes are built. `source`: the index of the spec whose panes a pane
 * of this spec is summed from, or -1 when flushes write it. A spec's source is the spec with the
 * coarsest pane that divides its pane among those that keep their panes at least that long
 * (size ≥ its pane), so flushes write only the finest panes and each coarser pane is summed
 * once, when the watermark passes it (src/store/trailing.lua's roll). `ttlMs`: how long a pane lives
 * after its last write when no move reaches it (a region gone quiet): twice its size of
 * wall-clock time, and at least as long as any pane summed from it.
 */
export function paneChain(windows: readonly WindowSpec[]): { source: number; ttlMs: number }[] {
  const pane = windows.map((w) => trailingPaneMs(w.sizeMs));
  const source = windows.map((_, k) => {
    let best = -1;
    for (let j = 0; j < windows.length; j++) {
      const fits = pane[j] < pane[k] && pane[k] % pane[j] === 0 && windows[j].sizeMs >= pane[k];
      if (fits && (best < 0 || pane[j] > pane[best])) best = j;
    }
    return best;
  });
  const ttl = windows.map((w, k) => 2 * w.sizeMs + pane[k]);
  // A source outlives every pane summed from it, up its chain (sources have finer panes: coarse first).
  const order = windows.map((_, k) => k).sort((a, b) => pane[b] - pane[a]);
  for (const k of order) if (source[k] >= 0) ttl[source[k]] = Math.max(ttl[source[k]], ttl[k]);
  return windows.map((_, k) => ({ source: source[k], ttlMs: ttl[k] }));
}

/**
 * Which tumbling specs are rolled up from the finest one (exact mode): per spec, the index of
 * the spec whose windows it is summed from, or -1 when flushes write it. A coarser spec is
 * rolled when its size is a multiple of the finest spec's and it allows at least as much
 * lateness: a window of the finest spec (a child), once FINAL, is added page by page into
 * the window of each rolled spec that holds it (src/store/window-roll.lua), so a flush writes
 * one window key per event instead of one per spec. Until then a rolled window's count is its
 * key plus the children not yet rolled (src/store/window-sources.ts). Bounded mode keeps its
 * Space-Saving leaderboard per window key: nothing is rolled.
 */
export function rollChain(windows: readonly WindowSpec[], mode: TopKMode = 'exact'): number[] {
  if (mode !== 'exact' || windows.length === 0) return windows.map(() => -1);
  let f = 0;
  for (let k = 1; k < windows.length; k++) if (windows[k].sizeMs < windows[f].sizeMs) f = k;
  const F = windows[f];
  return windows.map((w, k) => (k !== f && w.sizeMs % F.sizeMs === 0 && w.latenessMs >= F.latenessMs ? f : -1));
}

/**
 * HH_WINDOWS entries: tumbling `size[/allowed lateness[/ttl]]`, sliding
 * `size@slide[/allowed lateness[/ttl]]` and session `gap<duration>[/allowed lateness[/ttl]]`,
 * ttl counted from the window's end.
 */
export const DEFAULT_WINDOWS = '1m/10s/1h,5m/30s/2h,1h/5m/1d,24h/30m/8d,5m@1m';

function windows(env: Env): { tumbling: WindowSpec[]; sliding: SlidingSpec[]; sessions: SessionSpec[] } {
  const raw = str(env, 'HH_WINDOWS', DEFAULT_WINDOWS);
  const entries = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const out: WindowSpec[] = [];
  const slides: { entry: string; name: string; sizeMs: number; slideMs: number; lateness?: string; ttl?: string }[] = [];
  const sessions: SessionSpec[] = [];
  for (const entry of entries) {
    const [name, lateness, ttl] = entry.split('/');
    if (name.startsWith('gap')) {
      const gapMs = parseDuration(name.slice(3));
      if (gapMs === undefined || gapMs < 1000 || gapMs % 1000 !== 0)
        throw new ConfigError('HH_WINDOWS', `"${entry}": a session window is gap<duration> of whole seconds, e.g. gap30s`);
      if (sessions.some((x) => x.name === name)) throw new ConfigError('HH_WINDOWS', `"${name}" is listed twice`);
      const bucket = Math.floor(gapMs / 30 / 1000) * 1000;
      const bucketMs = bucket >= 1000 && gapMs % bucket === 0 ? bucket : 1000;
      const latenessMs = lateness === undefined || lateness === '' ? 0 : lateness === '0' ? 0 : parseDuration(lateness);
      if (latenessMs === undefined || latenessMs % 1000 !== 0)
        throw new ConfigError('HH_WINDOWS', `"${entry}": allowed lateness must be whole seconds, such as 30s`);
      const ttlMs = ttl === undefined ? Math.max(2 * gapMs, 3_600_000) : parseDuration(ttl);
      if (ttlMs === undefined || ttlMs <= latenessMs)
        throw new ConfigError('HH_WINDOWS', `"${entry}": the ttl must be a duration longer than the allowed lateness`);
      sessions.push({ name, gapMs, bucketMs, latenessMs, ttlMs });
      continue;
    }
    if (name.includes('@')) {
      const [size, slide] = name.split('@');
      const sizeMs = parseDuration(size);
      const slideMs = parseDuration(slide);
      if (sizeMs === undefined || slideMs === undefined || sizeMs <= slideMs || sizeMs % slideMs !== 0) {
        throw new ConfigError('HH_WINDOWS', `"${entry}": a sliding window is <size>@<slide> with the size a multiple (> 1) of the slide, e.g. 5m@1m`);
      }
      if (slides.some((x) => x.name === name)) throw new ConfigError('HH_WINDOWS', `"${name}" is listed twice`);
      slides.push({ entry, name, sizeMs, slideMs, lateness, ttl });
      continue;
    }
    const sizeMs = parseDuration(name);
    if (sizeMs === undefined || sizeMs < 1000) throw new ConfigError('HH_WINDOWS', `"${name}" is not a window size of at least 1s (e.g. 1m,5m,1h,24h)`);
    if (86_400_000 % sizeMs !== 0 && sizeMs % 86_400_000 !== 0)
      throw new ConfigError('HH_WINDOWS', `"${name}" must divide a day evenly (or be whole days), so windows align`);
    if (out.some((w) => w.sizeMs === sizeMs)) throw new ConfigError('HH_WINDOWS', `"${name}" is listed twice`);
    const latenessMs = lateness === undefined ? Math.min(sizeMs, 60_000) / 6 : lateness === '0' ? 0 : parseDuration(lateness);
    if (latenessMs === undefined || latenessMs > sizeMs * 10)
      throw new ConfigError('HH_WINDOWS', `"${entry}": allowed lateness must be a duration such as 30s, at most 10 window sizes`);
    const ttlMs = ttl === undefined ? Math.max(2 * sizeMs, 600_000) : parseDuration(ttl);
    if (ttlMs === undefined || ttlMs <= latenessMs)
      throw new ConfigError('HH_WINDOWS', `"${entry}": the ttl must be a duration longer than the allowed lateness`);
    out.push({ name, sizeMs, latenessMs, ttlMs });
  }
  if (out.length > MAX_TUMBLING_SPECS) throw new ConfigError('HH_WINDOWS', `at most ${MAX_TUMBLING_SPECS} tumbling window specs`);
  if (sessions.length > MAX_SESSION_SPECS) throw new ConfigError('HH_WINDOWS', `at most ${MAX_SESSION_SPECS} session window specs`);
  const sliding = slides.map(({ entry, name, sizeMs, slideMs, lateness, ttl }): SlidingSpec => {
    // Panes: the tumbling windows of the slide's size; they must outlive the sliding window's final assembly.
    const pane = out.find((w) => w.sizeMs === slideMs);
    if (!pane) throw new ConfigError('HH_WINDOWS', `"${entry}": the sliding window needs a tumbling window of its slide's size in HH_WINDOWS (its panes)`);
    const latenessMs = lateness === undefined || lateness === '' ? pane.latenessMs : lateness === '0' ? 0 : parseDuration(lateness);
    if (latenessMs === undefined || latenessMs < pane.latenessMs) {
      throw new ConfigError('HH_WINDOWS', `"${entry}": the allowed lateness must be a duration of at least its panes' (${pane.name}: ${pane.latenessMs} ms)`);
    }
    if (pane.ttlMs < sizeMs + latenessMs) {
      throw new ConfigError('HH_WINDOWS', `"${entry}": its panes (${pane.name}) must live at least size + lateness after they end; raise the ${pane.name} ttl`);
    }
    const ttlMs = ttl === undefined ? Math.max(2 * sizeMs, 600_000) : parseDuration(ttl);
    if (ttlMs === undefined || ttlMs <= latenessMs)
      throw new ConfigError('HH_WINDOWS', `"${entry}": the ttl must be a duration longer than the allowed lateness`);
    return { name, sizeMs, slideMs, latenessMs, ttlMs, pane: pane.name };
  });
  return { tumbling: out, sliding, sessions };
}

export interface Config {
  /** Every service binds to this host only. */
  readonly host: string;
  readonly redis: {
    /** HH_REDIS_PORT. @default 6379 */
    readonly port: number;
    /** HH_REDIS_DB: the logical database (tests use their own). @default 0 */
    readonly db: number;
  };
  readonly kafka: {
    /** HH_KAFKA_PORT (broker listener). @default 9092 */
    readonly port: number;
    /** HH_KAFKA_CONTROLLER_PORT (KRaft controller listener). @default 9093 */
    readonly controllerPort: number;
    /** HH_KAFKA_TOPIC: the event log, keyed by region. @default views */
    readonly topic: string;
    /** HH_KAFKA_PARTITIONS for the views topic (fixed once created). @default 8 — one per demo region, so one region's events stay ordered. */
    readonly partitions: number;
    /** HH_KAFKA_DLQ_TOPIC: rejected events with their reason in a header. @default views.dlq */
    readonly deadLetterTopic: string;
    /** HH_KAFKA_LATE_TOPIC: events later than their window's allowed lateness. @default views.late */
    readonly lateTopic: string;
    readonly brokers: readonly string[];
  };
  readonly cassandra: {
    /** HH_CASSANDRA_PORT (CQL native transport). @default 9042 */
    readonly port: number;
    /** HH_CASSANDRA_STORAGE_PORT (inter-node). @default 7000 */
    readonly storagePort: number;
    /** HH_CASSANDRA_KEYSPACE. @default heavy_hitters */
    readonly keyspace: string;
    /** HH_CASSANDRA_HEAP_MB. @default 1024 — enough for one node on a 2-core box shared with three other servers. */
    readonly heapMb: number;
    readonly localDataCenter: string;
  };
  readonly prometheus: {
    /** HH_PROMETHEUS_PORT: the Prometheus server `stack:up` runs (scrapes every runtime's /metrics, evaluates ops/prometheus/*.rules.yml). @default 9090 */
    readonly port: number;
  };
  /** The server users by role (see src/secrets.ts); never logged. */
  readonly credentials: {
    readonly redis: Readonly<Record<RedisRole, ServerLogin>>;
    readonly kafka: Readonly<Record<KafkaRole, ServerLogin>>;
    readonly cassandra: Readonly<Record<CassandraRole, ServerLogin>>;
  };
  readonly temporal: {
    /** HH_TEMPORAL_PORT (frontend gRPC). @default 7233 */
    readonly port: number;
    /** HH_TEMPORAL_UI_PORT (Web UI). @default 8233 */
    readonly uiPort: number;
    /** HH_TEMPORAL_NAMESPACE. @default default */
    readonly namespace: string;
    /** HH_TEMPORAL_TASK_QUEUE. @default heavy-hitters */
    readonly taskQueue: string;
    readonly address: string;
    /**
     * The dev server the stack runs has no authorization; against a secured server set
     * HH_TEMPORAL_API_KEY (Temporal Cloud style) and/or mTLS: HH_TEMPORAL_TLS_CERT and
     * HH_TEMPORAL_TLS_KEY (the client's PEM pair), HH_TEMPORAL_TLS_CA (the server's root
     * CA), HH_TEMPORAL_TLS_SERVER_NAME; HH_TEMPORAL_ADDRESS points at it. All clients of the
     * project connect through src/clients.ts with these. @default none (plain gRPC on loopback)
     */
    readonly apiKey: string | undefined;
    readonly tls:
      | {
          readonly certPath: string | undefined;
          readonly keyPath: string | undefined;
          readonly caPath: string | undefined;
          readonly serverName: string | undefined;
        }
      | undefined;
  };
  readonly api: {
    /** HH_API_PORT. @default 3000 */
    readonly port: number;
    /** HH_API_MAX_K: the largest k a query may ask for. @default 1000 */
    readonly maxK: number;
    /** HH_POST_EVENTS_MAX: the most events one POST /events may carry. @default 5000 — about 600 KB, within the body limit. */
    readonly maxPostEvents: number;
    /** HH_API_MAX_BODY_BYTES: the largest request body. @default 1048576 (1 MiB) — a body is parsed whole, in one worker. */
    readonly maxBodyBytes: number;
    /** HH_ADMIN_TOKEN: bearer token of the /admin endpoints; unset = admin endpoints refuse. @default the stack's secrets file (admin_token), else unset */
    readonly adminToken: string | undefined;
    /**
     * HH_PRODUCER_KEYS: bearer keys (comma-separated, 16+ characters) that may POST /events;
     * none = the endpoint refuses. @default the stack's secrets file (producer_key)
     */
    readonly producerKeys: readonly string[];
    /**
     * HH_RATE_LIMIT (token-bucket | fixed-window | sliding-window | off), HH_RATE_LIMIT_RPS
     * (sustained requests/s per client), HH_RATE_LIMIT_BURST (bucket size), HH_RATE_LIMIT_WINDOW
     * (the windows' length; each allows RPS × window requests). Per client: a valid producer
     * key or admin token, else the peer address. Kept in Redis; /healthz and /metrics are not limited.
     * @default token-bucket, 500/s, burst 1000, window 1s
     */
    readonly rateLimit: RateLimitSettings;
    /**
     * HH_API_CACHE_MS: a GET /top-posts answer is reused this long (identical requests in
     * flight always share one read). @default 50 — adds at most 50 ms to freshness.
     */
    readonly cacheMs: number;
  };
  readonly ingest: {
    /** HH_KAFKA_GROUP: the consumer group of the ingest activities. @default heavy-hitters-ingest */
    readonly groupId: string;
    /** HH_WINDOWS: tumbling windows `size[/allowed lateness[/ttl]]` (each also a trailing timeframe). @default 1m/10s/1h,5m/30s/2h,1h/5m/1d,24h/30m/8d,5m@1m */
    readonly windows: readonly WindowSpec[];
    /** HH_WINDOWS entries `size@slide[/allowed lateness[/ttl]]`: sliding windows over the tumbling windows of the slide's size. */
    readonly sliding: readonly SlidingSpec[];
    /** HH_WINDOWS entries `gap<duration>[/allowed lateness[/ttl]]`: session windows per region. */
    readonly sessions: readonly SessionSpec[];
    /** HH_TOPK_BOUNDED_K: members kept in the bounded Top-K key. @default 1000 — covers every k the API allows. */
    readonly boundedK: number;
    /**
     * HH_TOPK_MODE: `exact` keeps every post's count (exact leaderboards, windows, trailing
     * timeframes, sessions, plus the bounded key); `bounded` keeps at most HH_TOPK_BOUNDED_K
     * posts per leaderboard (all-time and each window) with Space-Saving counts — memory
     * independent of the number of distinct posts, counts estimated (never under, over by at
     * most the evicted minimum); no trailing timeframes or sessions. @default exact
     */
    readonly mode: TopKMode;
    /**
     * HH_DEDUP_HORIZON: event_ids are remembered, by processing time, for at least this long
     * (and at most one slice longer): a re-send within it is not counted again; one after it is.
     * @default 10m — producers re-send within seconds (a retry, a restart); the memory of the
     * ids is bounded by the events of one horizon and a slice, never by the stream's whole life.
     */
    readonly dedupHorizonMs: number;
    /**
     * HH_DEDUP_SLICES: the horizon is evicted in this many time slices (each a list of its ids),
     * so remembered ids stay within (slices + 1) / slices of one horizon's worth.
     * @default 20
     */
    readonly dedupSlices: number;
    /**
     * HH_FLUSH_MAX_EVENTS, HH_FLUSH_MAX_POSTS: the most one region flush (one atomic script
     * call) takes, in events and in distinct posts: what bounds how long a flush holds Redis.
     * @default FLUSH_DEFAULTS
     */
    readonly flushMaxEvents: number;
    readonly flushMaxPosts: number;
    /**
     * HH_FLUSH_TARGET_MS: how long one region flush script may hold Redis; each flush is sized
     * from what the last ones took (src/actors/flush-budget.ts). 0: the fixed limits only.
     * @default FLUSH_DEFAULTS.targetMs
     */
    readonly flushTargetMs: number;
    /**
     * HH_EVENT_MAX_AGE: an event stamped earlier than the clock minus this is dead-lettered.
     * @default 7d — the longest default window (24h) with its ttl; older data is a replay of
     * another system, not a view to count.
     */
    readonly maxAgeMs: number;
    /**
     * HH_EVENT_MAX_AHEAD: an event stamped later than the clock plus this is dead-lettered.
     * @default 5m — covers producers' clock skew; one event far in the future must not move
     * its partition's watermark (watermarks never pass the clock either).
     */
    readonly maxAheadMs: number;
    /** HH_INGEST_HEARTBEAT_TIMEOUT: a silent ingest activity is retried after this. @default 20s */
    readonly heartbeatTimeoutMs: number;
    /**
     * HH_INGEST_STALL: an ingest member whose batch (or resume) stays pending this long while
     * Redis answers, or that fetches nothing for a partition with records waiting, has
     * stalled: it logs what it holds and its process restarts (src/ingest/stall.ts).
     * @default 2m — far beyond any flush; time with Redis unreachable or under backpressure does not count.
     */
    readonly stallMs: number;
    /** HH_WINDOW_OVERDUE: a window still not FINAL this long after its end plus lateness counts as overdue (hh_windows_overdue, an alert). @default 5m */
    readonly windowOverdueMs: number;
    /** HH_WATERMARK_DELAY: the bounded out-of-orderness: watermark = max event time minus this. @default 5s */
    readonly watermarkDelayMs: number;
    /** HH_IDLE_TIMEOUT: a partition without events this long advances its watermark by processing time. @default 10s */
    readonly idleTimeoutMs: number;
    /** HH_WATERMARK_REPORT_INTERVAL: how often watermarks are signalled to the region coordinators (coalesced). @default 2s */
    readonly watermarkReportMs: number;
    /**
     * HH_BALANCE_CHECK_INTERVAL: how often the consumer group's leader compares the members'
     * shares of the topic's records with an assignment by load, and rejoins the group when
     * that would lighten the busiest member by more than a fifth, or when some partition of the
     * topic is held by no member (added since the join: kafkajs never notices) (src/ingest/assigner.ts).
     * @default 60s — a rebalance pauses every member while the group rebalances.
     */
    readonly balanceCheckMs: number;
    /**
     * HH_CHECKPOINT_INTERVAL: how often changed counts are checkpointed to Cassandra. @default 5s —
     * bounds the replay after a Redis loss; shorter intervals rewrite hot posts more often
     * (measured on 2 cores: 47,000 events/s at 2 s, 68,000 with checkpoints every 60 s).
     */
    readonly checkpointIntervalMs: number;
    /**
     * HH_CHECKPOINT_ON: where a worker writes its checkpoints. @default loop — on its own
     * event loop, where a round's batch encoding (0.5–1 s with the row-per-post record
     * before migration 006) holds every flush of the worker; `thread`: on a thread of its own
     * (src/runtime/checkpointer.ts), at a lower CPU priority. Measured before migration 006
     * and the API processes, in four adjacent pairs (README, Benchmarks): right after a
     * burst the API served 2.1–2.9× the requests in three pairs (0.88× in the fourth), but
     * the burst itself was ingested 19–42 % slower (the record keeps up during it instead
     * of after it).
     */
    readonly checkpointOn: 'loop' | 'thread';
  };
  readonly global: {
    /** HH_GLOBAL_K: entries of each global Top-K key (`region=global` answers k up to this). @default 100 */
    readonly k: number;
    /** HH_GLOBAL_MERGE_INTERVAL: how often the global merge workflow merges the key families that changed. @default 2s */
    readonly mergeIntervalMs: number;
  };
  readonly runtime: {
    /** HH_WORKERS: worker processes the cluster primary forks. @default the number of CPUs */
    readonly workers: number;
    /**
     * HH_API_PROCESSES: processes that serve only the API (GET /top-posts, /healthz, admin),
     * beside the ingest workers, so that an answer never waits behind a worker's flush or
     * checkpoint on its event loop. 0 = the ingest workers serve the API too. @default 1
     */
    readonly apiProcesses: number;
    /**
     * HH_API_NICE: the nice value of the API processes (lower runs first), so that on shared
     * cores an answer does not wait while the ingest workers of the same runtime (nice 0) use
     * them: a query is waited on by someone, a batch is not. A negative value needs the
     * privilege to raise priority (root or CAP_SYS_NICE); without it the processes run at 0
     * and the primary says so. Only with HH_API_PROCESSES > 0. @default -5
     */
    readonly apiNice: number;
    /**
     * HH_LIFECYCLE_PROCESSES: processes that run the Temporal workflows (region coordinators,
     * windows, the global merge, the ingest supervisors) and the window and merge activities,
     * beside the ingest workers, so that a window's persist or a merge never holds an ingest
     * worker's event loop between its flushes. 0 = the ingest workers run them too (the layout
     * before). @default 1
     */
    readonly lifecycleProcesses: number;
    /** HH_DEMO_RATE: events/s of the demo stream `npm start` produces. @default 200 */
    readonly demoRate: number;
    /** HH_PROFILE_DIR: when set, every worker process writes a V8 CPU profile there when it exits (`--cpu-prof`). @default unset */
    readonly profileDir: string | undefined;
    /**
     * HH_WORKER_HEAP_MB: each worker's V8 old-space limit (`--max-old-space-size`): V8 collects
     * before its heap grows past it, so a worker's RSS stays near it instead of growing with
     * the garbage of a fast stream. 0 = V8's own limit. @default 384 — the live heap is ~60 MB.
     */
    readonly workerHeapMb: number;
    /**
     * HH_WORKER_SEMI_SPACE_MB: the V8 young-generation semi-space (`--max-semi-space-size`) of
     * the ingest workers and the API processes. 0 = V8's default (16 MB). @default 32 — in (b) of the
     * bench a worker scavenged every ~70 ms for ~13 ms at 16 MB, every ~90-117 ms for ~5.5 ms at
     * 32 MB (README *Benchmarks*); 64 MB put a worker at 1,000,000 bounded posts over 512 MiB RSS.
     */
    readonly workerSemiSpaceMb: number;
    /**
     * HH_LIFECYCLE_SEMI_SPACE_MB: the lifecycle processes' young-generation semi-space. 0 = V8's
     * default (16 MB). @default 32 — at 16 MB a lifecycle process held less at 10,000 posts
     * (259 against 386 MiB) but more at 1,000,000 exact posts, where its window persists are
     * large (514 against 470: more promoted into the old space; README *Benchmarks*).
     */
    readonly lifecycleSemiSpaceMb: number;
    /**
     * HH_INGEST_JOIN_WAIT: at a start, the ingest workers join the consumer group together: the
     * first ready waits for the others at most this long (src/runtime/join-gate.ts); a worker
     * restarted beside ones that joined before joins at once.
     * @default 10s — a worker joining while the others read rebalances the group and everyone
     * stops meanwhile (in full bench runs the second worker's ingest started seconds late and
     * 10-33 % of the records were read twice).
     */
    readonly joinWaitMs: number;
  };
  readonly stack: {
    /** HH_STACK_DIR: data, logs and PID files of the local servers (git-ignored). @default <project>/.stack */
    readonly dir: string;
    /** HH_CACHE_DIR: downloaded jars and the built Temporal CLI, shared by every checkout. @default ~/.cache/heavy-hitters */
    readonly cacheDir: string;
  };
}

/** The most one region flush takes by default (HH_FLUSH_MAX_EVENTS, HH_FLUSH_MAX_POSTS). */
export const FLUSH_DEFAULTS = {
  /** Events per flush: bounds the ids the script checks and records. */
  maxEvents: 20_000,
  /**
   * Distinct posts per flush: bounds the leaderboard entries one script writes (about six
   * per post in exact mode: all-time, its minute, a pane, the trailing key, checkpoint
   * entries; the coarser windows are rolled up later), so a burst of new posts never
   * holds Redis for long (every other client waits meanwhile).
   */
  maxPosts: 2_000,
  /**
   * The time one flush script may hold Redis (every other client waits meanwhile), ms: the
   * actor sizes its flushes to it. Well under the 50 ms that counts as a stall, so a flush
   * stretched by a busy machine or a jump in cost still stays below it. With the budget
   * learning an event's and a post's cost apart, the bench's memory phases' longest scripts
   * were 26-48 ms and 32-55 ms in two runs at 20 ms, 27-36 ms in one at 15 (README, Benchmarks).
   */
  targetMs: 15,
} as const;

export const PROJECT_ROOT = path.resolve(__dirname, '..');

/** Builds the configuration from an environment; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const host = '127.0.0.1';
  const kafkaPort = port(env, 'HH_KAFKA_PORT', 9092);
  const temporalPort = port(env, 'HH_TEMPORAL_PORT', 7233);
  const specs = windows(env);
  const stackDir = path.resolve(str(env, 'HH_STACK_DIR', path.join(PROJECT_ROOT, '.stack')));
  const secrets = readSecrets(stackDir);
  const cfg: Config = {
    host,
    redis: { port: port(env, 'HH_REDIS_PORT', 6379), db: int(env, 'HH_REDIS_DB', 0, 0, 15) },
    kafka: {
      port: kafkaPort,
      controllerPort: port(env, 'HH_KAFKA_CONTROLLER_PORT', 9093),
      topic: identifier(env, 'HH_KAFKA_TOPIC', 'views', TOPIC, 'a Kafka topic name ([A-Za-z0-9._-])'),
      partitions: int(env, 'HH_KAFKA_PARTITIONS', 8, 1, 1024),
      deadLetterTopic: identifier(env, 'HH_KAFKA_DLQ_TOPIC', 'views.dlq', TOPIC, 'a Kafka topic name ([A-Za-z0-9._-])'),
      lateTopic: identifier(env, 'HH_KAFKA_LATE_TOPIC', 'views.late', TOPIC, 'a Kafka topic name ([A-Za-z0-9._-])'),
      brokers: [`${host}:${kafkaPort}`],
    },
    cassandra: {
      port: port(env, 'HH_CASSANDRA_PORT', 9042),
      storagePort: port(env, 'HH_CASSANDRA_STORAGE_PORT', 7000),
      keyspace: identifier(env, 'HH_CASSANDRA_KEYSPACE', 'heavy_hitters', /^[a-z][a-z0-9_]{0,47}$/, 'a CQL keyspace name ([a-z][a-z0-9_]*, at most 48)'),
      heapMb: int(env, 'HH_CASSANDRA_HEAP_MB', 1024, 256, 16384),
      localDataCenter: 'datacenter1',
    },
    prometheus: { port: httpPort(env, 'HH_PROMETHEUS_PORT', 9090) },
    credentials: {
      redis: logins(env, 'redis', SERVER_USERS.redis, secrets.redis),
      kafka: logins(env, 'kafka', SERVER_USERS.kafka, secrets.kafka),
      cassandra: logins(env, 'cassandra', SERVER_USERS.cassandra, secrets.cassandra),
    },
    temporal: {
      port: temporalPort,
      uiPort: httpPort(env, 'HH_TEMPORAL_UI_PORT', 8233),
      namespace: identifier(env, 'HH_TEMPORAL_NAMESPACE', 'default', /^[A-Za-z0-9._-]{2,200}$/, 'a Temporal namespace name'),
      taskQueue: identifier(env, 'HH_TEMPORAL_TASK_QUEUE', 'heavy-hitters', /^[A-Za-z0-9._:-]{1,200}$/, 'a task queue name'),
      address: str(env, 'HH_TEMPORAL_ADDRESS', `${host}:${temporalPort}`),
      apiKey: env.HH_TEMPORAL_API_KEY || undefined,
      tls: temporalTls(env),
    },
    api: {
      port: httpPort(env, 'HH_API_PORT', 3000),
      maxK: int(env, 'HH_API_MAX_K', 1000, 1, 100_000),
      maxPostEvents: int(env, 'HH_POST_EVENTS_MAX', 5_000, 1, 1_000_000),
      maxBodyBytes: int(env, 'HH_API_MAX_BODY_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
      adminToken: adminToken(env, secrets),
      producerKeys: producerKeys(env, secrets),
      rateLimit: rateLimit(env),
      cacheMs: int(env, 'HH_API_CACHE_MS', 50, 0, 60_000),
    },
    ingest: {
      groupId: identifier(env, 'HH_KAFKA_GROUP', 'heavy-hitters-ingest', /^[A-Za-z0-9._-]{1,200}$/, 'a consumer group id ([A-Za-z0-9._-])'),
      windows: specs.tumbling,
      sliding: specs.sliding,
      sessions: specs.sessions,
      boundedK: int(env, 'HH_TOPK_BOUNDED_K', 1000, 1, 1_000_000),
      mode: topkMode(env, specs.sessions),
      dedupHorizonMs: duration(env, 'HH_DEDUP_HORIZON', '10m'),
      dedupSlices: int(env, 'HH_DEDUP_SLICES', 20, 1, 1000),
      flushMaxEvents: int(env, 'HH_FLUSH_MAX_EVENTS', FLUSH_DEFAULTS.maxEvents, 1, 1_000_000),
      flushMaxPosts: int(env, 'HH_FLUSH_MAX_POSTS', FLUSH_DEFAULTS.maxPosts, 1, 1_000_000),
      flushTargetMs: int(env, 'HH_FLUSH_TARGET_MS', FLUSH_DEFAULTS.targetMs, 0, 10_000),
      maxAgeMs: duration(env, 'HH_EVENT_MAX_AGE', '7d'),
      maxAheadMs: duration(env, 'HH_EVENT_MAX_AHEAD', EVENT_MAX_AHEAD_DEFAULT),
      heartbeatTimeoutMs: duration(env, 'HH_INGEST_HEARTBEAT_TIMEOUT', '20s'),
      stallMs: duration(env, 'HH_INGEST_STALL', '2m'),
      checkpointIntervalMs: duration(env, 'HH_CHECKPOINT_INTERVAL', '5s'),
      checkpointOn: checkpointOn(env),
      watermarkDelayMs: duration(env, 'HH_WATERMARK_DELAY', '5s'),
      windowOverdueMs: duration(env, 'HH_WINDOW_OVERDUE', '5m'),
      idleTimeoutMs: duration(env, 'HH_IDLE_TIMEOUT', '10s'),
      watermarkReportMs: duration(env, 'HH_WATERMARK_REPORT_INTERVAL', '2s'),
      balanceCheckMs: duration(env, 'HH_BALANCE_CHECK_INTERVAL', '60s'),
    },
    global: { k: int(env, 'HH_GLOBAL_K', 100, 1, 10_000), mergeIntervalMs: duration(env, 'HH_GLOBAL_MERGE_INTERVAL', '2s') },
    runtime: {
      workers: int(env, 'HH_WORKERS', os.cpus().length, 1, 64),
      apiProcesses: int(env, 'HH_API_PROCESSES', 1, 0, 16),
      apiNice: int(env, 'HH_API_NICE', -5, -20, 19),
      lifecycleProcesses: int(env, 'HH_LIFECYCLE_PROCESSES', 1, 0, 4),
      demoRate: int(env, 'HH_DEMO_RATE', 200, 1, 1_000_000),
      profileDir: env.HH_PROFILE_DIR ? path.resolve(env.HH_PROFILE_DIR) : undefined,
      workerHeapMb: int(env, 'HH_WORKER_HEAP_MB', 384, 0, 65_536),
      workerSemiSpaceMb: int(env, 'HH_WORKER_SEMI_SPACE_MB', 32, 0, 1024),
      lifecycleSemiSpaceMb: int(env, 'HH_LIFECYCLE_SEMI_SPACE_MB', 32, 0, 1024),
      joinWaitMs: duration(env, 'HH_INGEST_JOIN_WAIT', '10s'),
    },
    stack: {
      dir: stackDir,
      cacheDir: path.resolve(str(env, 'HH_CACHE_DIR', path.join(os.homedir(), '.cache', 'heavy-hitters'))),
    },
  };
  const ports: [string, number][] = [
    ['HH_REDIS_PORT', cfg.redis.port],
    ['HH_KAFKA_PORT', cfg.kafka.port],
    ['HH_KAFKA_CONTROLLER_PORT', cfg.kafka.controllerPort],
    ['HH_CASSANDRA_PORT', cfg.cassandra.port],
    ['HH_CASSANDRA_STORAGE_PORT', cfg.cassandra.storagePort],
    ['HH_TEMPORAL_PORT', cfg.temporal.port],
    ['HH_TEMPORAL_UI_PORT', cfg.temporal.uiPort],
    ['HH_API_PORT', cfg.api.port],
    ['HH_PROMETHEUS_PORT', cfg.prometheus.port],
  ];
  const seen = new Map<number, string>();
  for (const [name, p] of ports) {
    const other = seen.get(p);
    if (other) throw new ConfigError(name, `port ${p} is already used by ${other}`);
    seen.set(p, name);
  }
  return deepFreeze(cfg);
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

let cached: Config | undefined;
/** The process-wide configuration, read from process.env once. */
export function config(): Config {
  cached ??= loadConfig();
  return cached;
}
