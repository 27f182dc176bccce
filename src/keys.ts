/**
 * Redis key names (DESIGN.md): one region's keys share the `{<region>}` hash tag, so one
 * region's atomic step touches one Redis Cluster slot.
 */

/** Exact all-time leaderboard: every post of the region, scored by its count. */
export const regionTopKey = (region: string): string => `region:{${region}}:top_k`;
/** Bounded Top-K: at most K members, each scored by its true total. */
export const regionBoundedKey = (region: string): string => `region:{${region}}:top_k_bounded`;
/** A tumbling window's leaderboard; `windowId` = `<spec>:<start ms>`. */
export const regionWindowKey = (region: string, windowId: string): string => `region:{${region}}:top_k:${windowId}`;
/** Hash partition -> last applied Kafka offset (the offset fence). */
export const regionOffsetsKey = (region: string): string => `region:{${region}}:offsets`;
/** Set of event_ids seen in one event-time hour (dedup), expiring after the horizon. */
export const regionSeenKey = (region: string, hourStartMs: number): string => `region:{${region}}:seen:${hourStartMs}`;
/** Set of every region that has counted events (unknown region -> 404). */
export const REGIONS_KEY = 'regions';
export const globalTopKey = (windowId?: string): string => (windowId ? `global:top_k:${windowId}` : 'global:top_k');

export const windowId = (spec: string, startMs: number): string => `${spec}:${startMs}`;
