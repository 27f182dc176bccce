/**
 * The parts a runtime process runs (HH_PROCESS_ROLE, set by the primary: a comma-separated
 * list of them): the ingest, the API, the lifecycle (workflows and their activities).
 */
export const PARTS = ['ingest', 'api', 'lifecycle'] as const;
export type PartName = (typeof PARTS)[number];

/** The parts HH_PROCESS_ROLE names ('both', or unset: all of them). */
export function processParts(role: string | undefined): Set<PartName> {
  const names = !role || role === 'both' ? [...PARTS] : role.split(',').map((r) => r.trim());
  for (const n of names) {
    if (!(PARTS as readonly string[]).includes(n)) throw new Error(`HH_PROCESS_ROLE lists ${PARTS.join(', ')} (or is both), not "${n}"`);
  }
  return new Set(names as PartName[]);
}

/** An ingest worker's parts: the ingest, and the API or the lifecycle where no process of their own runs it. */
export function workerParts(o: { apiProcesses: number; lifecycleProcesses?: number }): PartName[] {
  return ['ingest', ...(o.apiProcesses > 0 ? [] : ['api' as const]), ...((o.lifecycleProcesses ?? 0) > 0 ? [] : ['lifecycle' as const])];
}
