import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { ensureSecrets, secretsPath } from '../../src/secrets';
import { ConfigError, loadConfig, paneChain } from '../../src/config';

describe('config', () => {
  it('has documented defaults on 127.0.0.1', () => {
    const c = loadConfig({});
    expect(c.host).to.equal('127.0.0.1');
    expect(c.redis.port).to.equal(6379);
    expect(c.kafka.brokers).to.deep.equal(['127.0.0.1:9092']);
    expect(c.kafka.topic).to.equal('views');
    expect(c.kafka.partitions).to.equal(8);
    expect(c.cassandra.port).to.equal(9042);
    expect(c.temporal.address).to.equal('127.0.0.1:7233');
    expect(c.temporal.uiPort).to.equal(8233);
    expect(c.api.port).to.equal(3000);
  });

  it('reads overrides from the environment', () => {
    const c = loadConfig({ HH_KAFKA_PORT: '19092', HH_KAFKA_PARTITIONS: '3', HH_TEMPORAL_NAMESPACE: 'hh-test', HH_STACK_DIR: '/tmp/x' });
    expect(c.kafka.brokers).to.deep.equal(['127.0.0.1:19092']);
    expect(c.kafka.partitions).to.equal(3);
    expect(c.temporal.namespace).to.equal('hh-test');
    expect(c.stack.dir).to.equal('/tmp/x');
    expect(loadConfig({}).ingest.checkpointOn).to.equal('loop');
    expect(loadConfig({ HH_CHECKPOINT_ON: 'thread' }).ingest.checkpointOn).to.equal('thread');
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ HH_REDIS_PORT: '' }).redis.port).to.equal(6379);
  });

  const bad: [Record<string, string>, string, RegExp][] = [
    [{ HH_REDIS_PORT: 'abc' }, 'HH_REDIS_PORT', /integer/],
    [{ HH_REDIS_PORT: '70000' }, 'HH_REDIS_PORT', /1\.\.65535/],
    [{ HH_KAFKA_PARTITIONS: '0' }, 'HH_KAFKA_PARTITIONS', /1\.\.1024/],
    [{ HH_KAFKA_PARTITIONS: '2.5' }, 'HH_KAFKA_PARTITIONS', /integer/],
    [{ HH_KAFKA_TOPIC: 'bad topic!' }, 'HH_KAFKA_TOPIC', /topic name/],
    [{ HH_CASSANDRA_KEYSPACE: 'Bad-Name' }, 'HH_CASSANDRA_KEYSPACE', /keyspace/],
    [{ HH_API_PORT: '6379' }, 'HH_API_PORT', /already used by HH_REDIS_PORT/],
    [{ HH_API_PORT: '3659' }, 'HH_API_PORT', /browsers and fetch refuse/],
    [{ HH_TEMPORAL_UI_PORT: '6000' }, 'HH_TEMPORAL_UI_PORT', /browsers and fetch refuse/],
    [{ HH_PROMETHEUS_PORT: '10080' }, 'HH_PROMETHEUS_PORT', /browsers and fetch refuse/],
    [{ HH_WINDOWS: '1m,7m' }, 'HH_WINDOWS', /divide a day/],
    [{ HH_WINDOWS: '1m,60s' }, 'HH_WINDOWS', /listed twice/],
    [{ HH_WINDOWS: 'soon' }, 'HH_WINDOWS', /window size/],
    [{ HH_WINDOWS: '1m,5m@2m' }, 'HH_WINDOWS', /multiple/],
    [{ HH_WINDOWS: '1m,5m@30s' }, 'HH_WINDOWS', /tumbling window of its slide's size/],
    [{ HH_WINDOWS: '1m/10s/2m,5m@1m' }, 'HH_WINDOWS', /raise the 1m ttl/],
    [{ HH_WINDOWS: '1m/10s,5m@1m/5s' }, 'HH_WINDOWS', /at least its panes/],
    [{ HH_WINDOWS: '1m,gap500ms' }, 'HH_WINDOWS', /whole seconds/],
    [{ HH_WINDOWS: '1m,gapx' }, 'HH_WINDOWS', /session window/],
    [{ HH_TOPK_MODE: 'approx' }, 'HH_TOPK_MODE', /exact or bounded/],
    [{ HH_CHECKPOINT_ON: 'fiber' }, 'HH_CHECKPOINT_ON', /loop or thread/],
    [{ HH_TOPK_MODE: 'bounded', HH_WINDOWS: '1m,gap30s' }, 'HH_TOPK_MODE', /session/],
    [{ HH_API_CACHE_MS: '-1' }, 'HH_API_CACHE_MS', /0\.\.60000/],
    [{ HH_DEDUP_HORIZON: '2 days' }, 'HH_DEDUP_HORIZON', /duration/],
    [{ HH_WORKERS: '0' }, 'HH_WORKERS', /1\.\.64/],
    [{ HH_WORKER_SEMI_SPACE_MB: '2048' }, 'HH_WORKER_SEMI_SPACE_MB', /0\.\.1024/],
    [{ HH_RATE_LIMIT: 'leaky-bucket' }, 'HH_RATE_LIMIT', /token-bucket, fixed-window, sliding-window or off/],
    [{ HH_RATE_LIMIT_RPS: '0' }, 'HH_RATE_LIMIT_RPS', /1\.\./],
    [{ HH_PRODUCER_KEYS: 'a-long-enough-key-0001,short' }, 'HH_PRODUCER_KEYS', /16 characters/],
    [{ HH_DEDUP_SLICES: '0' }, 'HH_DEDUP_SLICES', /1\.\.1000/],
  ];
  for (const [env, variable, msg] of bad) {
    it(`rejects ${JSON.stringify(env)} naming ${variable}`, () => {
      let err: unknown;
      try {
        loadConfig(env);
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(ConfigError);
      expect((err as ConfigError).variable).to.equal(variable);
      expect((err as Error).message)
        .to.match(new RegExp(`^${variable}: `))
        .and.match(msg);
    });
  }

  it('reads credentials from the stack secrets file, overridden by HH_* variables; rate limits by algorithm', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hh-secrets-'));
    try {
      expect(loadConfig({ HH_STACK_DIR: dir }).api)
        .to.include({ adminToken: undefined })
        .and.deep.include({ producerKeys: [] });
      const made = ensureSecrets(dir);
      expect(fs.statSync(secretsPath(dir)).mode & 0o777).to.equal(0o600);
      expect(ensureSecrets(dir)).to.deep.equal(made); // created once
      expect(loadConfig({ HH_STACK_DIR: dir }).api).to.deep.include({ adminToken: made.admin_token, producerKeys: [made.producer_key] });
      const over = loadConfig({ HH_STACK_DIR: dir, HH_ADMIN_TOKEN: 'x'.repeat(16), HH_PRODUCER_KEYS: `${'a'.repeat(16)}, ${'b'.repeat(20)}` }).api;
      expect(over).to.deep.include({ adminToken: 'x'.repeat(16), producerKeys: ['a'.repeat(16), 'b'.repeat(20)] });
      // Every server user has its own password, distinct from the others; HH_<SERVER>_PASSWORD_<ROLE> overrides one.
      const creds = loadConfig({ HH_STACK_DIR: dir, HH_REDIS_PASSWORD_API: 'from-env' }).credentials;
      expect(creds.redis.api).to.deep.equal({ user: 'hh-api', password: 'from-env' });
      expect(creds.redis.ingest).to.deep.equal({ user: 'hh-ingest', password: made.redis.ingest });
      expect(creds.kafka.producer).to.deep.equal({ user: 'hh-producer', password: made.kafka.producer });
      expect(creds.cassandra.reader).to.deep.equal({ user: 'hh_reader', password: made.cassandra.reader });
      const all = [...Object.values(made.redis), ...Object.values(made.kafka), ...Object.values(made.cassandra)];
      expect(new Set(all).size).to.equal(all.length);
      for (const p of all) expect(p).to.match(/^[A-Za-z0-9_-]{32}$/);
      // An older file (API secrets only) gains the server passwords, keeping what it had.
      fs.writeFileSync(secretsPath(dir), JSON.stringify({ producer_key: made.producer_key, admin_token: made.admin_token }));
      const grown = ensureSecrets(dir);
      expect(grown.producer_key).to.equal(made.producer_key);
      expect(Object.keys(grown.kafka)).to.deep.equal(['admin', 'worker', 'api', 'producer']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect(loadConfig({}).api.rateLimit).to.deep.equal({ algorithm: 'token-bucket', ratePerSecond: 500, burst: 1000 });
    expect(loadConfig({ HH_RATE_LIMIT: 'sliding-window', HH_RATE_LIMIT_RPS: '20', HH_RATE_LIMIT_WINDOW: '1m' }).api.rateLimit).to.deep.equal({
      algorithm: 'sliding-window',
      perWindow: 1200,
      windowMs: 60_000,
    });
    expect(loadConfig({ HH_RATE_LIMIT: 'off' }).api.rateLimit).to.deep.equal({ algorithm: 'off' });
  });

  it('parses window specs and durations', () => {
    const c = loadConfig({ HH_WINDOWS: '30s, 5m,1h,1d', HH_DEDUP_HORIZON: '36h' });
    expect(c.ingest.windows.map((w) => [w.name, w.sizeMs])).to.deep.equal([
      ['30s', 30_000],
      ['5m', 300_000],
      ['1h', 3_600_000],
      ['1d', 86_400_000],
    ]);
    expect(c.ingest.dedupHorizonMs).to.equal(36 * 3_600_000);
    expect(c.ingest.sliding).to.deep.equal([]);
  });

  it("sums each spec's trailing panes from the coarsest finer panes that divide them and live as long (paneChain)", () => {
    const H = 3_600_000;
    // Default: panes of 1 s, 5 s, 1 min and 24 min; 24 min is not summed from 1 s or 5 s panes (they live 1 or 5 minutes).
    const chain = paneChain(loadConfig({}).ingest.windows);
    expect(chain.map((c) => c.source)).to.deep.equal([-1, 0, 1, 2]);
    // A source's panes live as long as any pane summed from it (up the chain: 2 x 24 h + 24 min).
    expect(chain.map((c) => c.ttlMs)).to.deep.equal([48 * H + 1_440_000, 48 * H + 1_440_000, 48 * H + 1_440_000, 48 * H + 1_440_000]);
    // 8m's 8 s panes are not a multiple of 5 s but of 1 s: the 1m spec is their source. 30m's 30 s panes: from 5m's 5 s.
    const other = loadConfig({ HH_WINDOWS: '1m,5m,8m,30m' }).ingest.windows;
    expect(paneChain(other).map((c) => c.source)).to.deep.equal([-1, 0, 0, 1]);
    expect(paneChain(loadConfig({ HH_WINDOWS: '1h' }).ingest.windows)).to.deep.equal([{ source: -1, ttlMs: 2 * H + 60_000 }]);
  });

  it('parses session windows: buckets of 1/30 of the gap (at least 1 s)', () => {
    const c = loadConfig({ HH_WINDOWS: '1m,gap10s,gap30m/1m/1d' });
    expect(c.ingest.sessions).to.deep.equal([
      { name: 'gap10s', gapMs: 10_000, bucketMs: 1000, latenessMs: 0, ttlMs: 3_600_000 },
      { name: 'gap30m', gapMs: 1_800_000, bucketMs: 60_000, latenessMs: 60_000, ttlMs: 86_400_000 },
    ]);
  });

  it('parses sliding windows over the tumbling windows of their slide', () => {
    const c = loadConfig({ HH_WINDOWS: '1m/10s/2h,5m@1m,1h@1m/30s/3h' });
    expect(c.ingest.windows.map((w) => w.name)).to.deep.equal(['1m']);
    expect(c.ingest.sliding).to.deep.equal([
      { name: '5m@1m', sizeMs: 300_000, slideMs: 60_000, latenessMs: 10_000, ttlMs: 600_000, pane: '1m' },
      { name: '1h@1m', sizeMs: 3_600_000, slideMs: 60_000, latenessMs: 30_000, ttlMs: 3 * 3_600_000, pane: '1m' },
    ]);
  });

  it('is frozen', () => {
    const c = loadConfig({});
    expect(Object.isFrozen(c)).to.equal(true);
    expect(Object.isFrozen(c.kafka)).to.equal(true);
  });
});
