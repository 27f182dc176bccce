/**
 * One window (tumbling, or sliding: summed from its panes) of one region, id `window:<region>:<spec>:<start>`:
 * OPEN → CLOSED (watermark ≥ end: snapshot persisted to Cassandra) → FINAL (watermark ≥
 * end + allowed lateness: persisted again, later events go to the late topic) → EXPIRED
 * (TTL after the end passed: Redis key gone, workflow completes). Watermarks arrive as
 * signals from the region's coordinator; counts never pass through here.
 */
import { condition, patched, proxyActivities, setHandler, sleep, upsertSearchAttributes } from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  recomputeSignal,
  recomputeUpdate,
  SA_WINDOW_STATE,
  watermarkSignal,
  windowSearchAttributes,
  windowStatusQuery,
  type WindowSpecInput,
  type WindowState,
  type WindowStatus,
} from './definitions';
import { windowId as windowIdOf } from '../keys';

const { persistWindow, restoreWindow, expireWindow, assembleSliding } = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  // Each beats per page it reads or writes: one lost with its worker (killed, or its poll's
  // answer lost) is retried after this, not after the 2 minutes.
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

export interface WindowInput {
  region: string;
  spec: WindowSpecInput;
  start: number;
}

export async function windowWorkflow({ region, spec, start }: WindowInput): Promise<WindowStatus> {
  const end = start + spec.sizeMs;
  const windowId = windowIdOf(spec.name, start);
  const status: WindowStatus = { state: 'OPEN', watermark: null, top: [], persists: 0 };
  const setState = (state: WindowState) => {
    status.state = state;
    upsertSearchAttributes([{ key: SA_WINDOW_STATE, value: state }]);
  };
  upsertSearchAttributes(windowSearchAttributes(region, spec.name, start));

  setHandler(watermarkSignal, (wm) => {
    if (status.watermark === null || wm > status.watermark) status.watermark = wm;
  });
  setHandler(windowStatusQuery, () => status);
  const recompute = async () => {
    const r = await restoreWindow({ region, id: windowId, expireAt: end + spec.ttlMs });
    return { posts: r.posts, events: r.events };
  };
  setHandler(recomputeUpdate, recompute);
  setHandler(recomputeSignal, async () => {
    await recompute();
  });

  const persist = async (final: boolean) => {
    // A sliding window's key is the sum of its panes (tumbling windows), summed again at each persist.
    if (spec.pane && spec.slideMs) {
      await assembleSliding({ region, id: windowId, pane: spec.pane, start, sizeMs: spec.sizeMs, slideMs: spec.slideMs, expireAt: end + spec.ttlMs });
    }
    // A tumbling window's FINAL one stops flushes writing to it first (its key is then its
    // final count); a sliding window's key is only ever written by its own assembly.
    const snap = await persistWindow({ region, spec: spec.name, start, ...(final && !spec.slideMs ? { final } : {}) });
    status.top = snap.top;
    status.persists++;
  };

  await condition(() => status.watermark !== null && status.watermark >= end);
  // Past the lateness as well (a catch-up, a replay): the final snapshot is the one that
  // counts, so the closing one is skipped (each is a full copy of the window).
  const finalAlready = status.watermark! >= end + spec.latenessMs;
  if (!(finalAlready && patched('window-one-persist-when-final'))) await persist(false);
  setState('CLOSED');

  await condition(() => status.watermark !== null && status.watermark >= end + spec.latenessMs);
  await persist(true);
  setState('FINAL');

  const expireAt = end + spec.ttlMs;
  const wait = expireAt - Date.now();
  if (wait > 0) await sleep(wait);
  await expireWindow({ region, id: windowId });
  setState('EXPIRED');
  return status;
}
