/**
 * Bearer credentials, compared in constant time (SHA-256 digests of equal length): the
 * producer keys of POST /events and the admin token. A client is known by a valid key (a
 * short hash of it, never the key) or else by its peer address — a made-up key does not
 * buy a fresh rate-limit bucket.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Request } from 'express';
import { HttpError } from './errors';

const digest = (s: string) => createHash('sha256').update(s).digest();

export class Credentials {
  private readonly producers: Buffer[];
  private readonly admin?: Buffer;

  constructor(opts: { producerKeys: readonly string[]; adminToken?: string }) {
    this.producers = opts.producerKeys.map((k) => digest(k));
    this.admin = opts.adminToken === undefined ? undefined : digest(opts.adminToken);
  }

  /** The bearer token of a request, if it sends one. */
  static bearer(req: IncomingMessage): string | undefined {
    const h = req.headers.authorization;
    const m = h === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(h);
    return m ? m[1] : undefined;
  }

  private matches(token: string | undefined, against: Buffer | undefined): boolean {
    if (token === undefined || against === undefined) return false;
    return timingSafeEqual(digest(token), against);
  }

  /** Some producer key matches (every key is compared, whatever matched first). */
  isProducer(token: string | undefined): boolean {
    let ok = false;
    for (const k of this.producers) if (this.matches(token, k)) ok = true;
    return ok;
  }

  isAdmin(token: string | undefined): boolean {
    return this.matches(token, this.admin);
  }

  /** 401 unless the request carries a producer key; 403 where none is configured. */
  requireProducer(req: Request): void {
    if (this.producers.length === 0) throw new HttpError(403, 'POST /events is disabled: no producer key is configured (HH_PRODUCER_KEYS)', 'authorization');
    if (!this.isProducer(Credentials.bearer(req))) {
      throw new HttpError(401, 'POST /events needs "Authorization: Bearer <producer key>"', 'authorization', { 'www-authenticate': 'Bearer' });
    }
  }

  /** 401 unless the request carries the admin token; 403 where none is configured. */
  requireAdmin(req: Request): void {
    if (!this.admin) throw new HttpError(403, 'admin endpoints are disabled: set HH_ADMIN_TOKEN', 'authorization');
    if (!this.isAdmin(Credentials.bearer(req))) {
      throw new HttpError(401, 'admin endpoints need "Authorization: Bearer <HH_ADMIN_TOKEN>"', 'authorization', { 'www-authenticate': 'Bearer' });
    }
  }

  /** The rate-limit identity: `key:<hash>` of a valid key, else `ip:<peer address>`. */
  clientOf(req: IncomingMessage): string {
    const token = Credentials.bearer(req);
    if (token !== undefined && (this.isProducer(token) || this.isAdmin(token))) return `key:${digest(token).toString('hex').slice(0, 16)}`;
    return `ip:${req.socket.remoteAddress ?? 'unknown'}`;
  }
}
