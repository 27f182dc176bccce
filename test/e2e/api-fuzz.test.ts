/**
 * The running API under random and hostile requests (fast-check): query strings, paths,
 * headers and bodies thrown at every route of a real runtime. Every answer is 2xx, or a 4xx
 * with a JSON `{error, param}` — never a 5xx or a hang — and no worker process restarts.
 */
import { expect } from 'chai';
import * as fc from 'fast-check';
import { Isolated } from '../../scripts/harness/isolated';
import { startRuntime, waitDrained, type Runtime } from '../../scripts/harness/runtime';
import { unique } from '../helpers';
import { dumpOnFailure } from '../support/failure';

const RUNS = 1_500;

describe(`api fuzz (${RUNS.toLocaleString()} random requests at the running API)`, function () {
  this.timeout(600_000);
  const id = unique('fuzz');
  const region = `${id}_R`;
  const iso = new Isolated(id, { HH_WORKERS: '1', HH_RATE_LIMIT_RPS: '1000000' });
  let rt: Runtime;
  afterEach(function () {
    dumpOnFailure(this, rt);
  });

  before(async () => {
    await iso.setUp();
    rt = await startRuntime(iso.env);
    const events = Array.from({ length: 50 }, (_, i) => ({ event_id: `${id}-${i}`, post_id: `p${i % 5}`, region_id: region, timestamp: Date.now() }));
    const res = await fetch(`${rt.api}/events`, { method: 'POST', headers: iso.producerHeaders, body: JSON.stringify(events) });
    expect(res.status).to.equal(202);
    await waitDrained(iso.admin, iso.env.HH_KAFKA_GROUP, iso.env.HH_KAFKA_TOPIC);
  });
  after(async () => {
    await iso.tearDown(rt, [region]);
  });

  it('answers every request with 2xx or a 4xx {error, param}; never a 5xx or a hang; no worker restarts', async () => {
    const pidsBefore = [...rt.workers.values()];
    const hostile = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.constantFrom('', '%', '%FF', '%00', '..', '../..', '__proto__', 'constructor', 'global', region, 'NA', '-1', '0', '1e9', 'NaN', '24h', 'all', '1m'),
      fc.integer().map(String),
      fc.string({ maxLength: 3000 }),
    );
    const enc = (s: string) => encodeURIComponent(s);
    const rawSegment = fc.oneof(hostile.map(enc), fc.constantFrom('%', '%E0%A4%A', '%2F', '%25', '%ZZ'));
    const query = fc
      .array(fc.tuple(fc.oneof(fc.constantFrom('region', 'timeframe', 'k', 'window', 'variant', 'around', 'region[]', 'k[a]'), hostile), hostile), {
        maxLength: 6,
      })
      .map((pairs) => pairs.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&'));
    const path = fc.oneof(
      fc.constant('/top-posts'),
      rawSegment.map((s) => `/posts/${s}/rank`),
      fc.constant(`/posts/p1/rank`),
      fc.constant('/events'),
      fc.constant('/admin/rebuild'),
      rawSegment.map((s) => `/admin/windows/${s}/recompute`),
      fc.constantFrom('/healthz', '/metrics', '/', '/top-posts/', '//top-posts', '/TOP-POSTS'),
      fc.array(rawSegment, { maxLength: 4 }).map((segs) => `/${segs.join('/')}`),
    );
    const body = fc.oneof(
      fc.constant(undefined),
      fc.json().map((j) => j),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc
        .array(
          fc.record({ event_id: hostile, post_id: hostile, region_id: hostile, timestamp: fc.oneof(fc.integer(), fc.double(), hostile) }, { requiredKeys: [] }),
          { maxLength: 20 },
        )
        .map((a) => JSON.stringify(a)),
      fc.nat({ max: 5000 }).map((n) => '['.repeat(n)),
      fc.string({ maxLength: 500 }),
    );
    const auth = fc.oneof(
      fc.constant(undefined),
      fc.constant(iso.producerHeaders.authorization),
      hostile.map((s) => `Bearer ${s.replace(/[^\x20-\x7e]/g, '')}`),
      fc.constantFrom('Bearer', 'Basic abc', 'bearer  x', `Bearer ${'a'.repeat(5000)}`),
    );
    const contentType = fc.constantFrom(
      undefined,
      'application/json',
      'text/plain',
      'application/x-www-form-urlencoded',
      'application/json; charset=latin1',
      'multipart/form-data',
    );
    const method = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD');
    const request = fc.record({ method, path, query, body, auth, contentType });

    const findings: string[] = [];
    const statuses = new Map<number, number>();
    let count = 0;
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        count++;
        const headers: Record<string, string> = {};
        if (r.auth !== undefined) headers.authorization = r.auth;
        if (r.contentType !== undefined) headers['content-type'] = r.contentType;
        const withBody = r.body !== undefined && r.method !== 'GET' && r.method !== 'HEAD';
        const url = `${rt.api}${r.path}${r.query ? `?${r.query}` : ''}`;
        const res = await fetch(url, { method: r.method, headers, body: withBody ? r.body : undefined, signal: AbortSignal.timeout(10_000) });
        const text = await res.text();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        const what = `${r.method} ${r.path}?${r.query.slice(0, 200)} -> ${res.status} ${text.slice(0, 200)}`;
        if (res.status >= 500) findings.push(what);
        expect(res.status, what).to.be.below(500);
        if (res.status >= 400 && r.method !== 'HEAD') {
          const json = JSON.parse(text) as { error?: unknown; param?: unknown };
          expect(json.error, what).to.be.a('string');
          expect(json.param, what).to.be.a('string');
        }
      }),
      { numRuns: RUNS, seed: Number(process.env.HH_FUZZ_SEED ?? Date.now() % 2 ** 31), endOnFailure: true },
    );
    process.stdout.write(`      answers by status: ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}\n`);
    expect(count).to.equal(RUNS);
    expect(findings).to.deep.equal([]);
    expect([...rt.workers.values()]).to.deep.equal(pidsBefore);
    // And the API still answers the truth it held before.
    const top = (await (await fetch(`${rt.api}/top-posts?region=${region}&k=5`)).json()) as { top_posts: { view_count: number }[] };
    expect(top.top_posts.reduce((a, p) => a + p.view_count, 0)).to.be.at.least(50);
  });
});
