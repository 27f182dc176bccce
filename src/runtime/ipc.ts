/**
 * GET /metrics is answered by whichever worker the request reaches, with the metrics of
 * every worker: the worker asks the primary, which aggregates them (prom-client's
 * AggregatorRegistry over the cluster IPC channel).
 */
import cluster from 'node:cluster';
import { randomUUID } from 'node:crypto';
import { AggregatorRegistry } from 'prom-client';

interface MetricsRequest {
  type: 'hh:metrics';
  id: string;
}
interface MetricsReply {
  type: 'hh:metrics:reply';
  id: string;
  contentType: string;
  body?: string;
  error?: string;
}

/** In a worker: the cluster's aggregated metrics, via the primary. */
export function requestClusterMetrics(): Promise<{ contentType: string; body: string }> {
  if (!process.send) return Promise.reject(new Error('metrics need the cluster runtime (no primary to ask)'));
  const id = randomUUID();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      process.off('message', onMessage);
      reject(new Error('the primary did not answer the metrics request within 5 s'));
    }, 5000);
    const onMessage = (m: unknown) => {
      const r = m as MetricsReply;
      if (r?.type !== 'hh:metrics:reply' || r.id !== id) return;
      clearTimeout(timer);
      process.off('message', onMessage);
      if (r.error !== undefined) reject(new Error(r.error));
      else resolve({ contentType: r.contentType, body: r.body ?? '' });
    };
    process.on('message', onMessage);
    process.send!({ type: 'hh:metrics', id } satisfies MetricsRequest);
  });
}

/** In the primary: answers workers' metrics requests. */
export function serveClusterMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, m: unknown) => {
    const req = m as MetricsRequest;
    if (req?.type !== 'hh:metrics') return;
    aggregator.clusterMetrics().then(
      (body) => worker.send({ type: 'hh:metrics:reply', id: req.id, contentType: aggregator.contentType, body } satisfies MetricsReply),
      (e: Error) => worker.send({ type: 'hh:metrics:reply', id: req.id, contentType: 'text/plain', error: e.message } satisfies MetricsReply),
    );
  });
}
