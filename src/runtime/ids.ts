/** Names derived from the task queue and a worker slot, shared by the runtime and its tests. */
export const ingestTaskQueue = (taskQueue: string, slot: number): string => `${taskQueue}-ingest-${slot}`;
export const supervisorId = (taskQueue: string, slot: number): string => `ingest-supervisor:${taskQueue}:${slot}`;
