/** The Express query API. Reads only; never writes counts. */
import express, { type Request, type Response } from 'express';
import type { Redis } from 'ioredis';
import { regionTopKey } from '../keys';
import type { Probe } from '../health';

export const MAX_K = 1000;
const REGION = /^[A-Za-z0-9_-]{1,64}$/;

export interface ApiDeps {
  redis: Redis;
  /** Probes every dependency (GET /healthz). */
  probe: () => Promise<Probe[]>;
}

export class BadRequest extends Error {
  constructor(readonly param: string, message: string) {
    super(message);
  }
}

function parseK(raw: unknown): number {
  if (raw === undefined) return 10;
  if (typeof raw !== 'string' || !/^\d+$/.test(raw)) throw new BadRequest('k', `k must be an integer in 1..${MAX_K}`);
  const k = Number(raw);
  if (k < 1 || k > MAX_K) throw new BadRequest('k', `k must be an integer in 1..${MAX_K}`);
  return k;
}

function parseRegion(raw: unknown): string {
  if (typeof raw !== 'string' || !REGION.test(raw)) throw new BadRequest('region', 'region is required: 1-64 characters of A-Z, a-z, 0-9, _ or -');
  return raw;
}

export function createApp(deps: ApiDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');

  app.get('/healthz', async (_req: Request, res: Response) => {
    const probes = await deps.probe();
    const ok = probes.every((p) => p.up);
    res.status(ok ? 200 : 503).json({
      status: ok ? 'ok' : 'degraded',
      dependencies: Object.fromEntries(probes.map((p) => [p.service, { up: p.up, version: p.version ?? null, error: p.error ?? null, ms: p.ms }])),
    });
  });

  app.get('/top-posts', async (req: Request, res: Response) => {
    const region = parseRegion(req.query.region);
    const k = parseK(req.query.k);
    const flat = await deps.redis.zrevrange(regionTopKey(region), 0, k - 1, 'WITHSCORES');
    const top_posts = [];
    for (let i = 0; i < flat.length; i += 2) top_posts.push({ post_id: flat[i], author: null, view_count: Number(flat[i + 1]), content: null });
    res.json({ region, timeframe: 'all', top_posts });
  });

  app.use((err: Error, _req: Request, res: Response, next: express.NextFunction) => {
    if (res.headersSent) return next(err);
    if (err instanceof BadRequest) return res.status(400).json({ error: err.message, param: err.param });
    res.status(500).json({ error: 'internal error' });
  });
  return app;
}
