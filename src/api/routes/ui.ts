/**
 * The live page at `/` (static files of src/api/public and uPlot from node_modules: nothing
 * from a CDN) and the small JSON it reads besides /top-posts and /metrics: the page's
 * choices (/ui/config), the known regions (/regions) and a region's windows (/windows).
 */
import * as path from 'node:path';
import express, { Router } from 'express';
import { badParam, HttpError } from '../errors';
import { WINDOW_STATES, type WindowQuery, type WindowRow } from '../window-list';

export const PUBLIC_DIR = path.join(__dirname, '..', 'public');
const UPLOT_DIR = path.dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));

export interface UiOptions {
  /** `all` and the trailing timeframes (one per tumbling size). */
  timeframes: string[];
  regions: () => Promise<string[]>;
  windows?: (q: WindowQuery) => Promise<{ query: string; ui: string; windows: WindowRow[] }>;
}

export function uiRouter(opts: UiOptions): Router {
  const router = Router();
  router.get('/', (_req, res) => res.sendFile(path.join(PUBLIC_DIR, 'index.html')));
  // A missing asset falls through to the API's JSON 404 (no file system path in the answer).
  router.use('/assets/uplot', express.static(UPLOT_DIR, { maxAge: '1h', index: false }));
  router.use('/assets', express.static(PUBLIC_DIR, { maxAge: '1m', index: false }));
  router.get('/ui/config', (_req, res) => res.json({ timeframes: opts.timeframes }));
  router.get('/regions', async (_req, res) => {
    res.json({ regions: [...(await opts.regions())].sort() });
  });
  router.get('/windows', async (req, res) => {
    const one = (name: string) => {
      const v = req.query[name];
      if (v !== undefined && typeof v !== 'string') throw badParam(name, `${name} must be given once`);
      return v;
    };
    const region = one('region');
    if (!region || region.length > 128) throw badParam('region', 'region is required (at most 128 characters)');
    const state = one('state')?.toUpperCase();
    if (state && !(WINDOW_STATES as readonly string[]).includes(state)) throw badParam('state', `state must be one of ${WINDOW_STATES.join(', ')}`);
    const spec = one('spec');
    if (spec !== undefined && !/^[A-Za-z0-9@/]{1,40}$/.test(spec)) throw badParam('spec', 'spec must be a window spec such as 1m or 5m@1m');
    const limitText = one('limit') ?? '20';
    const limit = Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 200) throw badParam('limit', 'limit must be a whole number from 1 to 200');
    if (!opts.windows) throw new HttpError(503, 'window listing is not available on this process');
    res.json(await opts.windows({ region, state, spec, limit }));
  });
  return router;
}
