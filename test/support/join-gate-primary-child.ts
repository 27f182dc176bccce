/**
 * A cluster primary serving the join gate (servePrimary with `join`) to two forked workers:
 * slot 2's asks 1.5 s after slot 1's. Each worker tells the primary when it asked and when it
 * was let go; the primary prints them, one JSON line, and the gate's log lines.
 */
import cluster, { type Worker } from 'node:cluster';
import { awaitJoinTurn, servePrimary } from '../../src/runtime/ipc';

type Report = { type: 'test:released'; slot: number; askedAt: number; releasedAt: number };

if (cluster.isPrimary) {
  const bySlot = new Map<number, Worker>();
  servePrimary(() => [1, 2].map((slot) => ({ slot, pid: bySlot.get(slot)?.process.pid ?? null, workerId: bySlot.get(slot)?.id ?? null })), {
    slots: 2,
    waitMs: 8_000,
  });
  const reports: Report[] = [];
  for (const slot of [1, 2]) {
    const w = cluster.fork({ SLOT: String(slot), DELAY_MS: slot === 2 ? '1500' : '0' });
    bySlot.set(slot, w);
    w.on('message', (m: Report) => {
      if (m?.type !== 'test:released') return;
      reports.push(m);
      if (reports.length < 2) return;
      process.stdout.write(`${JSON.stringify(reports.sort((a, b) => a.slot - b.slot))}\n`);
      for (const x of bySlot.values()) x.kill();
      process.exit(0);
    });
  }
} else {
  const slot = Number(process.env.SLOT);
  setTimeout(() => {
    const askedAt = Date.now();
    awaitJoinTurn(8_000).then(
      () => process.send!({ type: 'test:released', slot, askedAt, releasedAt: Date.now() } satisfies Report),
      (e: Error) => {
        process.stderr.write(`slot ${slot}: ${e.message}\n`);
        process.exit(1);
      },
    );
  }, Number(process.env.DELAY_MS));
}
