/**
 * The ingest member's resume (after an assignment or an epoch change) against real Redis,
 * with a stub kafkajs consumer whose group refuses every offset commit: what a member meets
 * while its group rebalances ("The coordinator is not aware of this member"). The member
 * rejoins only once the batches in hand return, and they wait for the resume: a resume that
 * waited for its commit held them for good (a chaos round that never caught up).
 */
import { expect } from 'chai';
import * as sinon from 'sinon';
import type { Redis } from 'ioredis';
import type { EachBatchPayload, Kafka, Producer } from 'kafkajs';
import { opsRedis } from '../../src/clients';
import { loadConfig } from '../../src/config';
import { ActorSystem } from '../../src/actors/region-actor';
import { CONSUMER_SETTINGS, runIngest, type IngestDeps } from '../../src/ingest/consumer';
import { EPOCH_KEY, appliedKey, handedKey, regionTopKey } from '../../src/keys';
import type { RegionRecord } from '../../src/store/record';
import { freeRedisDb } from '../support/redis';
import { cfg as baseCfg, unique } from '../helpers';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `done` every 50 ms until it holds; fails with `what` after `tries` polls. */
async function until(done: () => boolean | Promise<boolean>, what: string, tries = 100): Promise<void> {
  for (let i = 0; !(await done()); i++) {
    if (i > tries) throw new Error(what);
    await sleep(50);
  }
}

/** runIngest with a stub kafkajs consumer (commits go to `commitOffsets`), on real Redis. */
function stubMember(redis: Redis, cfg: ReturnType<typeof loadConfig>, commitOffsets: sinon.SinonStub, extra: Partial<IngestDeps> = {}) {
  const handlers = new Map<string, (e: unknown) => void>();
  const member: { eachBatch?: (p: EachBatchPayload) => Promise<void>; connects: number } = { connects: 0 };
  const seeks: { topic: string; partition: number; offset: string }[] = [];
  const paused = new Set<number>();
  const consumer = {
    events: { CRASH: 'consumer.crash', GROUP_JOIN: 'consumer.group_join' },
    on: (event: string, fn: (e: unknown) => void) => handlers.set(event, fn),
    connect: async () => {
      member.connects++;
    },
    subscribe: async () => undefined,
    disconnect: async () => undefined,
    run: async (o: { eachBatch: (p: EachBatchPayload) => Promise<void> }) => {
      member.eachBatch = o.eachBatch;
    },
    seek: (s: { topic: string; partition: number; offset: string }) => seeks.push(s),
    pause: (tps: { topic: string; partitions: number[] }[]) => tps.forEach((tp) => tp.partitions.forEach((p) => paused.add(p))),
    resume: (tps: { topic: string; partitions: number[] }[]) => tps.forEach((tp) => tp.partitions.forEach((p) => paused.delete(p))),
    commitOffsets,
  };
  const kafka = { consumer: () => consumer } as unknown as Kafka;
  const actors = new ActorSystem(redis, cfg.ingest);
  const stop = new AbortController();
  const logged: string[] = [];
  const run = runIngest({ cfg, kafka, producer: {} as Producer, actors, redis, record: {} as RegionRecord, log: (s) => logged.push(s), ...extra }, stop.signal);
  return {
    seeks,
    logged,
    /** The partitions the member has paused (kafkajs fetches none of them). */
    paused,
    /** How often the member connected its consumer (joined the group). */
    connects: () => member.connects,
    run,
    /** Resolves once the member runs its consumer. */
    started: async () => {
      for (let i = 0; !member.eachBatch; i++) {
        if (i > 100) throw new Error('the member never started consuming');
        await sleep(50);
      }
      return member.eachBatch;
    },
    assign: (topic: string, partitions: number[]) =>
      handlers.get('consumer.group_join')!({ payload: { isLeader: false, memberAssignment: { [topic]: partitions } } }),
    stop: async () => {
      stop.abort();
      await run.catch(() => undefined);
    },
  };
}

/** One event of `region` at `offset` of `partition`, as a kafkajs eachBatch payload. */
function oneEventBatch(topic: string, partition: number, offset: number, region: string, post: string): EachBatchPayload {
  const value = Buffer.from(JSON.stringify({ event_id: `${region}-${partition}-${offset}`, post_id: post, region_id: region, timestamp: Date.now() }));
  const batch = {
    topic,
    partition,
    highWatermark: String(offset + 1),
    fetchedOffset: String(offset),
    messages: [{ offset: String(offset), key: Buffer.from(region), value, headers: {}, timestamp: String(Date.now()), attributes: 0, size: value.length }],
    lastOffset: () => String(offset),
  };
  return {
    batch,
    resolveOffset: () => undefined,
    heartbeat: async () => undefined,
    isRunning: () => true,
    isStale: () => false,
  } as unknown as EachBatchPayload;
}

