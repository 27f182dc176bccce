/**
 * Redis key names (DESIGN.md): one region's keys share the `{<region>}` hash tag, so one
 * region's atomic step touches one Redis Cluster slot.
 */
export const regionTopKey = (region: string): string => `region:{${region}}:top_k`;
export const regionWindowKey = (region: string, windowId: string): string => `region:{${region}}:top_k:${windowId}`;
export const globalTopKey = (windowId?: string): string => (windowId ? `global:top_k:${windowId}` : 'global:top_k');
