/** The admin endpoints, behind a bearer token: rebuild Redis from the record, recompute a window. */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Router, type Request } from 'express';
import { WorkflowNotFoundError } from '@temporalio/client';
import { HttpError, badParam } from '../errors';

export interface AdminOptions {
  /** Bearer token of the /admin endpoints; undefined = they refuse. */
  token?: string;
  /** Drops Redis state and rebuilds it from the record. */
  forceRebuild?: () => Promise<{ epoch: string; dropped: number; restored: number }>;
  /** Asks a window workflow to rebuild its Redis key from its persisted snapshot. */
  recomputeWindow?: (workflowId: string) => Promise<{ posts: number; events: number }>;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export function adminRouter(opts: AdminOptions): Router {
  const router = Router();
  const want = opts.token === undefined ? undefined : digest(`Bearer ${opts.token}`);
  const authorize = (req: Request) => {
    if (!want) throw new HttpError(403, 'admin endpoints are disabled: set HH_ADMIN_TOKEN');
    // Compared in constant time (of equal-length digests): no timing hints at the token.
    if (!timingSafeEqual(digest(req.get('authorization') ?? ''), want)) {
      throw new HttpError(401, 'admin endpoints need "Authorization: Bearer <HH_ADMIN_TOKEN>"', 'authorization');
    }
  };

  /** Recompute one window (id `window:<region>:<spec>:<start ms>`) from its persisted snapshot. */
  router.post('/admin/windows/:window_id/recompute', async (req, res) => {
    authorize(req);
    const id = req.params.window_id as string;
    if (!/^window:.+:[^:]+:\d+$/.test(id)) throw badParam('window_id', 'window_id must be a window workflow id: window:<region>:<spec>:<start ms>');
    if (!opts.recomputeWindow) throw new HttpError(503, 'recompute is not available on this process');
    try {
      res.json({ window_id: id, ...(await opts.recomputeWindow(id)) });
    } catch (e) {
      if (e instanceof WorkflowNotFoundError) throw new HttpError(404, `no running window workflow ${id} (unknown, or expired)`, 'window_id');
      throw e;
    }
  });

  /** Rebuild Redis from the record: drop every region's keys and the epoch, then restore. */
  router.post('/admin/rebuild', async (req, res) => {
    authorize(req);
    if (!opts.forceRebuild) throw new HttpError(503, 'rebuild is not available on this process');
    const t0 = Date.now();
    res.json({ ...(await opts.forceRebuild()), ms: Date.now() - t0 });
  });
  return router;
}
