/**
 * The Temporal namespace and the custom search attributes that make windows filterable,
 * as the deployment's own files say (temporal/namespace.json, temporal/search-attributes.json).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import Long from 'long';
import { PROJECT_ROOT, type Config } from '../config';
import { temporalConnectionOptions } from '../clients';

const DIR = path.join(PROJECT_ROOT, 'temporal');
const read = <T>(file: string): T => JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8')) as T;

const TYPES: Record<string, temporal.api.enums.v1.IndexedValueType> = {
  Keyword: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  Datetime: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
  Int: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_INT,
  Text: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
  Bool: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
};

/** Name -> indexed type of every custom search attribute (temporal/search-attributes.json). */
export const SEARCH_ATTRIBUTES: Record<string, temporal.api.enums.v1.IndexedValueType> = Object.fromEntries(
  Object.entries(read<{ attributes: Record<string, { type: string }> }>('search-attributes.json').attributes).map(([name, a]) => {
    const t = TYPES[a.type];
    if (t === undefined) throw new Error(`temporal/search-attributes.json: ${name} has type "${a.type}"; one of ${Object.keys(TYPES).join(', ')}`);
    return [name, t];
  }),
);

/** How long closed workflows are kept (temporal/namespace.json). */
export const RETENTION_DAYS = read<{ retentionDays: number }>('namespace.json').retentionDays;

export async function ensureNamespaceAndSearchAttributes(cfg: Config): Promise<string[]> {
  const notes: string[] = [];
  const conn = await Connection.connect(temporalConnectionOptions(cfg));
  try {
    const namespace = cfg.temporal.namespace;
    const retention = { seconds: Long.fromNumber(RETENTION_DAYS * 24 * 3600) };
    let described;
    try {
      described = await conn.workflowService.describeNamespace({ namespace });
    } catch {
      await conn.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: retention });
      notes.push(`registered namespace ${namespace} (retention ${RETENTION_DAYS} days)`);
    }
    const ttl = described?.config?.workflowExecutionRetentionTtl?.seconds;
    const have = ttl === undefined || ttl === null ? RETENTION_DAYS * 24 * 3600 : Long.fromValue(ttl).toNumber();
    if (described && have !== RETENTION_DAYS * 24 * 3600) {
      await conn.workflowService.updateNamespace({ namespace, config: { workflowExecutionRetentionTtl: retention } });
      notes.push(`set namespace ${namespace}'s retention to ${RETENTION_DAYS} days`);
    }
    const attrs = await conn.operatorService.listSearchAttributes({ namespace });
    const missing = Object.entries(SEARCH_ATTRIBUTES).filter(([k]) => !(k in (attrs.customAttributes ?? {})));
    if (missing.length) {
      await conn.operatorService.addSearchAttributes({ namespace, searchAttributes: Object.fromEntries(missing) });
      notes.push(`added search attributes ${missing.map(([k]) => k).join(', ')}`);
    }
  } finally {
    await conn.close();
  }
  return notes;
}
