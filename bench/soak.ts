/**
 * The soak (`npm run bench -- --soak`): a steady stream for many minutes, new posts
 * appearing throughout (the popular set drifts), with window TTLs short enough that the run
 * passes every horizon (dedup, panes, windows). Redis used_memory and the workers' heap are
 * sampled every 10 s; flat means max ÷ min over the second half within 10 %.
 */
import type { Producer } from 'kafkajs';
import type { Redis } from 'ioredis';
import { prng, zipfSampler } from '../src/load/generator';
import type { Isolated } from '../scripts/harness/isolated';
import { startRuntime, terminateSupervisors, terminateRegionWorkflows } from '../scripts/harness/runtime';
import { loadConfig } from '../src/config';
import type { SoakFigures } from './report';

/** Short horizons so the soak passes all of them: windows end and expire within minutes. */
export const SOAK_ENV = {
  HH_WINDOWS: '1m/10s/3m,2m/20s/2m,2m@1m/20s/2m',
  HH_DEDUP_HORIZON: '1m',
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Redis used_memory once its background frees are done (deletes, expiries and flushes of
 * large keys are freed lazily on another thread: lazyfree-* in the stack's redis.conf).
 */
export async function redisUsed(redis: Redis): Promise<number> {
  for (let i = 0; ; i++) {
    const info = await redis.info('memory');
    const pending = Number(/lazyfree_pending_objects:(\d+)/.exec(info)?.[1] ?? 0);
    if (pending === 0 || i >= 600) return Number(/used_memory:(\d+)/.exec(info)![1]);
    await sleep(50);
  }
}

/** The workers' live V8 heap: in use after the last full collection, summed over the workers by the primary. */
async function workerHeap(api: string): Promise<number> {
  const text = await (await fetch(`${api}/metrics`)).text();
  return Number(/^hh_heap_live_bytes (\d+(?:\.\d+)?(?:e\+\d+)?)/m.exec(text)?.[1] ?? NaN);
}

export async function soak(
  iso: Isolated,
  producer: Producer,
  opts: {
    mode: 'exact' | 'bounded';
    minutes: number;
    rate: number;
    regions: string[];
    topic: string;
    group: string;
    keyspace: string;
    log: (s: string) => void;
  },
): Promise<SoakFigures> {
  const rt = await startRuntime({
    ...iso.env,
    ...SOAK_ENV,
    HH_TOPK_MODE: opts.mode,
    HH_KAFKA_TOPIC: opts.topic,
    HH_KAFKA_GROUP: opts.group,
    HH_CASSANDRA_KEYSPACE: opts.keyspace,
    HH_WORKERS: '2',
  });
  const samples: [number, number, number][] = [];
  const t0 = Date.now();
  const endAt = t0 + opts.minutes * 60_000;
  let events = 0;
  let stop = false;
  // The producer: `rate` events/s over the regions; Zipf ranks mapped onto a window of post
  // ids that moves on by 10 posts a second, so new posts keep appearing and old ones fade.
  const produce = (async () => {
    const rand = prng(17);
    const rank = zipfSampler(5_000, 1.1, rand);
    const batch = Math.max(1, Math.round(opts.rate / 20));
    for (let i = 0; !stop;) {
      const now = Date.now();
      const shift = Math.floor((now - t0) / 100); // 10 new posts a second
      const messages = [];
      for (let j = 0; j < batch; j++, i++) {
        const region = opts.regions[i % opts.regions.length];
        messages.push({
          key: region,
          value: JSON.stringify({ event_id: `soak-${opts.mode}-${i}`, post_id: `s${rank() + shift}`, region_id: region, timestamp: now }),
        });
      }
      await producer.send({ topic: opts.topic, acks: -1, messages }).catch(() => undefined);
      events += messages.length;
      const due = t0 + (events * 1000) / opts.rate;
      if (due > Date.now()) await sleep(due - Date.now());
    }
  })();
  try {
    while (Date.now() < endAt) {
      await sleep(10_000);
      const [used, heap] = await Promise.all([redisUsed(iso.redis), workerHeap(rt.api).catch(() => NaN)]);
      samples.push([Math.round((Date.now() - t0) / 1000), used, heap]);
      opts.log(
        `    soak ${opts.mode}: ${samples[samples.length - 1][0]} s, Redis ${(used / 2 ** 20).toFixed(1)} MiB, worker heap ${(heap / 2 ** 20).toFixed(1)} MiB`,
      );
    }
  } finally {
    stop = true;
    await produce;
    await rt.stop();
    await terminateSupervisors(rt.cfg);
    await terminateRegionWorkflows(loadConfig(), opts.regions);
  }
  const half = samples.slice(Math.floor(samples.length / 2));
  const ratio = (i: 1 | 2) => {
    const v = half.map((x) => x[i]).filter(Number.isFinite);
    return Math.round((Math.max(...v) / Math.min(...v)) * 1000) / 1000;
  };
  return { mode: opts.mode, minutes: opts.minutes, rate_eps: opts.rate, events, samples, redis_used_bytes_ratio: ratio(1), worker_heap_ratio: ratio(2) };
}
