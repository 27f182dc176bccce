import { expect } from 'chai';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { responseLength, steadyLoad, steadyLoadTurns, turnSchedule } from '../../bench/steady-load';

/** A local server answering every request after `delayMs`, with `status`, at most one at a time when `serial`. */
async function server(opts: { delayMs: number; status?: number; serial?: boolean }) {
  let chain = Promise.resolve();
  let served = 0;
  let connections = 0;
  const s = http.createServer((_req, res) => {
    const answer = () =>
      new Promise<void>((resolve) =>
        setTimeout(() => {
          served++;
          res.writeHead(opts.status ?? 200, { 'content-type': 'text/plain', 'content-length': '2' }).end('ok');
          resolve();
        }, opts.delayMs),
      );
    if (opts.serial) chain = chain.then(answer);
    else void answer();
  });
  s.on('connection', () => connections++);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}/top-posts?region=NA`;
  return { url, served: () => served, connections: () => connections, close: () => new Promise<void>((r) => s.close(() => r())) };
}

describe('bench steady load', () => {
  it('reads a response length from its headers, and refuses one without content-length', () => {
    expect(responseLength(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n'))).to.equal(null);
    expect(responseLength(Buffer.from('HTTP/1.1 404 Not Found\r\ncontent-length: 12\r\n\r\n'))).to.deep.equal({ length: 58, status: 404 });
    expect(() => responseLength(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'))).to.throw(/content-length/);
  });

  it('fails the run on an answer it cannot read (no content-length)', async () => {
    const s = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok'));
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}/`;
      let error: Error | undefined;
      await steadyLoad(url, { rate: 50, seconds: 0.2 }).catch((e: Error) => (error = e));
      expect(error?.message).to.match(/without content-length/);
    } finally {
      await new Promise<void>((r) => s.close(() => r()));
    }
  });

  it('sends rate x seconds requests, over keep-alive connections, and counts non-2xx answers', async () => {
    const ok = await server({ delayMs: 0 });
    const bad = await server({ delayMs: 0, status: 503 });
    try {
      const r = await steadyLoad(ok.url, { rate: 200, seconds: 1 });
      expect(r.requests).to.equal(200);
      expect(ok.served()).to.equal(200);
      expect(r.non2xx).to.equal(0);
      expect(r.errors).to.equal(0);
      const b = await steadyLoad(bad.url, { rate: 100, seconds: 1 });
      expect(b.non2xx).to.equal(100);
    } finally {
      await ok.close();
      await bad.close();
    }
  });

  it('does not reuse a connection idle for longer than the limit (the server may be closing it: its keep-alive timeout)', async () => {
    const s = await server({ delayMs: 0 });
    try {
      // A request every 100 ms, each answered at once: one connection carries them (a second
      // only if this process stalled past a due time with the answer unread) ...
      const kept = await steadyLoad(s.url, { rate: 10, seconds: 1 });
      expect(kept.requests).to.equal(10);
      const before = s.connections();
      expect(before).to.be.at.most(2);
      // ... unless an idle connection is too old after 50 ms: then each goes on a new one.
      const fresh = await steadyLoad(s.url, { rate: 10, seconds: 1, idleMs: 50 });
      expect([fresh.requests, fresh.errors]).to.deep.equal([10, 0]);
      expect(s.connections() - before).to.be.at.least(8);
    } finally {
      await s.close();
    }
  });

  it('times a request from when it was due, so waiting behind a slow server counts (open loop)', async () => {
    // One answer at a time, 20 ms each: 50 answers a second against 100 asked. A closed loop
    // (timed from the send) would see ~20 ms per request; here the line grows over the second.
    const slow = await server({ delayMs: 20, serial: true });
    try {
      const r = await steadyLoad(slow.url, { rate: 100, seconds: 1, connections: 4 });
      expect(r.requests).to.equal(100);
      // The last of 100 requests is answered no sooner than 100 x 20 ms after the first was
      // due, while it was due 990 ms after it: waited at least ~1 s more than one answer takes.
      expect(r.max_ms).to.be.greaterThan(900);
      expect(r.p99_ms).to.be.greaterThan(r.p50_ms);
    } finally {
      await slow.close();
    }
  });

  it('schedules whole turns, each server once a round, in a shuffled order that is the same in every run', () => {
    // 400 requests in turns of 20: 20 turns, 10 rounds of both servers.
    const schedule = (next: (i: number) => number) => Array.from({ length: 400 }, (_, i) => next(i));
    const order = schedule(turnSchedule(2, 20));
    expect(schedule(turnSchedule(2, 20))).to.deep.equal(order);
    for (let round = 0; round < 10; round++) {
      const turns = [0, 1].map((t) => order.slice(round * 40 + t * 20, round * 40 + (t + 1) * 20));
      for (const turn of turns) expect(new Set(turn).size, `round ${round}: a whole turn`).to.equal(1);
      expect(turns.map((t) => t[0]).sort(), `round ${round}: each server once`).to.deep.equal([0, 1]);
    }
    // A round does not always start with the same server, so some server has two turns in a row.
    const runs: number[] = [];
    for (const [i, x] of order.entries()) {
      if (i > 0 && order[i - 1] === x) runs[runs.length - 1]++;
      else runs.push(1);
    }
    expect(Math.max(...runs)).to.be.at.least(40);
    // Three servers: every round holds each one turn.
    const three = Array.from({ length: 30 }, (_, i) => turnSchedule(3, 1)(i));
    for (let round = 0; round < 10; round++) expect([...three.slice(round * 3, round * 3 + 3)].sort()).to.deep.equal([0, 1, 2]);
  });

  it('measures several servers in one run by turns, each with its own figures', async () => {
    const fast = await server({ delayMs: 0 });
    const slow = await server({ delayMs: 30 });
    try {
      // 400 requests at 400/s in turns of 20 (50 ms), as turnSchedule(2, 20) orders them.
      const [a, b] = await steadyLoadTurns([fast.url, slow.url], { rate: 400, seconds: 1, turnMs: 50 });
      expect([a.requests, b.requests]).to.deep.equal([200, 200]);
      expect([fast.served(), slow.served()]).to.deep.equal([200, 200]);
      // Each has its own latencies: the slow one's 30 ms are not the fast one's.
      expect(b.p50_ms).to.be.greaterThan(25);
      expect(a.p50_ms).to.be.lessThan(b.p50_ms);
    } finally {
      await fast.close();
      await slow.close();
    }
  });
});
