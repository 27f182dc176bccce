/**
 * npm run load -- --events N --regions R --posts P --zipf S --rate X --seed Z [--truth FILE] [--topic T] [--prefix P] [--metadata no]
 * Deterministic for a seed (ids, regions, posts); event time is the time of producing.
 * With --truth, writes the exact counts it produced per region and post. First writes
 * the metadata (author, content) of all P posts to Cassandra unless --metadata no.
 */
import * as fs from 'node:fs';
import { Partitioners } from 'kafkajs';
import { config } from '../src/config';
import { kafkaClient } from '../src/clients';
import { produceLoad } from '../src/load/produce';
import { postMetadata } from '../src/load/generator';
import { writePosts } from '../src/store/posts';
import { cassandraClient } from '../src/clients';

function parseArgs(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument "${a}"`);
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${a} needs a value`);
    out[a.slice(2)] = v;
    i++;
  }
  return out;
}

function num(args: Record<string, string>, name: string, fallback: number, min: number): number {
  const raw = args[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number >= ${min}, got "${raw}"`);
  return n;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const known = ['events', 'regions', 'posts', 'zipf', 'rate', 'seed', 'truth', 'topic', 'prefix', 'metadata'];
  for (const k of Object.keys(args)) if (!known.includes(k)) throw new Error(`unknown option --${k} (known: ${known.map((x) => `--${x}`).join(' ')})`);
  const cfg = config();
  const opts = {
    events: Math.floor(num(args, 'events', 100_000, 1)),
    regions: Math.floor(num(args, 'regions', 8, 1)),
    posts: Math.floor(num(args, 'posts', 10_000, 1)),
    zipf: num(args, 'zipf', 1.1, 0),
    rate: num(args, 'rate', 0, 0),
    seed: Math.floor(num(args, 'seed', 1, 0)),
    topic: args.topic ?? cfg.kafka.topic,
    prefix: args.prefix ?? '',
  };
  if ((args.metadata ?? 'yes') !== 'no') {
    // Every post the stream can name gets its metadata first, so answers show real authors.
    const client = cassandraClient(cfg, 'writer', cfg.cassandra.keyspace);
    const t0 = Date.now();
    const n = await writePosts(
      client,
      cfg.cassandra.keyspace,
      (function* () {
        for (let i = 0; i < opts.posts; i++) yield postMetadata(i, opts.prefix);
      })(),
    );
    await client.shutdown();
    process.stdout.write(`[load] wrote metadata of ${n} posts in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  }
  const producer = kafkaClient(cfg, 'heavy-hitters-load', 'producer').producer({
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  process.once('SIGTERM', () => stop.abort());
  const res = await produceLoad(producer, {
    ...opts,
    signal: stop.signal,
    onRetry: (e, attempt) => {
      if (attempt === 1 || attempt % 20 === 0) process.stdout.write(`[load] Kafka did not acknowledge a send (${e.message}); retrying until it does\n`);
    },
    onProgress: (sent, ms) => process.stdout.write(`[load] ${sent}/${opts.events} events, ${Math.round((sent * 1000) / Math.max(1, ms))} events/s\n`),
  });
  await producer.disconnect();
  if (args.truth) fs.writeFileSync(args.truth, JSON.stringify({ options: opts, sent: res.sent, counts: res.truth }));
  process.stdout.write(`[load] done: ${res.sent} events in ${(res.ms / 1000).toFixed(1)} s${args.truth ? `; truth in ${args.truth}` : ''}\n`);
}

main().catch((e: Error) => {
  process.stderr.write(`load: ${e.message}\n`);
  process.exit(1);
});
