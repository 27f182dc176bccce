/**
 * Temporal activities: all I/O the workflows need, each a thin call into a store or the hot
 * path, built by a factory from injected clients (so each can be tested alone). Every
 * activity takes one object argument.
 */
import type { Redis } from 'ioredis';
import { mergeChanged, type GlobalMergeReport } from '../store/global-merge';
import { heartbeat } from './heartbeat';
import { ingestActivities, type IngestActivityDeps } from './ingest';
import { windowActivities, type WindowActivityDeps } from './windows';

export interface ActivityDeps extends WindowActivityDeps {
  redis: Redis;
  /** The process's hot-path parts; only the ingest worker of a process needs them. */
  ingest?: IngestActivityDeps;
}

export type { RunningWindow } from './windows';

export function createActivities(deps: ActivityDeps) {
  return {
    ...windowActivities(deps),
    /**
     * Merges every key family changed since the last merge into its global Top-K key (exact,
     * TPUT), heartbeating at every round trip to Redis: a merge lost with its worker is retried within the
     * heartbeat timeout, not after the start-to-close timeout.
     */
    mergeGlobal: ({ k }: { k: number }): Promise<GlobalMergeReport> => mergeChanged(deps.redis, k, Date.now(), heartbeat(), deps.roll ?? null),
    ...ingestActivities(deps.ingest),
  };
}

export type Activities = ReturnType<typeof createActivities>;
