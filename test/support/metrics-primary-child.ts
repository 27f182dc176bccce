/**
 * A cluster primary serving the workers' requests (servePrimary) whose one worker is killed
 * (-9) and not yet reaped when the primary asks every worker for its metrics: the send to it
 * fails (EPIPE). Prints "primary alive" if the primary survives that.
 */
import cluster from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { servePrimary } from '../../src/runtime/ipc';

if (cluster.isPrimary) {
  servePrimary(() => []);
  const w = cluster.fork();
  w.once('online', () => {
    process.kill(w.process.pid!, 'SIGKILL');
    // Synchronously: the worker is gone, and its exit is not yet seen (no event runs meanwhile).
    const t = Date.now();
    while (Date.now() - t < 300);
    new AggregatorRegistry().clusterMetrics().catch(() => undefined);
    setTimeout(() => {
      process.stdout.write('primary alive\n');
      process.exit(0);
    }, 1000);
  });
} else {
  setInterval(() => undefined, 1000);
}
