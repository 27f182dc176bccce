/**
 * End to end on the dev server with 2-second windows: event-time watermarks reach the
 * region coordinator, which drives a window workflow OPEN → CLOSED → FINAL → EXPIRED;
 * an event late within the allowed lateness counts in its window, one beyond it lands in
 * the late topic; windows are found by a search-attribute query.
 */
import { temporalClient } from '../../src/clients';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import type { Producer } from 'kafkajs';
import { type Client } from '@temporalio/client';
import { regionTopKey, regionWindowKey } from '../../src/keys';
import { coordinatorWorkflowId, recomputeSignal, windowStatusQuery, windowWorkflowId, type WindowStatus } from '../../src/workflows/definitions';
import { cfg as baseCfg, unique } from '../helpers';
import { Isolated } from '../../scripts/harness/isolated';
import { dumpOnFailure } from '../support/failure';
import { expectUsesBundle } from '../support/bundle';
import { eventually, startRuntime, type Runtime } from '../../scripts/harness/runtime';

const SIZE = 2000;
const TTL = 20_000;
const TOKEN = 'windows-test-admin-token-0123';

describe('window lifecycle on the dev server (2 s windows)', function () {
  this.timeout(300_000);
  const id = unique('win');
  const region = `${id}_R`;
  const iso = new Isolated(
    id,
    {
      HH_WORKERS: '1',
      HH_WINDOWS: `2s/2s/20s`,
      HH_WATERMARK_DELAY: '500ms',
      HH_IDLE_TIMEOUT: '10m', // watermarks move by event time only in this test
      HH_WATERMARK_REPORT_INTERVAL: '300ms',
      HH_ADMIN_TOKEN: TOKEN,
    },
    2,
  );
  const env = iso.env;
  const cassandra = iso.cassandra;
  const keyspace = iso.keyspace;
  let producer: Producer;
  let redis: Redis;
  let client: Client;
  let rt: Runtime;
  // The first window starts at the next 2 s boundary once the runtime is up, so its key
  // and TTL lie ahead of now (set in `before`: mocha loads every file long before this runs).
  let B = 0;
  let w0 = '';
  let seq = 0;

  const send = async (ts: number, post = 'post-a') => {
    await producer.send({
      topic: env.HH_KAFKA_TOPIC,
      acks: -1,
      messages: [{ key: region, value: JSON.stringify({ event_id: `${id}-${seq++}`, post_id: post, region_id: region, timestamp: ts }) }],
    });
  };
  const status = (wfId: string) => client.workflow.getHandle(wfId).query(windowStatusQuery);
  const waitState = (wfId: string, state: string) =>
    eventually(
      async () => {
        const s = await status(wfId);
        expect(s.state, wfId).to.equal(state);
      },
      60_000,
      250,
    );

  before(async () => {
    await iso.setUp();
    ({ producer, redis } = iso);
    client = await temporalClient(baseCfg);
    rt = await startRuntime(env);
    B = Math.floor(Date.now() / SIZE) * SIZE + 2 * SIZE;
    w0 = windowWorkflowId(region, '2s', B);
  });

  afterEach(function () {
    dumpOnFailure(this, rt);
  });

  after(async () => {
    await client.connection.close();
    await iso.tearDown(rt, [region]);
  });

  it('closes a window when the watermark passes its end, persisting its snapshot', async () => {
    for (let i = 0; i < 3; i++) await send(B + 100 + i);
    await send(B + 300, 'post-b');
    await send(B + SIZE + 600, 'tick'); // watermark = B + 2.1 s: past W0's end
    await waitState(w0, 'CLOSED');
    const s = await status(w0);
    expect(s.top).to.deep.equal([
      { post_id: 'post-a', view_count: 3 },
      { post_id: 'post-b', view_count: 1 },
    ]);
  });

  it('counts an event late within the allowed lateness in its window; the final snapshot includes it', async () => {
    await send(B + 1000); // W0, while the watermark (B + 2.1 s) is short of end + lateness (B + 4 s)
    await eventually(
      async () => {
        expect(await redis.zscore(regionWindowKey(region, `2s:${B}`), 'post-a')).to.equal('4');
      },
      30_000,
      200,
    );
    await send(B + 2 * SIZE + 700, 'tick'); // watermark = B + 4.2 s: W0 is FINAL
    await waitState(w0, 'FINAL');
    const s: WindowStatus = await status(w0);
    expect(s.top[0]).to.deep.equal({ post_id: 'post-a', view_count: 4 });
    expect(s.persists).to.equal(2);
    const rs = await cassandra.execute(
      `SELECT post_id, count FROM ${keyspace}.views_by_region_and_window WHERE region_id = ? AND window_spec = ? AND window_start = ?`,
      [region, '2s', new Date(B)],
      { prepare: true },
    );
    expect(Object.fromEntries(rs.rows.map((r) => [r.get('post_id'), Number(r.get('count'))]))).to.deep.equal({ 'post-a': 4, 'post-b': 1 });
  });

  it('sends an event beyond the allowed lateness to the late topic with its reason (still counted all-time, not in the window)', async () => {
    await send(B + 1500);
    const reason = await iso.firstLateReason();
    expect(reason).to.match(new RegExp(`beyond the allowed lateness of window\\(s\\) 2s:${B}`));
    await eventually(
      async () => {
        expect(await redis.zscore(regionTopKey(region), 'post-a')).to.equal('5');
      },
      30_000,
      200,
    );
    expect(await redis.zscore(regionWindowKey(region, `2s:${B}`), 'post-a')).to.equal('4');
    const metrics = await (await fetch(`${rt.api}/metrics`)).text();
    expect(Number(/^hh_events_late_total (\d+)/m.exec(metrics)?.[1])).to.equal(1);
  });

  it("lists the region's windows by a search-attribute query", async () => {
    await eventually(
      async () => {
        const ids: string[] = [];
        for await (const wf of client.workflow.list({ query: `Region = "${region}" AND WindowSpec = "2s"` })) ids.push(wf.workflowId);
        expect(ids).to.include(w0);
        expect(ids).to.include(windowWorkflowId(region, '2s', B + SIZE));
      },
      30_000,
      500,
    );
    const finals: string[] = [];
    for await (const wf of client.workflow.list({ query: `Region = "${region}" AND WindowState = "FINAL"` })) finals.push(wf.workflowId);
    expect(finals).to.include(w0);
    // The coordinator starts each window with its search attributes (found by region before its first task runs).
    const history = await client.workflow.getHandle(coordinatorWorkflowId(region)).fetchHistory();
    const starts = (history.events ?? []).flatMap((e) =>
      e.startChildWorkflowExecutionInitiatedEventAttributes ? [e.startChildWorkflowExecutionInitiatedEventAttributes] : [],
    );
    expect(starts.map((a) => a.workflowId)).to.include(w0);
    for (const a of starts)
      expect(Object.keys(a.searchAttributes?.indexedFields ?? {}), a.workflowId ?? '').to.include.members([
        'Region',
        'WindowSpec',
        'WindowStart',
        'WindowState',
      ]);
  });

  it('recompute (admin endpoint, then signal) rebuilds a corrupted window key from its snapshot', async () => {
    const key = regionWindowKey(region, `2s:${B}`);
    await redis.zadd(key, 999, 'post-a', 7, 'intruder');
    const url = `${rt.api}/admin/windows/${encodeURIComponent(w0)}/recompute`;
    expect((await fetch(url, { method: 'POST' })).status).to.equal(401);
    const res = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).to.equal(200);
    expect(await res.json()).to.include({ window_id: w0, posts: 2, events: 5 });
    expect(await redis.zrevrange(key, 0, -1, 'WITHSCORES')).to.deep.equal(['post-a', '4', 'post-b', '1']);
    await redis.zadd(key, 5, 'post-b');
    await client.workflow.getHandle(w0).signal(recomputeSignal);
    await eventually(
      async () => {
        expect(await redis.zrevrange(key, 0, -1, 'WITHSCORES')).to.deep.equal(['post-a', '4', 'post-b', '1']);
      },
      30_000,
      200,
    );
  });

  it('expires the window after its TTL: Redis key gone, workflow completed', async () => {
    const wait = B + SIZE + TTL - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    await eventually(
      async () => {
        const d = await client.workflow.getHandle(w0).describe();
        expect(d.status.name).to.equal('COMPLETED');
      },
      30_000,
      250,
    );
    expect(await redis.exists(regionWindowKey(region, `2s:${B}`))).to.equal(0);
    const result = (await client.workflow.getHandle(w0).result()) as WindowStatus;
    expect(result.state).to.equal('EXPIRED');
  });

  it('the lifecycle process (the workflows) killed (-9) is restarted by the primary, and the next window still closes with its exact snapshot', async () => {
    expect(rt.lifecycles.size).to.equal(1);
    const victim = rt.lifecycles.get(1)!;
    process.kill(victim, 'SIGKILL');
    await eventually(
      async () => {
        expect(rt.lifecycles.get(1)).to.be.a('number').and.not.equal(victim);
      },
      30_000,
      200,
    );
    // /healthz lists it, running under its new pid.
    await eventually(
      async () => {
        const health = (await (await fetch(`${rt.api}/healthz`)).json()) as { lifecycle: { process: number; pid: number; state: string }[] };
        expect(health.lifecycle).to.deep.equal([{ process: 1, pid: rt.lifecycles.get(1), state: 'running' }]);
      },
      30_000,
      500,
    );
    // The restarted process loaded the primary's bundle: it did not bundle the workflows itself.
    expectUsesBundle(rt.lifecycles.get(1)!);
    const b2 = Math.floor(Date.now() / SIZE) * SIZE + SIZE;
    const w = windowWorkflowId(region, '2s', b2);
    for (let i = 0; i < 2; i++) await send(b2 + 100 + i, 'post-c');
    await send(b2 + SIZE + 600, 'tick'); // the watermark past its end
    await waitState(w, 'CLOSED');
    expect((await status(w)).top).to.deep.equal([{ post_id: 'post-c', view_count: 2 }]);
  });
});
