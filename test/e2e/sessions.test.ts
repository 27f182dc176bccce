/**
 * Session windows end to end (dev server, watermarks by event time only): events within
 * the gap form one session; a gap ends it; once the watermark is a gap plus the lateness
 * past its end the coordinator seals it and starts its window workflow; an event later than
 * the lateness goes to the late topic instead of a session.
 */
import { temporalClient } from '../../src/clients';
import { expect } from 'chai';
import { type Client } from '@temporalio/client';
import { windowStatusQuery, windowWorkflowId } from '../../src/workflows/definitions';
import { cfg as baseCfg, unique } from '../helpers';
import { Isolated } from '../../scripts/harness/isolated';
import { dumpOnFailure } from '../support/failure';
import { eventually, startRuntime, type Runtime } from '../../scripts/harness/runtime';

describe('session windows on the dev server (gap 3 s, lateness 1 s)', function () {
  this.timeout(300_000);
  const id = unique('sess');
  const region = `${id}_R`;
  const iso = new Isolated(
    id,
    {
      HH_WORKERS: '1',
      HH_WINDOWS: '2s/1s/60s,gap3s/1s/60s',
      HH_WATERMARK_DELAY: '500ms',
      HH_IDLE_TIMEOUT: '10m', // watermarks move by event time only
      HH_WATERMARK_REPORT_INTERVAL: '300ms',
      HH_GLOBAL_MERGE_INTERVAL: '300ms',
    },
    2,
  );
  let client: Client;
  let rt: Runtime;
  let B = 0;
  let seq = 0;

  const send = async (offset: number, post: string) => {
    await iso.producer.send({
      topic: iso.env.HH_KAFKA_TOPIC,
      acks: -1,
      messages: [{ key: region, value: JSON.stringify({ event_id: `${id}-${seq++}`, post_id: post, region_id: region, timestamp: B + offset }) }],
    });
  };
  const top = async (q: string) => {
    const res = await fetch(`${rt.api}/top-posts?${q}`);
    expect(res.status, q).to.equal(200);
    return (await res.json()) as { window_end: number | null; top_posts: { post_id: string; view_count: number }[] };
  };
  const pairs = (b: { top_posts: { post_id: string; view_count: number }[] }) => b.top_posts.map((p) => [p.post_id, p.view_count]);
  const finalTop = async (start: number) => {
    const wf = windowWorkflowId(region, 'gap3s', start);
    let top: { post_id: string; view_count: number }[] = [];
    await eventually(
      async () => {
        const s = await client.workflow.getHandle(wf).query(windowStatusQuery);
        expect(s.state, wf).to.equal('FINAL');
        top = s.top;
      },
      60_000,
      250,
    );
    return top.map((p) => [p.post_id, p.view_count]);
  };

  before(async () => {
    await iso.setUp();
    client = await temporalClient(baseCfg);
    rt = await startRuntime(iso.env);
    B = Math.floor(Date.now() / 2000) * 2000 + 4000;
  });
  afterEach(function () {
    dumpOnFailure(this, rt);
  });
  after(async () => {
    await client?.connection.close();
    await iso.tearDown(rt, [region]);
  });

  it('seals a session when the watermark is a gap plus the lateness past its end, and starts its window workflow', async () => {
    await send(0, 'x');
    await send(1000, 'x');
    await send(2500, 'y'); // within the gap: one session [B, B + 3 s)
    await send(7000, 'z'); // 4 s idle: a new session
    await send(8000, 'tick'); // watermark B + 7.5 s ≥ 3 s + gap 3 s + lateness 1 s: the first is sealed
    expect(await finalTop(B)).to.deep.equal([
      ['x', 2],
      ['y', 1],
    ]);
    const w = await top(`region=${region}&window=gap3s:${B}&k=10`);
    expect(pairs(w)).to.deep.equal([
      ['x', 2],
      ['y', 1],
    ]);
    expect(w.window_end).to.equal(null);
    const ids: string[] = [];
    await eventually(
      async () => {
        ids.length = 0;
        for await (const wf of client.workflow.list({ query: `Region = "${region}" AND WindowSpec = "gap3s"` })) ids.push(wf.workflowId);
        expect(ids).to.deep.equal([windowWorkflowId(region, 'gap3s', B)]);
      },
      30_000,
      500,
    );
  });

  it('sends an event more than the lateness behind the watermark to the late topic, not into a session', async () => {
    await send(5500, 'late'); // 2 s behind the watermark (B + 7.5 s)
    await send(7200, 'q'); // 0.3 s behind: joins the open session
    const reason = await iso.firstLateReason();
    expect(reason).to.contain('gap3s (session)');
    await send(15000, 'tick'); // watermark B + 14.5 s: the second session [B + 7 s, B + 9 s) is sealed
    expect(await finalTop(B + 7000)).to.deep.equal([
      ['z', 1],
      ['tick', 1],
      ['q', 1],
    ]);
  });

  it('merges a session globally like any window', async () => {
    await eventually(
      async () => {
        expect(pairs(await top(`region=global&window=gap3s:${B}&k=10`))).to.deep.equal([
          ['x', 2],
          ['y', 1],
        ]);
      },
      30_000,
      300,
    );
  });
});
