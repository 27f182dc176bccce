/**
 * POST /events: validates a JSON array of events and produces the valid ones to Kafka
 * (counting is the hot path's job). 202 when all were accepted, 400 listing each rejected
 * index and reason (the valid ones are still produced).
 */
import express, { Router } from 'express';
import type { Producer } from 'kafkajs';
import { eventTimeError, validateObject, type EventTimeLimits } from '../../events';
import { sendChunked } from '../../produce-chunked';
import type { Credentials } from '../auth';
import { HttpError, badParam } from '../errors';

export interface EventsOptions {
  /** Who may produce: a producer key (Authorization: Bearer), checked before the body is read. */
  credentials: Credentials;
  producer: Producer;
  topic: string;
  /** Most events in one request. */
  maxEvents: number;
  /** Largest body (bytes). */
  maxBodyBytes: number;
  /** How deeply a body may nest arrays and objects (an event array needs 2). */
  maxDepth?: number;
  time: EventTimeLimits;
}

/**
 * Refuses a body nested deeper than `max` before it is parsed: a few megabytes of `[`
 * would otherwise keep the process in JSON.parse for seconds. One linear pass.
 */
export function nestingDepth(text: string, max: number): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92)
        i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > max) return depth;
    } else if (c === 93 || c === 125) depth--;
  }
  return depth;
}

export function eventsRouter(opts: EventsOptions): Router {
  const router = Router();
  const maxDepth = opts.maxDepth ?? 8;
  router.post(
    '/events',
    (req, _res, next) => {
      opts.credentials.requireProducer(req);
      next();
    },
    express.text({ type: ['application/json', 'application/*+json'], limit: opts.maxBodyBytes }),
    async (req, res) => {
      const text: unknown = req.body;
      if (typeof text !== 'string' || text.length === 0) throw badParam('body', 'body must be a JSON array of events (Content-Type: application/json)');
      if (nestingDepth(text, maxDepth) > maxDepth) throw badParam('body', `body nests arrays and objects deeper than ${maxDepth} levels`);
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch (e) {
        throw badParam('body', `body is not valid JSON: ${(e as Error).message}`);
      }
      if (!Array.isArray(body)) throw badParam('body', 'body must be a JSON array of events');
      if (body.length === 0) throw badParam('body', 'body must contain at least one event');
      if (body.length > opts.maxEvents) throw badParam('body', `at most ${opts.maxEvents} events per request`);
      const rejected: { index: number; reason: string }[] = [];
      const messages = [];
      const now = Date.now();
      for (let i = 0; i < body.length; i++) {
        const v = validateObject(body[i]);
        const reason = v.ok ? eventTimeError(v.event.timestamp, now, opts.time) : v.reason;
        if (reason !== undefined || !v.ok) rejected.push({ index: i, reason: reason! });
        else messages.push({ key: v.event.region_id, value: JSON.stringify(v.event) });
      }
      if (messages.length) {
        try {
          await sendChunked(opts.producer, [{ topic: opts.topic, messages }]);
        } catch (e) {
          // Part may have been written: sending the same events again is safe (deduplicated by event_id).
          throw new HttpError(503, `Kafka did not acknowledge the events (${(e as Error).message}); send them again`, undefined, { 'retry-after': '1' });
        }
      }
      if (rejected.length === 0) return void res.status(202).json({ accepted: messages.length, rejected });
      // Partly (or wholly) refused: a 400 like any other (error, param), with each refused index.
      res.status(400).json({
        error: `${rejected.length} of ${body.length} events rejected (the other ${messages.length} were accepted)`,
        param: 'body',
        accepted: messages.length,
        rejected,
      });
    },
  );
  return router;
}
