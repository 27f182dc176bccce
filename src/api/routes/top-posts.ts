/** GET /top-posts: the top K of a region or of all regions, over all time, a trailing timeframe or one window. */
import type { TopKMode } from '../../config';
import { Router } from 'express';
import { ALL_TIME } from '../../keys';
import type { AnswerCache } from '../cache';
import { badParam } from '../errors';
import { enumParam, intParam, one, regionParam, windowParam } from '../params';
import { GLOBAL, VARIANTS, type ReadService, type TopPostsAnswer } from '../read-service';

export interface TopPostsLimits {
  maxK: number;
  /** Entries of each global key: `region=global` answers k up to this. */
  globalK: number;
  /** Entries of a bounded leaderboard. */
  boundedK: number;
  mode: TopKMode;
}

export function topPostsRouter(read: ReadService, answers: AnswerCache, limits: TopPostsLimits): Router {
  const router = Router();
  const bounded = limits.mode === 'bounded';
  // In bounded mode every answer says its counts are estimates.
  const estimated = bounded ? { estimated: true } : {};

  router.get('/top-posts', async (req, res) => {
    const region = regionParam(req);
    const rawWindow = one(req, 'window');
    if (rawWindow !== undefined && one(req, 'timeframe') !== undefined) throw badParam('window', 'give either window or timeframe, not both');
    const timeframe = enumParam(req, 'timeframe', read.timeframes, ALL_TIME);
    const variant = enumParam(req, 'variant', VARIANTS, 'exact');
    if (variant === 'bounded' && (region === GLOBAL || timeframe !== ALL_TIME || rawWindow !== undefined)) {
      throw badParam('variant', "variant=bounded exists for a region's all-time timeframe only");
    }
    const maxK =
      region === GLOBAL ? Math.min(limits.maxK, limits.globalK) : variant === 'bounded' || bounded ? Math.min(limits.maxK, limits.boundedK) : limits.maxK;
    const k = intParam(req, 'k', 1, maxK, 10);
    const window = rawWindow === undefined ? undefined : windowParam(rawWindow, read.specs);
    const body = await answers.get([region, rawWindow ?? '', timeframe, variant, k].join('\u0000'), async () => {
      let answer: TopPostsAnswer;
      if (window) answer = await read.windowTop(region, window, k);
      else if (region === GLOBAL) answer = await read.globalTop(timeframe, variant, k);
      else answer = await read.regionTop(region, timeframe, variant, k);
      return Buffer.from(JSON.stringify({ ...answer, ...estimated }));
    });
    res.type('application/json').send(body);
  });
  return router;
}
