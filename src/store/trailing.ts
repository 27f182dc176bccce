/**
 * Trailing timeframes (`timeframe=5m`): per region and tumbling spec, the sum of the panes
 * the watermark has passed, back over the spec's size, moved by trailing-advance.lua.
 */
import type { Redis } from 'ioredis';
import { trailingPaneMs, type WindowSpec } from '../config';
import { GLOBAL_DIRTY_KEY, regionPrefix, regionTrailingStateKey } from '../keys';
import { scripted } from './scripts';

/**
 * Moves the region's trailing timeframes to `watermark` (adds the panes it entered,
 * subtracts the ones that fell out), marks the changed ones for the global merge, and
 * returns their spec names.
 */
export async function advanceTrailing(redis: Redis, region: string, windows: readonly WindowSpec[], watermark: number): Promise<string[]> {
  const args = windows.flatMap((w) => [w.name, w.sizeMs, trailingPaneMs(w.sizeMs)]);
  const changed = await scripted(redis).hhTrailingAdvance(regionTrailingStateKey(region), Math.floor(watermark), regionPrefix(region), ...args);
  if (changed.length) await redis.sadd(GLOBAL_DIRTY_KEY, ...changed.map((n) => `trailing:${n}`));
  return changed;
}
