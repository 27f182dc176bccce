/** Query and path parameters: each parsed value is valid, or a 400 names the parameter. */
import type { SessionSpec, SlidingSpec, WindowSpec } from '../config';
import { badParam } from './errors';

/** A request's parsed query string: Express's `req`, or `{ query }` parsed the same way (node:querystring) outside it. */
export interface HasQuery {
  query: Record<string, unknown>;
}

/** A query parameter given at most once, as a plain string. */
export function one(req: HasQuery, name: string): string | undefined {
  const v = req.query[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw badParam(name, `${name} must be given once, as a plain value`);
  return v;
}

/** An integer in min..max (default when absent). */
export function intParam(req: HasQuery, name: string, min: number, max: number, fallback: number): number {
  const raw = one(req, name);
  if (raw === undefined) return fallback;
  if (!/^\d{1,9}$/.test(raw) || Number(raw) < min || Number(raw) > max)
    throw badParam(name, `${name} must be an integer in ${min}..${max}, got "${raw.slice(0, 20)}"`);
  return Number(raw);
}

export function enumParam<T extends string>(req: HasQuery, name: string, allowed: readonly T[], fallback: T): T {
  const raw = one(req, name);
  if (raw === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(raw)) throw badParam(name, `${name} must be one of ${allowed.join(', ')}; got "${raw.slice(0, 40)}"`);
  return raw as T;
}

/** Region and post ids are 1..128 bytes, as in the event contract. */
export function idValue(name: string, raw: string | undefined, example: string): string {
  if (raw === undefined || raw.length === 0) throw badParam(name, `${name} is required (e.g. ${example})`);
  if (Buffer.byteLength(raw) > 128) throw badParam(name, `${name} must be at most 128 bytes`);
  return raw;
}

export const regionParam = (req: HasQuery): string => idValue('region', one(req, 'region'), 'region=NA');

/** An addressable window spec: its start grid, and its size (sessions have none: each its own length). */
export interface AddressableSpec {
  name: string;
  grid: number;
  sizeMs?: number;
}

export function addressableSpecs(windows: readonly WindowSpec[], sliding: readonly SlidingSpec[], sessions: readonly SessionSpec[]): AddressableSpec[] {
  return [
    ...windows.map((w) => ({ name: w.name, grid: w.sizeMs, sizeMs: w.sizeMs })),
    ...sliding.map((w) => ({ name: w.name, grid: w.slideMs, sizeMs: w.sizeMs })),
    ...sessions.map((w) => ({ name: w.name, grid: w.bucketMs })),
  ];
}

/** `window=<spec>:<start ms>`: a configured spec and a start on its grid. */
export function windowParam(raw: string, specs: AddressableSpec[]): { id: string; spec: AddressableSpec; start: number } {
  const m = /^([^:]+):(\d{1,15})$/.exec(raw);
  const spec = m ? specs.find((w) => w.name === m[1]) : undefined;
  if (!m || !spec)
    throw badParam('window', `window must be <spec>:<start ms> with spec one of ${specs.map((w) => w.name).join(', ')}; got "${raw.slice(0, 60)}"`);
  if (Number(m[2]) % spec.grid !== 0) throw badParam('window', `window start ${m[2]} is not on the ${spec.name} grid (a multiple of ${spec.grid} ms)`);
  return { id: raw, spec, start: Number(m[2]) };
}
