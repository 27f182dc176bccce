/**
 * Signal, query and update definitions and search attribute keys shared by the window
 * workflows and their callers (one name, one type).
 */
import { defineSearchAttributeKey, SearchAttributeType, type SearchAttributePair } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';

export const watermarkSignal = defineSignal<[number]>('watermark');
/** To a region's coordinator: its watermark, and the earliest event time seen since the last report. */
export interface RegionProgress {
  watermark: number;
  earliest: number;
  /** The reporting member's window specs (absent in signals sent before they were carried). */
  specs?: WindowSpecInput[];
  sessions?: SessionSpecInput[];
}
export const progressSignal = defineSignal<[RegionProgress]>('progress');
export const recomputeSignal = defineSignal('recompute');
export const recomputeUpdate = defineUpdate<{ posts: number; events: number }>('recompute');

export type WindowState = 'OPEN' | 'CLOSED' | 'FINAL' | 'EXPIRED';
export interface WindowStatus {
  state: WindowState;
  watermark: number | null;
  /** The top entries of the last persisted snapshot. */
  top: { post_id: string; view_count: number }[];
  persists: number;
}
export const windowStatusQuery = defineQuery<WindowStatus>('status');
export const coordinatorStatusQuery = defineQuery<{ watermark: number | null; live: string[] }>('status');

export interface GlobalMergeStatus {
  /** Merge rounds run, key families merged, entries moved and what full-leaderboard merges would have moved (totals). */
  merges: number;
  families: number;
  moved: number;
  naive: number;
  /** The last round that merged something. */
  last: import('../store/global-merge').GlobalMergeReport | null;
}
export const globalMergeStatusQuery = defineQuery<GlobalMergeStatus>('status');

export const SA_REGION = defineSearchAttributeKey('Region', SearchAttributeType.KEYWORD);
export const SA_WINDOW_START = defineSearchAttributeKey('WindowStart', SearchAttributeType.DATETIME);
export const SA_WINDOW_SPEC = defineSearchAttributeKey('WindowSpec', SearchAttributeType.KEYWORD);
export const SA_WINDOW_STATE = defineSearchAttributeKey('WindowState', SearchAttributeType.KEYWORD);

/** A new window's search attributes (set when it is started, and by the window itself). */
export function windowSearchAttributes(region: string, spec: string, start: number): SearchAttributePair[] {
  return [
    { key: SA_REGION, value: region },
    { key: SA_WINDOW_START, value: new Date(start) },
    { key: SA_WINDOW_SPEC, value: spec },
    { key: SA_WINDOW_STATE, value: 'OPEN' },
  ];
}

/** A window spec as the workflows need it (plain data, from the config). */
export interface WindowSpecInput {
  name: string;
  sizeMs: number;
  latenessMs: number;
  ttlMs: number;
  /** Sliding windows only: windows start every slide, and are summed from the `pane` spec's windows. */
  slideMs?: number;
  pane?: string;
}

/** A session window spec as the coordinator needs it. */
export interface SessionSpecInput {
  name: string;
  gapMs: number;
  bucketMs: number;
  latenessMs: number;
  ttlMs: number;
}

export const windowWorkflowId = (region: string, spec: string, start: number): string => `window:${region}:${spec}:${start}`;
export const coordinatorWorkflowId = (region: string): string => `coordinator:${region}`;
export const globalMergeWorkflowId = (taskQueue: string): string => `global-merge:${taskQueue}`;
