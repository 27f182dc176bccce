/**
 * The window workflows of a region, from Temporal visibility (search attributes Region,
 * WindowSpec, WindowStart, WindowState), with a link to each in the Temporal Web UI. Used by
 * GET /windows (the live page) and `hh windows`.
 */
import type { Client } from '@temporalio/client';
import type { Config } from '../config';

/** The Temporal Web UI's workflow list of the configured namespace (a workflow's page is `<this>/<id>`). */
export const temporalUiWorkflows = (cfg: Config): string => `http://${cfg.host}:${cfg.temporal.uiPort}/namespaces/${cfg.temporal.namespace}/workflows`;

export const WINDOW_STATES = ['OPEN', 'CLOSED', 'FINAL', 'EXPIRED'] as const;

export interface WindowRow {
  id: string;
  spec: string;
  start: string;
  state: string;
  /** The workflow's status (Running, Completed, …). */
  status: string;
  link: string;
}

export interface WindowQuery {
  region: string;
  state?: string;
  spec?: string;
  limit: number;
}

const quote = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** The visibility query (the one the Temporal UI link filters by too). Pure. */
export function windowQuery(q: Omit<WindowQuery, 'limit'>): string {
  return [`Region = ${quote(q.region)}`, q.state && `WindowState = ${quote(q.state)}`, q.spec && `WindowSpec = ${quote(q.spec)}`].filter(Boolean).join(' AND ');
}

export async function listWindows(client: Client, uiBase: string, q: WindowQuery): Promise<{ query: string; ui: string; windows: WindowRow[] }> {
  const query = windowQuery(q);
  const windows: WindowRow[] = [];
  for await (const w of client.workflow.list({ query })) {
    const sa = w.searchAttributes as Record<string, unknown[] | undefined>;
    const startAt = sa.WindowStart?.[0];
    windows.push({
      id: w.workflowId,
      spec: String(sa.WindowSpec?.[0] ?? ''),
      start: startAt instanceof Date ? startAt.toISOString() : String(startAt ?? ''),
      state: String(sa.WindowState?.[0] ?? ''),
      status: w.status.name,
      link: `${uiBase}/${encodeURIComponent(w.workflowId)}`,
    });
    if (windows.length >= q.limit) break;
  }
  return { query, ui: `${uiBase}?query=${encodeURIComponent(query)}`, windows };
}
