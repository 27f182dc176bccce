/** The Temporal namespace and the custom search attributes that make windows filterable. */
import { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import Long from 'long';
import type { Config } from '../config';

export const SEARCH_ATTRIBUTES = {
  Region: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  WindowStart: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
  WindowSpec: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  WindowState: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
} as const;

export async function ensureNamespaceAndSearchAttributes(cfg: Config): Promise<string[]> {
  const notes: string[] = [];
  const conn = await Connection.connect({ address: cfg.temporal.address });
  try {
    const namespace = cfg.temporal.namespace;
    try {
      await conn.workflowService.describeNamespace({ namespace });
    } catch {
      await conn.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: { seconds: Long.fromNumber(3 * 24 * 3600) } });
      notes.push(`registered namespace ${namespace}`);
    }
    const have = await conn.operatorService.listSearchAttributes({ namespace });
    const missing = Object.entries(SEARCH_ATTRIBUTES).filter(([k]) => !(k in (have.customAttributes ?? {})));
    if (missing.length) {
      await conn.operatorService.addSearchAttributes({ namespace, searchAttributes: Object.fromEntries(missing) });
      notes.push(`added search attributes ${missing.map(([k]) => k).join(', ')}`);
    }
  } finally {
    await conn.close();
  }
  return notes;
}