describe('ingest resume while the group refuses offset commits (real Redis, a stub consumer)', function () {
  this.timeout(60_000);
  let redis: Redis;

  before(async () => {
    redis = opsRedis(baseCfg, await freeRedisDb());
  });
  after(async () => {
    await redis.flushdb();
    redis.disconnect();
  });

  it('seeks to the applied mark and applies the next batch; the refused commit stays owed and is retried', async () => {
    const topic = unique('rsm');
    const region = unique('rsm_r');
    const cfg = loadConfig({ HH_KAFKA_TOPIC: topic, HH_KAFKA_PARTITIONS: '1', HH_WINDOWS: '1m' });
    await redis.set(EPOCH_KEY, 'e1');
    await redis.hset(appliedKey(topic), '0', '9'); // partition 0 resumes at offset 10

    const commitOffsets = sinon.stub().rejects(new Error('The coordinator is not aware of this member'));
    const m = stubMember(redis, cfg, commitOffsets);
    const { seeks, logged } = m;
    try {
      const eachBatch = await m.started();
      // Assigned partition 0: the resume reads its applied mark and seeks there; its commit is refused.
      m.assign(topic, [0]);
      // Paused until then (kafkajs hands over no batch of it); a resume that waited for the refused commit would hold it for good.
      await until(() => m.paused.size === 0, 'partition 0 was never resumed: the resume waited for the refused commit');
      const value = Buffer.from(JSON.stringify({ event_id: `${region}-1`, post_id: 'p1', region_id: region, timestamp: Date.now() }));
      const batch = {
        topic,
        partition: 0,
        highWatermark: '11',
        fetchedOffset: '10',
        messages: [{ offset: '10', key: Buffer.from(region), value, headers: {}, timestamp: String(Date.now()), attributes: 0, size: value.length }],
        lastOffset: () => '10',
      };
      const handled = eachBatch({
        batch,
        resolveOffset: () => undefined,
        heartbeat: async () => undefined,
        isRunning: () => true,
        isStale: () => false,
      } as unknown as EachBatchPayload);
      const held = await Promise.race([handled.then(() => false), sleep(15_000).then(() => true)]);
      expect(held, 'the batch waited for the resume, which waited for the refused commit').to.equal(false);
      expect(seeks).to.deep.include({ topic, partition: 0, offset: '10' });
      for (let i = 0; (await redis.zscore(regionTopKey(region), 'p1')) === null; i++) {
        if (i > 100) throw new Error('the batch was not applied');
        await sleep(50);
      }
      expect(await redis.zscore(regionTopKey(region), 'p1')).to.equal('1');
      expect(commitOffsets.called, 'a commit was tried').to.equal(true);
      expect(logged.some((l) => l.includes('The coordinator is not aware of this member'))).to.equal(true);
      // Owed, and retried by the member's watcher (every second) until one lands.
      const tried = commitOffsets.callCount;
      commitOffsets.resolves();
      for (let i = 0; commitOffsets.callCount === tried; i++) {
        if (i > 60) throw new Error('the refused commit was not retried');
        await sleep(100);
      }
    } finally {
      await m.stop();
    }
  });

  it('a rejoin that keeps a partition goes on from where the member got to, not from the group offset kafkajs would fetch from', async () => {
    const topic = unique('rsm');
    const region = unique('rsm_r');
    const cfg = loadConfig({ HH_KAFKA_TOPIC: topic, HH_KAFKA_PARTITIONS: '2', HH_WINDOWS: '1m' });
    await redis.set(EPOCH_KEY, 'e1');
    await redis.hset(appliedKey(topic), '0', '9', '1', '4');
    // Refused, as while the group rebalances: the group offset stays behind the member.
    const commitOffsets = sinon.stub().rejects(new Error('The group is rebalancing, so a rejoin is needed'));
    const m = stubMember(redis, cfg, commitOffsets);
    try {
      const eachBatch = await m.started();
      m.assign(topic, [0]);
      await until(() => m.paused.size === 0, 'partition 0 was never resumed');
      const messages = [10, 11, 12].map((offset) => {
        const value = Buffer.from(JSON.stringify({ event_id: `${region}-${offset}`, post_id: 'p1', region_id: region, timestamp: Date.now() }));
        return { offset: String(offset), key: Buffer.from(region), value, headers: {}, timestamp: String(Date.now()), attributes: 0, size: value.length };
      });
      await eachBatch({
        batch: { topic, partition: 0, highWatermark: '13', fetchedOffset: '10', messages, lastOffset: () => '12' },
        resolveOffset: () => undefined,
        heartbeat: async () => undefined,
        isRunning: () => true,
        isStale: () => false,
      } as unknown as EachBatchPayload);
      await until(async () => (await redis.zscore(regionTopKey(region), 'p1')) === '3', 'the batch was not applied');
      const before = m.seeks.length;
      // The group rebalances: the member keeps partition 0 and is given partition 1.
      m.assign(topic, [0, 1]);
      await until(() => m.seeks.slice(before).some((s) => s.partition === 1), 'the new partition was not sought to its mark');
      expect(m.seeks.slice(before)).to.deep.equal([
        { topic, partition: 0, offset: '13' },
        { topic, partition: 1, offset: '5' },
      ]);
    } finally {
      await m.stop();
    }
  });

  /** A stub member of a topic with one partition per entry of `applied`, under epoch e1: the applied marks and handed offsets as given. */
  const handoffMember = async (applied: Record<number, string>, handed: Record<number, string>) => {
    const topic = unique('rsm');
    const cfg = loadConfig({ HH_KAFKA_TOPIC: topic, HH_KAFKA_PARTITIONS: String(Object.keys(applied).length), HH_WINDOWS: '1m' });
    await redis.set(EPOCH_KEY, 'e1');
    await redis.hset(appliedKey(topic), applied);
    await redis.hset(handedKey(topic), handed);
    return { topic, m: stubMember(redis, cfg, sinon.stub().resolves()) };
  };

  it('a partition taken over resumes once the batches its previous holder handed its actors are applied, not from behind them', async () => {
    // The previous holder applied up to 9 and handed its actors up to 19 (in flight).
    const { topic, m } = await handoffMember({ 0: '9' }, { 0: 'e1:19' });
    try {
      await m.started();
      m.assign(topic, [0]);
      await sleep(600);
      expect(m.seeks, 'no seek while the batches in flight elsewhere are not applied').to.deep.equal([]);
      await redis.hset(appliedKey(topic), '0', '19'); // they land
      await until(() => m.seeks.length > 0, 'the partition never resumed');
      expect(m.seeks).to.deep.equal([{ topic, partition: 0, offset: '20' }]);
    } finally {
      await m.stop();
    }
  });

  it("a partition taken over stays paused until it resumes, while the member's kept partitions go on", async () => {
    // Partition 1 is this member's; partition 0 comes from a holder with batches in flight (handed 19, applied 9).
    const { topic, m } = await handoffMember({ 0: '9', 1: '4' }, { 0: 'e1:19' });
    const region = unique('rsm_r');
    try {
      const eachBatch = await m.started();
      m.assign(topic, [1]);
      await until(() => m.seeks.length > 0, 'partition 1 never resumed');
      expect([...m.paused], 'a partition without batches in flight elsewhere is not held').to.deep.equal([]);
      m.assign(topic, [0, 1]);
      expect([...m.paused], 'partition 0 paused at the join').to.deep.equal([0]);
      // A batch of partition 1 during the wait for partition 0's previous holder: applied now.
      const handled = eachBatch(oneEventBatch(topic, 1, 5, region, 'p1'));
      await until(async () => (await redis.zscore(regionTopKey(region), 'p1')) === '1', 'the kept partition waited for the taken-over one', 40);
      await handled;
      expect(
        m.seeks.some((x) => x.partition === 0),
        'partition 0 not sought yet',
      ).to.equal(false);
      expect([...m.paused]).to.deep.equal([0]);
      await redis.hset(appliedKey(topic), '0', '19'); // partition 0's batches in flight land
      await until(() => m.paused.size === 0, 'partition 0 was never resumed');
      expect(m.seeks.filter((x) => x.partition === 0)).to.deep.equal([{ topic, partition: 0, offset: '20' }]);
    } finally {
      await m.stop();
    }
  });

  it('a partition whose previous holder died with batches in flight resumes from the applied mark once the wait runs out; a handed offset of another epoch is not waited for', async () => {
    const { topic, m } = await handoffMember({ 0: '9', 1: '4' }, { 0: 'e1:19', 1: 'e0:99' });
    try {
      await m.started();
      const t0 = Date.now();
      m.assign(topic, [1]);
      await until(() => m.seeks.length > 0, 'partition 1 never resumed');
      expect(m.seeks).to.deep.equal([{ topic, partition: 1, offset: '5' }]);
      expect(Date.now() - t0, 'not held for the other epoch').to.be.lessThan(CONSUMER_SETTINGS.handoffWaitMs);
      const t1 = Date.now();
      m.assign(topic, [0, 1]);
      await until(() => m.seeks.some((x) => x.partition === 0), 'partition 0 never resumed', 200);
      expect(Date.now() - t1, 'held until the wait ran out').to.be.at.least(CONSUMER_SETTINGS.handoffWaitMs - 100);
      // Partition 1, kept, goes on from its position at once; partition 0 from its applied mark.
      expect(m.seeks.slice(1)).to.deep.equal([
        { topic, partition: 1, offset: '5' },
        { topic, partition: 0, offset: '10' },
      ]);
    } finally {
      await m.stop();
    }
  });

  it("joins the group only once the runtime's gate lets it; stopped while it waits, it never joins; a gate that fails does not hold it", async () => {
    const topic = unique('rsm');
    const cfg = loadConfig({ HH_KAFKA_TOPIC: topic, HH_KAFKA_PARTITIONS: '1', HH_WINDOWS: '1m' });
    await redis.set(EPOCH_KEY, 'e1');
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const held = stubMember(redis, cfg, sinon.stub().resolves(), { beforeJoin: () => gate });
    try {
      await sleep(500);
      expect(held.connects(), 'connected before the gate opened').to.equal(0);
      open();
      await held.started();
      expect(held.connects()).to.equal(1);
    } finally {
      await held.stop();
    }

    const stopped = stubMember(redis, cfg, sinon.stub().resolves(), { beforeJoin: () => new Promise<void>(() => undefined) });
    await sleep(300);
    await stopped.stop();
    expect(await stopped.run).to.deep.equal({ batches: 0, consumed: 0, deadLettered: 0 });
    expect(stopped.connects(), 'joined although stopped at the gate').to.equal(0);

    const failed = stubMember(redis, cfg, sinon.stub().resolves(), { beforeJoin: () => Promise.reject(new Error('the primary did not answer within 15 s')) });
    try {
      await failed.started();
      expect(failed.connects()).to.equal(1);
      expect(failed.logged).to.include("joining the group without the runtime's gate: the primary did not answer within 15 s");
    } finally {
      await failed.stop();
    }
  });

  it('after a rebuild rewinds a partition, the group offset follows it down and the refresh keeps it there', async () => {
    const topic = unique('rsm');
    const cfg = loadConfig({ HH_KAFKA_TOPIC: topic, HH_KAFKA_PARTITIONS: '1', HH_WINDOWS: '1m' });
    await redis.set(EPOCH_KEY, 'before');
    await redis.hset(appliedKey(topic), '0', '99');
    const commitOffsets = sinon.stub().resolves();
    const m = stubMember(redis, cfg, commitOffsets);
    const committed = () =>
      commitOffsets
        .getCalls()
        .flatMap((call) => (call.args[0] as { partition: number; offset: string }[]).filter((o) => o.partition === 0).map((o) => o.offset));
    try {
      await m.started();
      m.assign(topic, [0]);
      for (let i = 0; !committed().includes('100'); i++) {
        if (i > 100) throw new Error('the resume did not commit the applied mark');
        await sleep(50);
      }
      // A rebuild: a new epoch whose applied mark of partition 0 is older (the record's).
      await redis.multi().set(EPOCH_KEY, 'after').hset(appliedKey(topic), '0', '9').exec();
      for (let i = 0; !committed().includes('10'); i++) {
        if (i > 100) throw new Error('the resume after the new epoch did not commit its mark');
        await sleep(50);
      }
      const from = commitOffsets.callCount;
      await sleep(6_000); // past the 5-s refresh of every held partition
      const later = commitOffsets
        .getCalls()
        .slice(from)
        .flatMap((call) => (call.args[0] as { partition: number; offset: string }[]).filter((o) => o.partition === 0).map((o) => o.offset));
      expect(commitOffsets.callCount, 'the refresh ran').to.be.greaterThan(from);
      expect(later, 'offsets committed after the rewind').to.not.include('100');
      expect(committed().at(-1)).to.equal('10');
    } finally {
      await m.stop();
    }
  });
});
