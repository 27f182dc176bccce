/**
 * The Express API: the app only wires one router per resource (routes/). Queries read
 * through the ReadService (which says what each answer is: live, recovering, from the
 * record); `POST /events` only validates and produces to Kafka (counting is the hot
 * path's job) and needs a producer key. Every route but the health ones is rate-limited
 * per client. Every bad parameter is a 400 naming it; an unknown region is a 404. The
 * server's listener hands a GET /top-posts whose answer is ready straight to
 * routes/top-posts.ts's fast path (the same answer and headers, without Express's
 * per-request work); everything else goes through Express.
 */
import { createServer, type RequestListener, type Server } from 'node:http';
import express from 'express';
import type { HealthReport } from '../runtime/health';
import type { RateLimiter } from '../store/rate-limit';
import { AnswerCache } from './cache';
import type { Credentials } from './auth';
import { createRateLimit } from './rate-limit';
import { HttpError, errorHandler, requestIds, type ApiLog } from './errors';
import { uiRouter, type UiOptions } from './routes/ui';
import type { ReadService } from './read-service';
import { adminRouter, type AdminOptions } from './routes/admin';
import { eventsRouter, type EventsOptions } from './routes/events';
import { healthRouter } from './routes/health';
import { rankRouter } from './routes/rank';
import { topPostsFastPath, topPostsRouter, type TopPostsLimits } from './routes/top-posts';

export interface ApiDeps {
  read: ReadService;
  limits: TopPostsLimits;
  /**
   * How long a GET /top-posts answer is reused (ms); concurrent identical requests always
   * share one read. 0 = no reuse beyond that.
   */
  cacheMs: number;
  health: () => Promise<HealthReport>;
  /** Prometheus exposition of the metrics (GET /metrics). */
  metrics?: () => Promise<{ contentType: string; body: string }>;
  /** POST /events; without it the endpoint answers 503. */
  events?: EventsOptions;
  admin: AdminOptions;
  credentials: Credentials;
  /** Per-client limits of every route but /healthz and /metrics; none = unlimited. */
  rateLimiter?: RateLimiter;
  onRateLimited?: (client: string) => void;
  onRateLimitUnavailable?: (e: Error) => void;
  /** The live page at `/` and its JSON (absent: no page). */
  ui?: UiOptions;
  log: ApiLog;
}

/** The API: its Express app, and the request listener that serves it (ready GET /top-posts answers first, without Express). */
export interface Api {
  app: express.Express;
  listener: RequestListener;
  /** An HTTP server of the listener, listening. */
  listen(port: number, host?: string): Server;
}

export function createApi(deps: ApiDeps): Api {
  const answers = new AnswerCache(deps.cacheMs);
  const limit = deps.rateLimiter
    ? createRateLimit({ limiter: deps.rateLimiter, credentials: deps.credentials, onRefused: deps.onRateLimited, onUnavailable: deps.onRateLimitUnavailable })
    : undefined;
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.use(requestIds());
  app.use(healthRouter(deps.health, deps.metrics));
  if (limit) app.use(limit.middleware);
  app.use(topPostsRouter(deps.read, answers, deps.limits));
  app.use(rankRouter(deps.read));
  if (deps.events) app.use(eventsRouter(deps.events));
  else
    app.post('/events', () => {
      throw new HttpError(503, 'ingest through the API is not enabled on this process');
    });
  app.use(adminRouter(deps.admin));
  if (deps.ui) app.use(uiRouter(deps.ui));
  app.use((_req, _res, next) => next(new HttpError(404, 'no such endpoint', 'path')));
  app.use(errorHandler(deps.log));
  const fast = topPostsFastPath(deps.read, answers, deps.limits, limit);
  const listener: RequestListener = (req, res) => {
    if (!fast(req, res)) app(req, res);
  };
  return { app, listener, listen: (port, host) => createServer(listener).listen(port, host) };
}
