/**
 * The admin endpoints, behind the admin token: rebuild Redis from the record, recompute a
 * window. Every call that gets past the token check — and every refused one — goes to the
 * audit log (who, what, when, outcome).
 */
import { Router, type Request } from 'express';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { AuditEntry } from '../../store/audit';
import { Credentials } from '../auth';
import { HttpError, badParam, requestId } from '../errors';

export interface AdminOptions {
  credentials: Credentials;
  /** Drops Redis state and rebuilds it from the record. */
  forceRebuild?: () => Promise<{ epoch: string; dropped: number; restored: number }>;
  /** Asks a window workflow to rebuild its Redis key from its persisted snapshot. */
  recomputeWindow?: (workflowId: string) => Promise<{ posts: number; events: number }>;
  /** Where admin actions are recorded. */
  audit?: (e: AuditEntry) => Promise<void>;
}

export function adminRouter(opts: AdminOptions): Router {
  const router = Router();
  const who = (req: Request, role: string) => `${role}@${req.socket.remoteAddress ?? 'unknown'}`;
  /** Checks the token, runs the action, and records who did what and how it ended. */
  const audited = async <T>(req: Request, action: string, target: string, run: () => Promise<T>): Promise<T> => {
    try {
      opts.credentials.requireAdmin(req);
    } catch (e) {
      await opts.audit?.({ who: who(req, 'anonymous'), action, target, outcome: 'refused', detail: (e as Error).message, request_id: requestId(req) });
      throw e;
    }
    try {
      const out = await run();
      await opts.audit?.({ who: who(req, 'admin'), action, target, outcome: 'ok', detail: JSON.stringify(out), request_id: requestId(req) });
      return out;
    } catch (e) {
      await opts.audit?.({ who: who(req, 'admin'), action, target, outcome: 'failed', detail: (e as Error).message, request_id: requestId(req) });
      throw e;
    }
  };

  /** Recompute one window (id `window:<region>:<spec>:<start ms>`) from its persisted snapshot. */
  router.post('/admin/windows/:window_id/recompute', async (req, res) => {
    const id = req.params.window_id as string;
    const out = await audited(req, 'recompute', id, async () => {
      if (!/^window:.+:[^:]+:\d+$/.test(id)) throw badParam('window_id', 'window_id must be a window workflow id: window:<region>:<spec>:<start ms>');
      if (!opts.recomputeWindow) throw new HttpError(503, 'recompute is not available on this process');
      try {
        return await opts.recomputeWindow(id);
      } catch (e) {
        if (e instanceof WorkflowNotFoundError) throw new HttpError(404, `no running window workflow ${id} (unknown, or expired)`, 'window_id');
        throw e;
      }
    });
    res.json({ window_id: id, ...out });
  });

  /** Rebuild Redis from the record: drop every region's keys and the epoch, then restore. */
  router.post('/admin/rebuild', async (req, res) => {
    const t0 = Date.now();
    const out = await audited(req, 'rebuild', 'redis', async () => {
      if (!opts.forceRebuild) throw new HttpError(503, 'rebuild is not available on this process');
      return opts.forceRebuild();
    });
    res.json({ ...out, ms: Date.now() - t0 });
  });
  return router;
}
