/**
 * End to end, with a real kill -9: every ingest worker is killed after its flushes counted a
 * window's events and before its first watermark report (30 s apart here), so no coordinator
 * was ever told of that window. The restarted workers resume after those events and never
 * read them again; the coordinator that their reports start must still start that window's
 * workflow (it finds the window's key in Redis), whose snapshot then equals the truth.
 */
import { expect } from 'chai';
import { temporalClient } from '../../src/clients';
import type { Client } from '@temporalio/client';
import { produceLoad } from '../../src/load/produce';
import { regionNames, type Truth } from '../../src/load/generator';
import { coordinatorWorkflowId, windowStatusQuery, windowWorkflowId } from '../../src/workflows/definitions';
import { Isolated } from '../../scripts/harness/isolated';
import { eventually, startRuntime, type Runtime } from '../../scripts/harness/runtime';
import { leaderboard } from '../support/redis';
import { dumpOnFailure } from '../support/failure';
import { cfg, unique } from '../helpers';

const WINDOW_MS = 10_000;

describe('a window counted by workers killed (-9) before their first report (end to end)', function () {
  this.timeout(600_000);
  const id = unique('tko');
  const prefix = `${id}_`;
  const regions = regionNames(2, prefix);
  const iso = new Isolated(id, { HH_WORKERS: '2', HH_WINDOWS: '10s/20s/3m', HH_IDLE_TIMEOUT: '2s', HH_WATERMARK_REPORT_INTERVAL: '30s' });
  let rt: Runtime;
  let temporal: Client;

  before(async () => {
    await iso.setUp();
    temporal = await temporalClient(cfg);
    rt = await startRuntime(iso.env);
  });
  afterEach(function () {
    dumpOnFailure(this, rt);
  });
  after(async () => {
    await iso.tearDown(rt, regions);
    await temporal?.connection.close();
  });

  it("starts the window's workflow from its key in Redis; its snapshot equals the truth", async () => {
    const truth: Truth = {};
    const windows = new Map<string, Record<string, number>>(); // "<region>|<start>" -> post -> count
    const produce = (seed: number) =>
      produceLoad(iso.producer, {
        events: 2_000,
        regions: 2,
        posts: 500,
        zipf: 1.1,
        seed,
        prefix,
        topic: iso.env.HH_KAFKA_TOPIC,
        rate: 0,
        onEvent: (e) => {
          const r = (truth[e.region_id] ??= {});
          r[e.post_id] = (r[e.post_id] ?? 0) + 1;
          const w = `${e.region_id}|${e.timestamp - (e.timestamp % WINDOW_MS)}`;
          const m = windows.get(w) ?? {};
          m[e.post_id] = (m[e.post_id] ?? 0) + 1;
          windows.set(w, m);
        },
      });

    await produce(1);
    await eventually(async () => {
      for (const r of regions) expect(await leaderboard(iso.redis, r), `${r} in Redis`).to.deep.equal(truth[r]);
    }, 25_000);
    // The premise: counted, and no report yet (no coordinator exists).
    for (const r of regions) {
      const started = await temporal.workflow
        .getHandle(coordinatorWorkflowId(r))
        .describe()
        .then(
          () => true,
          () => false,
        );
      expect(started, `${r}'s coordinator before the kill`).to.equal(false);
    }
    for (const pid of rt.workers.values()) process.kill(pid, 'SIGKILL');
    const first = [...windows.keys()];

    // Later events (other windows) make the restarted workers report, which starts the coordinators.
    await new Promise((r) => setTimeout(r, WINDOW_MS));
    await produce(2);
    await eventually(async () => {
      for (const r of regions) expect(await leaderboard(iso.redis, r), `${r} in Redis`).to.deep.equal(truth[r]);
    }, 120_000);

    await eventually(async () => {
      for (const w of first) {
        const [r, start] = w.split('|');
        const status = await temporal.workflow.getHandle(windowWorkflowId(r, '10s', Number(start))).query(windowStatusQuery);
        expect(['FINAL', 'EXPIRED'], `window ${w}`).to.include(status.state);
        const rs = await iso.cassandra.execute(
          `SELECT post_id, count FROM ${iso.keyspace}.views_by_region_and_window WHERE region_id = ? AND window_spec = ? AND window_start = ?`,
          [r, '10s', new Date(Number(start))],
          { prepare: true, fetchSize: 10_000 },
        );
        expect(Object.fromEntries(rs.rows.map((row) => [row.get('post_id') as string, Number(row.get('count'))])), `window ${w} snapshot`).to.deep.equal(
          windows.get(w),
        );
      }
    }, 180_000);
  });
});
