/** Session windows: per region, event-time buckets sealed into sessions by session-seal.lua. */
import type { Redis } from 'ioredis';
import type { SessionSpec } from '../config';
import { GLOBAL_DIRTY_KEY, regionBucketIndexKey, regionPrefix, regionSealedKey, regionSessionsKey, windowId } from '../keys';
import { scripted } from './scripts';

export interface SealedSession {
  start: number;
  end: number;
  posts: number;
}

/**
 * Seals the region's sessions of `spec` that the watermark has passed by a gap plus the
 * lateness, and returns every sealed session after `after` (the last one the caller took),
 * marked for the global merge.
 */
export async function sealSessions(redis: Redis, region: string, spec: SessionSpec, watermark: number, after: number): Promise<SealedSession[]> {
  const flat = await scripted(redis).hhSessionSeal(
    regionBucketIndexKey(region, spec.name),
    regionSealedKey(region),
    regionSessionsKey(region, spec.name),
    spec.name,
    spec.gapMs,
    spec.bucketMs,
    spec.latenessMs,
    spec.ttlMs,
    Math.floor(watermark),
    regionPrefix(region),
    after,
  );
  const out: SealedSession[] = [];
  for (let i = 0; i < flat.length; i += 3) out.push({ start: Number(flat[i]), end: Number(flat[i + 1]), posts: Number(flat[i + 2]) });
  if (out.length) await redis.sadd(GLOBAL_DIRTY_KEY, ...out.map((s) => windowId(spec.name, s.start)));
  return out;
}
