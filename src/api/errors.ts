/** The API's error: an HTTP status, a message, and the parameter it is about. */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { ErrorRequestHandler, Request, RequestHandler } from 'express';

/** A log line of the API, with structured fields (the request id among them). */
export type ApiLog = (message: string, fields?: Record<string, unknown>) => void;

export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
    readonly param?: string,
    /** Extra response headers (e.g. Retry-After). */
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

/** A 400 naming the request parameter that is wrong. */
export const badParam = (param: string, message: string): HttpError => new HttpError(400, message, param);

/**
 * Every error becomes JSON `{error, param?}`: HttpErrors with their status, the framework's
 * own 4xx errors (a body that is not JSON or too large, a path that does not decode) with
 * theirs, anything else a 500 that is logged.
 */
/** The request's id: the caller's `X-Request-Id` when it is a sane token, else a fresh UUID (set by requestIds). */
export const requestId = (req: Request): string => (req.res?.locals.requestId as string | undefined) ?? 'none';

/** A request's id: the caller's `X-Request-Id` when it is a sane token, else a fresh UUID. */
export function newRequestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && /^[A-Za-z0-9._:-]{1,64}$/.test(given) ? given : randomUUID();
}

/** Gives every request an id, echoed in `X-Request-Id` and carried by every log line about it. */
export function requestIds(): RequestHandler {
  return (req, res, next) => {
    const id = newRequestId(req);
    res.locals.requestId = id;
    res.set('x-request-id', id);
    next();
  };
}

export function errorHandler(log: ApiLog): ErrorRequestHandler {
  return (err: Error & { type?: string; status?: number }, req, res, next) => {
    if (res.headersSent) return next(err);
    if (err instanceof HttpError) {
      if (err.headers) res.set(err.headers);
      return res.status(err.status).json({ error: err.message, ...(err.param ? { param: err.param } : {}) });
    }
    if (err.type === 'entity.parse.failed') return res.status(400).json({ error: `body is not valid JSON: ${err.message}`, param: 'body' });
    if (err.type === 'entity.too.large') return res.status(413).json({ error: 'body too large', param: 'body' });
    if (typeof err.status === 'number' && err.status >= 400 && err.status < 500) {
      // e.g. a path segment that is not valid percent-encoding ("/posts/%FF/rank").
      return res.status(err.status).json({ error: err.message, param: err instanceof URIError || /decode/i.test(err.message) ? 'path' : 'request' });
    }
    log(`api error: ${err.stack ?? err.message}`, { request_id: requestId(req), method: req.method, path: req.path });
    res.status(500).json({ error: 'internal error' });
  };
}
