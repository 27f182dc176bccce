/**
 * The API benchmark's limit: bare Express on the same port model as the runtime (a cluster
 * of HH_WORKERS processes sharing one port) answering GET /top-posts with a constant body
 * (BENCH_BODY) of the size of a real answer. Usage: BENCH_PORT=… BENCH_BODY=… tsx bench/bare-express.ts
 */
import cluster from 'node:cluster';
import express from 'express';

const port = Number(process.env.BENCH_PORT ?? 3900);
const workers = Number(process.env.HH_WORKERS ?? 2);
const body = process.env.BENCH_BODY ?? '{}';

if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  const pids: number[] = [];
  cluster.on('listening', (w) => {
    pids.push(w.process.pid!);
    if (pids.length === workers) process.stdout.write(`bare express listening on ${port} (${workers} workers, pids ${pids.join(',')})\n`);
  });
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.kill('SIGTERM');
    process.exit(0);
  });
} else {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.get('/top-posts', (_req, res) => {
    res.type('application/json').send(body);
  });
  app.listen(port, '127.0.0.1');
}
