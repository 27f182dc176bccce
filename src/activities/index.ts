/**
 * Activities: all I/O the workflows need, built by a factory from injected clients so
 * each one can be tested alone.
 */
import type { Redis } from 'ioredis';
import { regionTopKey } from '../keys';

export interface ActivityDeps {
  redis: Redis;
}

export interface RankedPost {
  post_id: string;
  view_count: number;
}

export function createActivities({ redis }: ActivityDeps) {
  return {
    /** The region's top `k` posts from its live leaderboard, highest count first. */
    async readTopK(region: string, k: number): Promise<RankedPost[]> {
      const flat = await redis.zrevrange(regionTopKey(region), 0, k - 1, 'WITHSCORES');
      const out: RankedPost[] = [];
      for (let i = 0; i < flat.length; i += 2) out.push({ post_id: flat[i], view_count: Number(flat[i + 1]) });
      return out;
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
