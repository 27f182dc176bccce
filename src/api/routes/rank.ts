/** GET /posts/:post_id/rank: a post's rank, count and neighbours in a region (or globally). */
import { Router } from 'express';
import { ALL_TIME } from '../../keys';
import { enumParam, idValue, intParam, regionParam } from '../params';
import type { ReadService } from '../read-service';

export function rankRouter(read: ReadService): Router {
  const router = Router();
  router.get('/posts/:post_id/rank', async (req, res) => {
    const postId = idValue('post_id', req.params.post_id as string, '/posts/post-9/rank');
    const region = regionParam(req);
    const timeframe = enumParam(req, 'timeframe', read.timeframes, ALL_TIME);
    const around = intParam(req, 'neighbours', 0, 50, 2);
    res.json(await read.rank(region, postId, timeframe, around));
  });
  return router;
}
