/**
 * The Temporal deployment's own files (temporal/): the namespace and its retention, the
 * search attributes, and the dynamic configuration the project relies on. Read by
 * `stack:up` (the dev server's flags) and the bootstrap (namespace, search attributes).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const TEMPORAL_DIR = path.join(__dirname, '..', '..', 'temporal');

/** key -> value of temporal/dynamic-config.yaml (Temporal's format; plain values only). */
export function readDynamicConfig(file = path.join(TEMPORAL_DIR, 'dynamic-config.yaml')): Map<string, string> {
  const out = new Map<string, string>();
  let key: string | undefined;
  fs.readFileSync(file, 'utf8')
    .split('\n')
    .forEach((raw, i) => {
      const line = raw.replace(/\s+#.*$/, '').trimEnd();
      if (line.trim() === '' || line.trim().startsWith('#')) return;
      const top = /^([A-Za-z0-9_.]+):$/.exec(line);
      if (top) {
        key = top[1];
        return;
      }
      const value = /^\s+-\s+value:\s*(.+)$/.exec(line);
      if (value && key && !out.has(key)) {
        out.set(key, value[1].trim());
        return;
      }
      throw new Error(`${file}:${i + 1}: only "key:" followed by "  - value: <plain value>" is read here (no constraints): "${raw}"`);
    });
  return out;
}

/** The dev server's flags for that configuration. */
export function dynamicConfigFlags(file?: string): string[] {
  return [...readDynamicConfig(file)].flatMap(([k, v]) => ['--dynamic-config-value', `${k}=${v}`]);
}
