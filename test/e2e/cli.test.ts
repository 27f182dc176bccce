/**
 * The `hh` command line against a running runtime: produce from stdin, top, rank, windows,
 * recompute, dlq tail, health — in human and JSON form — and its exit codes.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { expect } from 'chai';
import { PROJECT_ROOT } from '../../src/config';
import { Isolated } from '../../scripts/harness/isolated';
import { startRuntime, waitDrained, type Runtime } from '../../scripts/harness/runtime';
import { unique } from '../helpers';
import { dumpOnFailure } from '../support/failure';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('hh, the command line (against a running runtime)', function () {
  this.timeout(180_000);
  const id = unique('cli');
  const region = `${id}_R`;
  const iso = new Isolated(id, {
    HH_WORKERS: '1',
    HH_WINDOWS: '2s/1s/10m',
    HH_WATERMARK_DELAY: '500ms',
    HH_IDLE_TIMEOUT: '2s',
    HH_WATERMARK_REPORT_INTERVAL: '300ms',
  });
  let rt: Runtime;

  /** Runs `hh <args>` as a user would (bin/hh), with this suite's environment. */
  const hh = (args: string[], stdin = ''): Promise<{ code: number; out: string; err: string }> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'hh'), ...args], { env: { ...process.env, ...iso.env } });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('close', (code) => resolve({ code: code ?? -1, out, err }));
      child.stdin.end(stdin);
    });

  afterEach(function () {
    dumpOnFailure(this, rt);
  });
  before(async () => {
    await iso.setUp();
    rt = await startRuntime(iso.env);
  });
  after(async () => {
    await iso.tearDown(rt, [region]);
  });

  it('--help and usage errors: exit 0 with the help, exit 2 with a message', async () => {
    const help = await hh(['--help']);
    expect(help.code).to.equal(0);
    expect(help.out)
      .to.match(/usage: hh <command>/)
      .and.match(/exit codes/);
    const none = await hh([]);
    expect(none.code).to.equal(2);
    const missing = await hh(['top']);
    expect(missing.code).to.equal(2);
    expect(missing.err).to.match(/top: which region/);
    expect((await hh(['frobnicate'])).err).to.match(/unknown command "frobnicate"/);
    expect((await hh(['top', region, '--k', 'ten'])).code).to.equal(2);
    expect((await hh(['windows', region, '--state', 'SLEEPY'])).err).to.match(/--state must be one of OPEN, CLOSED, FINAL, EXPIRED/);
  });

  /** When the events were stamped: their 2 s window is the one recompute rebuilds. */
  let stamped = 0;

  it('produce (NDJSON on stdin) then top and rank answer the exact counts, in JSON and as a table', async () => {
    const now = Date.now();
    stamped = now;
    const counts: Record<string, number> = { 'p-a': 5, 'p-b': 3, 'p-c': 1 };
    let n = 0;
    const lines = Object.entries(counts).flatMap(([post, c]) =>
      Array.from({ length: c }, () => JSON.stringify({ event_id: `${id}-${n++}`, post_id: post, region_id: region, timestamp: now })),
    );
    const bad = JSON.stringify({ event_id: `${id}-bad`, post_id: '', region_id: region, timestamp: now });
    const sent = await hh(['produce', '--json'], [...lines, bad].join('\n') + '\n');
    expect(sent.code, sent.err).to.equal(1); // one event refused: reported, the others produced
    const report = JSON.parse(sent.out) as { sent: number; accepted: number; rejected: { index: number; reason: string }[] };
    expect(report).to.deep.include({ sent: 10, accepted: 9 });
    expect(report.rejected).to.have.length(1);
    expect(report.rejected[0].index).to.equal(9);
    expect(report.rejected[0].reason).to.match(/post_id/);
    await waitDrained(iso.admin, iso.env.HH_KAFKA_GROUP, iso.env.HH_KAFKA_TOPIC);

    const top = await hh(['top', region, '--k', '10', '--json']);
    expect(top.code, top.err).to.equal(0);
    const answer = JSON.parse(top.out) as { top_posts: { post_id: string; view_count: number }[] };
    expect(answer.top_posts.map((p) => [p.post_id, p.view_count])).to.deep.equal([
      ['p-a', 5],
      ['p-b', 3],
      ['p-c', 1],
    ]);
    const table = await hh(['top', region]);
    expect(table.code).to.equal(0);
    expect(table.out.split('\n')[1]).to.match(/^#\s+post\s+views\s+author\s+content/);
    expect(table.out.split('\n')[2]).to.match(/^1\s+p-a\s+5\b/);

    const rank = await hh(['rank', 'p-b', '--region', region, '--json']);
    expect(rank.code, rank.err).to.equal(0);
    expect(JSON.parse(rank.out)).to.deep.include({ rank: 2, view_count: 3 });
    const unknown = await hh(['top', `${id}_nowhere`]);
    expect(unknown.code).to.equal(3);
  });

  it('windows lists the region’s windows with their state and UI link; recompute rebuilds a FINAL one', async () => {
    // The window of the produced events (2 s tumbling) turns FINAL once the watermark passes it.
    const ours = `window:${region}:2s:${stamped - (stamped % 2000)}`;
    let finals: { id: string; state: string; link: string }[] = [];
    const t0 = Date.now();
    while (Date.now() - t0 < 90_000) {
      const w = await hh(['windows', region, '--state', 'FINAL', '--json']);
      expect(w.code, w.err).to.equal(0);
      finals = (JSON.parse(w.out) as { windows: { id: string; state: string; link: string }[] }).windows.filter((x) => x.id === ours);
      if (finals.length) break;
      await sleep(2000);
    }
    expect(finals.length, `${ours} FINAL`).to.equal(1);
    expect(finals[0].state).to.equal('FINAL');
    expect(finals[0].id).to.match(new RegExp(`^window:${region}:2s:\\d+$`));
    expect(finals[0].link).to.match(/^http:\/\/127\.0\.0\.1:\d+\/namespaces\/[^/]+\/workflows\/window/);
    const human = await hh(['windows', region]);
    expect(human.out)
      .to.include(finals[0].id)
      .and.match(/in the Temporal UI: http/);
    const re = await hh(['recompute', finals[0].id, '--json']);
    expect(re.code, re.err).to.equal(0);
    expect(JSON.parse(re.out)).to.have.property('events', 9);
    expect((await hh(['recompute', 'window:nowhere:2s:0'])).code).to.equal(3);
  });

  it('dlq tail shows the dead letters with their reasons; health answers', async () => {
    await iso.producer.send({ topic: iso.env.HH_KAFKA_TOPIC, messages: [{ key: region, value: 'not json at all' }] });
    await waitDrained(iso.admin, iso.env.HH_KAFKA_GROUP, iso.env.HH_KAFKA_TOPIC);
    const tail = await hh(['dlq', 'tail', '--n', '5', '--json']);
    expect(tail.code, tail.err).to.equal(0);
    const dead = (JSON.parse(tail.out) as { dead_letters: { reason: string; value: string }[] }).dead_letters;
    expect(dead.map((d) => d.value)).to.include('not json at all');
    expect(dead.find((d) => d.value === 'not json at all')!.reason).to.match(/not valid JSON/);
    const human = await hh(['dlq', 'tail']);
    expect(human.out)
      .to.match(/source\s+reason\s+value/)
      .and.include('not json at all');
    const health = await hh(['health', '--json']);
    expect(health.code, health.err).to.equal(0);
    expect(JSON.parse(health.out)).to.have.property('status');
  });
});
