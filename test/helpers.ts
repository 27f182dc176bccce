/** Shared by integration tests: the real stack's config and per-run unique names. */
import { loadConfig } from '../src/config';

export const cfg = loadConfig();
export { unique } from '../scripts/harness/names';
