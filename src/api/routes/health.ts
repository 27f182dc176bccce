/** GET /healthz (each dependency, the ingest slots, lag, recovery) and GET /metrics (Prometheus text of every worker). */
import { Router } from 'express';
import type { HealthReport } from '../../runtime/health';
import { HttpError } from '../errors';

export function healthRouter(health: () => Promise<HealthReport>, metrics?: () => Promise<{ contentType: string; body: string }>): Router {
  const router = Router();
  router.get('/healthz', async (_req, res) => {
    const report = await health();
    // Answers come from Redis: without it the API is down; without another part, degraded.
    res.status(report.status === 'down' ? 503 : 200).json(report);
  });
  router.get('/metrics', async (_req, res) => {
    if (!metrics) throw new HttpError(404, 'metrics are not enabled on this process', 'path');
    const m = await metrics();
    res.type(m.contentType).send(m.body);
  });
  return router;
}
