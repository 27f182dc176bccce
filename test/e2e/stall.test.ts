/**
 * End to end: an ingest member stuck inside its own process while Redis answers. Real
 * Redis holds every write (CLIENT PAUSE WRITE: reads answer, the flush scripts wait), so the
 * worker's batch stays pending. Before the stall watch nothing noticed: the ingest activity
 * heartbeats on a timer and /healthz said "consuming" while the lag grew. Now the member
 * logs what it holds, its process exits, the primary starts a new one, and once Redis takes
 * writes again every store equals the truth.
 */
import { expect } from 'chai';
import { regionNames, mergeTruth, type Truth } from '../../src/load/generator';
import { ALL_TIME, regionDirtyKey, regionInflightKey } from '../../src/keys';
import { RegionRecord } from '../../src/store/record';
import { cfg as baseCfg, unique } from '../helpers';
import { Isolated } from '../../scripts/harness/isolated';
import { leaderboard } from '../support/redis';
import { dumpOnFailure } from '../support/failure';
import { eventually, startRuntime, waitApplied, type Runtime } from '../../scripts/harness/runtime';

const REGIONS = 2;
const POSTS = 500;

describe('an ingest member stuck while Redis answers (end to end, the stall watch)', function () {
  this.timeout(600_000);
  const id = unique('stl');
  const prefix = `${id}_`;
  const regions = regionNames(REGIONS, prefix);
  const truth: Truth = {};
  const iso = new Isolated(id, { HH_WORKERS: '1', HH_INGEST_STALL: '5s', HH_CHECKPOINT_INTERVAL: '2s' });
  let rt: Runtime;
  let paused = false;

  before(async () => {
    await iso.setUp();
    rt = await startRuntime(iso.env);
  });

  afterEach(function () {
    dumpOnFailure(this, rt);
  });

  after(async () => {
    if (paused) await iso.redis.call('CLIENT', 'UNPAUSE');
    await iso.tearDown(rt, regions);
  });

  it('its flush held past HH_INGEST_STALL: it logs what it holds, its process restarts, and afterwards Redis and the record are exact', async () => {
    const topic = iso.env.HH_KAFKA_TOPIC;
    mergeTruth(truth, await iso.produce({ events: 2_000, seed: 71, regions: REGIONS, posts: POSTS, prefix }, { rate: 5_000 }));
    await waitApplied(iso.admin, iso.redis, topic);
    const victim = rt.workers.get(1)!;
    // Writes wait (the flush scripts among them); reads, the epoch check's GET included, answer.
    await iso.redis.call('CLIENT', 'PAUSE', '600000', 'WRITE');
    paused = true;
    try {
      mergeTruth(truth, await iso.produce({ events: 2_000, seed: 72, regions: REGIONS, posts: POSTS, prefix }, { rate: 5_000 }));
      await eventually(
        async () => {
          const report = rt.output.find((l) => l.includes('ingest stalled (Redis answering): a batch or a resume pending for'));
          expect(report, 'the stall report').to.be.a('string');
          // What it holds: the batches in flight, per partition, and the actors' queues.
          expect(report).to.match(/in flight: p\d+: \d+ \(oldest \d+ s/);
          expect(report).to.match(/actors: .*flushing/);
          expect(rt.workers.get(1), 'the worker process was restarted').to.not.equal(victim);
        },
        120_000,
        250,
      );
      expect(
        rt.output.some((l) => /died \(code 75\)/.test(l)),
        'the primary saw the stalled process exit',
      ).to.equal(true);
    } finally {
      await iso.redis.call('CLIENT', 'UNPAUSE');
      paused = false;
    }
    await waitApplied(iso.admin, iso.redis, topic);
    await eventually(async () => {
      for (const r of regions) expect(await leaderboard(iso.redis, r), `${r} in Redis`).to.deep.equal(truth[r]);
    }, 60_000);
    const record = new RegionRecord(iso.redis, iso.cassandra, { keyspace: iso.keyspace, windows: baseCfg.ingest.windows, boundedK: 1000 });
    await eventually(async () => {
      for (const r of regions) {
        expect(await iso.redis.exists(regionDirtyKey(r), regionInflightKey(r)), `${r} checkpointed`).to.equal(0);
        const rec = await record.readKey(r, ALL_TIME);
        expect(Object.fromEntries((rec?.top ?? []).map((p) => [p.post_id, p.view_count])), `${r} in Cassandra`).to.deep.equal(truth[r]);
      }
    }, 120_000);
  });
});
