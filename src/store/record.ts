/**
 * The record in Cassandra that Redis is rebuilt from, and the rebuild itself.
 *
 * Checkpoint (any process, one at a time per region): a consistent cut of the region's
 * changed entries and its offset fence (checkpoint.lua), written all-or-nothing as absolute
 * counts plus the offsets they include, stamped with the cut's time: ONE single-partition
 * batch when it is small enough, else staged in bounded batches and committed by one row
 * (migration 005). A repeated or late checkpoint never double counts: values are absolute
 * and the newest cut wins. The counts are packed (migration 006): one statement per (key,
 * bucket of posts) updates a map of the bucket's posts, each entry a cell of its own.
 *
 * Rebuild (one process, under a lock): restore every recorded region's keys and fences
 * from Cassandra under a new epoch; every ingest then rewinds its partitions to the
 * oldest recorded offset, and the fences make the replay count only what the record
 * did not include.
 */
import { randomUUID } from 'node:crypto';
import { types, type Client } from 'cassandra-driver';
import type { Redis } from 'ioredis';
import { windowKeyExpireAt, type WindowSpec, type TopKMode } from '../config';
import {
  ALL_TIME,
  appliedKey,
  CHECKPOINT_LAST_OK_KEY,
  CHECKPOINT_ROUND_KEY,
  GLOBAL_DIRTY_KEY,
  EPOCH_KEY,
  REGIONS_KEY,
  regionBoundedKey,
  regionCheckpointLockKey,
  regionDirtyKey,
  regionInflightKey,
  regionInflightEntriesKey,
  regionDirtyEntriesKey,
  regionCutKey,
  regionPrefix,
  regionMetaKey,
  regionOffsetsKey,
  regionTopKey,
  parseWindowId,
  regionWindowKey,
  regionSealedKey,
  regionUnrolledKey,
  rolledField,
  ROLL_KEY_ID,
  windowId,
} from '../keys';
import { rollPlan } from './window-roll';
import { writeRebuildPositions } from './positions';
import { scripted, type ScriptedRedis } from './scripts';
import { MAX_FENCED_ARGS, type RebuildLock } from './rebuild-lock';
import { deleteRegion } from './region-keys';
import { byRank, type RankedCount } from '../ranking';

export interface RecordOptions {
  keyspace: string;
  /**
   * The topic whose consumption a rebuild positions (its applied marks and replay targets
   * in Redis) and how to read its partitions' log ends (a rebuild needs them; a record that
   * only checkpoints does not); without it a rebuild restores counts only (tools and tests
   * that read the record).
   */
  resume?: { topic: string; logEnds?: () => Promise<Map<number, bigint>> };
  windows: readonly WindowSpec[];
  boundedK: number;
  /** `bounded`: restored leaderboards are cut back to boundedK (the record keeps evicted posts' last counts). */
  mode?: TopKMode;
  /** Largest cut written as one batch (default MAX_ATOMIC_ENTRIES; tests lower it). */
  atomicEntries?: number;
  /** The checkpoint lock's lease in ms (default LOCK_MS): how long a killed checkpointer holds its region. */
  lockMs?: number;
}

/**
 * The largest checkpoint written as ONE batch (a single-partition batch: one mutation,
 * atomic and isolated). A batch is one request frame, at most 16 MiB
 * (native_transport_max_frame_size: Cassandra refuses a larger one, "Request is too big"),
 * and one mutation, at most half a commitlog segment (32 MiB with the stack's 64 MiB). Its
 * statements are one per (key, bucket), so their count is no limit; its bytes are the map
 * entries encodeCounts writes (MAP_ENTRY_BYTES plus the post id's UTF-8 bytes each), kept to
 * half the frame, and its entries to 100,000: they are all in the writer's heap until the
 * batch is sent, and a busy region's cut at 100,000 events/s (about 50,000 entries in 5 s)
 * fits twice. (A worker's RSS at the end of the bench's 1M-post phase, where cuts reach
 * 200,000, was 517 MiB with a limit of 200,000, and 559 and 515 with 100,000 (a memory-only
 * run, a full one), against 457-527 before the limits were raised: not decided by the
 * batch's size; not explained.) Larger cuts are staged
 * (RegionRecord.checkpoint), which costs many times more: a 72,000-entry cut took 0.7-1.3 s
 * of the writer's CPU and 1.7-2.6 s of Cassandra's staged, 0.14 s and 0.15-0.73 s as one
 * batch (110,000 entries: 1.6 s and 3.3-3.8 s against 0.18-0.22 s and 0.23-0.27 s). (Until
 * 2026-12-04 the limits were 60,000 entries and 4 MiB counted at 40 bytes plus the key id an
 * entry, sized for a row per post: cuts of busy regions went to the stage.)
 */
export const MAX_ATOMIC_ENTRIES = 100_000;
/** ... and its bytes (half the 16 MiB frame), counted as below. */
export const MAX_ATOMIC_BYTES = 8 * 1024 * 1024;
/** A map entry's bytes beside its post id's: the id's length, the value's length and the 8-byte value (encodeCounts). */
const MAP_ENTRY_BYTES = 16;
/** A statement's bytes beside its key and region ids (its query id, stamp, TTL, bucket and the values' lengths), rounded up. */
const STATEMENT_BYTES = 100;
/** The native protocol counts a batch's statements in 16 bits; a key takes up to RECORD_BUCKETS of them. */
const MAX_BATCH_STATEMENTS = 65_535;
/** Statements per batch of a staged cut (one partition each), and how many are in flight. */
const STAGE_BATCH = 1_000;
const STAGE_CONCURRENCY = 4;
/** Entries of an uncommitted cut folded back per round trip (foldUncommitted). */
const FOLD_PAGE = 1_000;
/** region_counts rows per page read: a row holds about 1/RECORD_BUCKETS of a key's posts (~31,000 of a million). */
const ROWS_PER_PAGE = 4;
/** The region checkpoint lock's lease, renewed while a large cut is written. */
const LOCK_MS = 60_000;

interface Statement {
  query: string;
  params: unknown[];
}
/** A cut: the region's changed entries and the offsets they include, named by its token. */
interface Cut {
  region: string;
  id: string;
  at: number;
  offsets: Record<number, types.Long>;
}
interface Entry {
  keyId: string;
  postId: string;
  count: number;
  /** When the entry's window leaves the record (null: all-time). */
  expireAt: number | null;
}
const stamp = (cut: Cut) => types.Long.fromNumber(cut.at * 1000);

class CutChanged extends Error {
  constructor(region: string) {
    super(`checkpoint of ${region}: the cut changed while it was read (Redis lost or replaced it); nothing written`);
  }
}

/** Unlogged single-partition batches of at most STAGE_BATCH statements, a bounded number in flight. */
class Batches {
  private readonly inflight = new Set<Promise<void>>();
  private failed: unknown;

  constructor(
    private readonly cassandra: Client,
    private readonly concurrency: number,
  ) {}

  async add(statements: Statement[]): Promise<void> {
    for (let i = 0; i < statements.length; i += STAGE_BATCH) {
      while (this.inflight.size >= this.concurrency) await Promise.race(this.inflight);
      // A failure ends the checkpoint once the batches in flight have settled: none may land
      // after the caller has dropped the stage.
      if (this.failed) return this.drain();
      const p: Promise<void> = this.cassandra.batch(statements.slice(i, i + STAGE_BATCH), { prepare: true, logged: false }).then(
        () => void this.inflight.delete(p),
        (e: unknown) => {
          this.inflight.delete(p);
          this.failed ??= e;
        },
      );
      this.inflight.add(p);
    }
  }

  async drain(): Promise<void> {
    await Promise.all(this.inflight);
    if (this.failed) throw this.failed;
  }
}

/** Each region's posts of a key are spread over this many region_counts rows (fixed by migration 006). */
export const RECORD_BUCKETS = 32;

/** A post's row in region_counts: FNV-1a of its id's UTF-16 units, modulo RECORD_BUCKETS. */
export function recordBucket(postId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < postId.length; i++) h = Math.imul(h ^ postId.charCodeAt(i), 0x01000193);
  return (h >>> 0) % RECORD_BUCKETS;
}

/**
 * A `map<text, bigint>` value as Cassandra's native protocol carries it (v3 and later: an
 * int32 count, then per entry an int32-length UTF-8 key and an int32-length 8-byte value),
 * written into one buffer. The driver passes a Buffer parameter through as the encoded
 * value; its own encoding of a Map of Longs (four buffers and a Long per entry, then a
 * concat) took 57-135 ms of a worker's event loop for 60,000 entries in 32 buckets, this
 * 15-30 ms with the grouping (a scratch micro-benchmark, five rounds). Entries are one per
 * post: a cut read twice over is refused before this (CutChanged), so no key repeats.
 */
export function encodeCounts(posts: readonly string[], counts: readonly number[]): Buffer {
  let size = 4;
  const lengths = new Array<number>(posts.length);
  for (let i = 0; i < posts.length; i++) size += 16 + (lengths[i] = Buffer.byteLength(posts[i]));
  const buf = Buffer.allocUnsafe(size);
  let o = buf.writeInt32BE(posts.length, 0);
  for (let i = 0; i < posts.length; i++) {
    const c = counts[i];
    if (!Number.isSafeInteger(c)) throw new RangeError(`count ${c} of post "${posts[i]}" is not an integer`);
    o = buf.writeInt32BE(lengths[i], o);
    o += buf.write(posts[i], o);
    o = buf.writeInt32BE(8, o);
    o = buf.writeInt32BE(Math.floor(c / 2 ** 32), o);
    o = buf.writeUInt32BE(c >>> 0, o);
  }
  return buf;
}

/**
 * A decoded Cassandra map's entries. The project's clients decode maps as Map (clients.ts),
 * so that a post id like `__proto__` is a key like any other; a plain object is read too.
 */
export function mapEntries<V>(value: unknown): [string, V][] {
  if (value === null || value === undefined) return [];
  if (value instanceof Map) return [...(value as Map<unknown, V>)].map(([k, v]) => [String(k), v]);
  return Object.entries(value as Record<string, V>);
}

/** Cassandra refuses a TTL above 20 years (and a 32-bit overflow is an error of its own). */
export const MAX_CASSANDRA_TTL_S = 630_720_000;

/** Seconds from `nowMs` until `expireAtMs`, at most Cassandra's limit (0 or less: already expired). */
export function cassandraTtl(expireAtMs: number, nowMs: number): number {
  return Math.min(MAX_CASSANDRA_TTL_S, Math.ceil((expireAtMs - nowMs) / 1000));
}

export class RegionRecord {
  private readonly specs: Map<string, WindowSpec>;
  private readonly scripts: ScriptedRedis;

  constructor(
    private readonly redis: Redis,
    private readonly cassandra: Client,
    private readonly opts: RecordOptions,
  ) {
    this.specs = new Map(opts.windows.map((w) => [w.name, w]));
    this.scripts = scripted(redis);
    // A Map given to a client without this option is encoded as an empty map: nothing written.
    const options = (cassandra as unknown as { options?: { encoding?: { map?: unknown } } }).options;
    if (options && options.encoding?.map !== Map)
      throw new Error('the record needs a Cassandra client that encodes and decodes maps as Map (clients.ts: cassandraClient)');
  }

  private get ks(): string {
    return this.opts.keyspace;
  }

  /**
   * Checkpoints one region if it changed. Returns the number of entries written, or
   * 'busy' when another process holds the region's checkpoint lock.
   *
   * A cut of at most `atomicEntries` entries and MAX_ATOMIC_BYTES is ONE single-partition batch. A larger one is
   * staged in bounded batches under its cut id (the token), committed by one row naming it
   * and its offsets, and then applied (see applyCut): until that row exists nothing of the
   * cut counts, once it exists all of it does.
   */
  async checkpoint(region: string): Promise<number | 'busy'> {
    const token = randomUUID();
    const lock = regionCheckpointLockKey(region);
    if ((await this.redis.set(lock, token, 'PX', this.lockMs, 'NX')) === null) return 'busy';
    let garbage: string | null = null; // a stage to drop if this checkpoint fails before its commit
    try {
      // A committed cut a crash left half-applied goes first; a staged one never committed
      // (its token is still the region's cut) is garbage.
      await this.rollForward(region);
      const previous = await this.redis.get(regionCutKey(region));
      if (previous !== null) await this.dropStage(region, previous);
      await this.foldUncommitted(region, () => this.renew(lock, token));
      const [ms, flatOffsets, sizes] = await this.scripts.hhCheckpoint(
        regionDirtyKey(region),
        regionInflightKey(region),
        regionOffsetsKey(region),
        regionCutKey(region),
        regionMetaKey(region),
        token,
        regionPrefix(region),
      );
      if (sizes.length === 0) return 0;
      const at = Number(ms);
      const offsets: Record<number, types.Long> = {};
      for (let i = 0; i < flatOffsets.length; i += 2) offsets[Number(flatOffsets[i])] = types.Long.fromString(flatOffsets[i + 1]);
      const cut: Cut = { region, id: token, at, offsets };
      // One batch unless the cut is too large for one: by its count of entries (known from the
      // cut's sizes, an upper bound: evicted and expired entries are not written), then by
      // statements or bytes as they are read; what was read so far and the rest go to the stage,
      // a batch at a time (not statements for everything read so far at once).
      let total = 0;
      for (let k = 1; k < sizes.length; k += 2) total += Number(sizes[k]);
      let staged = total > this.atomicEntries;
      if (staged) garbage = token;
      let bytes = 0;
      let statements = 1; // the offsets
      const entries: Entry[] = [];
      let written = 0;
      const stageWrites = new Batches(this.cassandra, STAGE_CONCURRENCY);
      const stage = async (list: Entry[]) => {
        for (let i = 0; i < list.length; i += STAGE_BATCH) await stageWrites.add(list.slice(i, i + STAGE_BATCH).map((e) => this.stageStatement(cut, e)));
      };
      // The cut is taken: its entries are read in steps (Redis serves flushes in between).
      for (let k = 0; k < sizes.length; k += 2) {
        const keyId = String(sizes[k]);
        let expireAt: number | null = null;
        // The roll's progress is kept as long as the region (window-roll.lua).
        if (keyId !== ALL_TIME && keyId !== ROLL_KEY_ID) {
          const w = this.windowOf(keyId);
          expireAt = w ? windowKeyExpireAt(w.spec, w.start) : null;
          if (expireAt === null || cassandraTtl(expireAt, at) <= 0) continue; // expired (or no longer configured): nothing to keep
        }
        statements += RECORD_BUCKETS;
        bytes += RECORD_BUCKETS * (STATEMENT_BYTES + Buffer.byteLength(keyId) + Buffer.byteLength(region));
        let read = 0;
        let cursor = '0';
        do {
          const [next, part] = await this.redis.hscan(regionInflightEntriesKey(region, keyId), cursor, 'COUNT', 5000);
          for (let i = 0; i < part.length; i += 2) {
            read++;
            const count = Number(part[i + 1]);
            if (count < 0) continue; // no longer kept there (evicted in bounded mode)
            entries.push({ keyId, postId: part[i], count, expireAt });
            written++;
            bytes += MAP_ENTRY_BYTES + Buffer.byteLength(part[i]);
          }
          cursor = next;
          if (!staged && (written > this.atomicEntries || bytes > MAX_ATOMIC_BYTES || statements > MAX_BATCH_STATEMENTS)) {
            staged = true;
            garbage = token;
          }
          if (staged && entries.length >= STAGE_BATCH) {
            await stage(entries.splice(0));
            await this.renew(lock, token);
          }
        } while (cursor !== '0');
        // Whole, or not at all: a cut lost mid-read (FLUSHDB, a restart) must not reach the
        // record with its offsets and only part of its counts.
        if (read !== Number(sizes[k + 1])) throw new CutChanged(region);
      }
      if (staged) {
        await stage(entries.splice(0));
        await stageWrites.drain();
      }
      if ((await this.redis.get(regionCutKey(region))) !== token) throw new CutChanged(region);
      await this.cassandra.execute(`INSERT INTO ${this.ks}.regions (region_id, first_checkpoint_at) VALUES (?, ?) USING TIMESTAMP 1`, [region, new Date(at)], {
        prepare: true,
      });
      if (staged) {
        // The commit point: one row. (Its outcome may be unknown on a failure: the stage is
        // kept; the next checkpoint applies it if committed and drops it if not.)
        garbage = null;
        await this.cassandra.execute(
          `INSERT INTO ${this.ks}.checkpoint_commits (region_id, cut_id, at, offsets, entry_count, applied) VALUES (?, ?, ?, ?, ?, false) USING TIMESTAMP ?`,
          [region, token, new Date(at), offsets, written, stamp(cut)],
          { prepare: true },
        );
      } else {
        await this.cassandra.batch([this.offsetsStatement(cut), ...this.stateStatements(cut, entries, at)], { prepare: true, logged: false });
      }
      // Committed: the inflight entries are in the record. (A crash before this only makes
      // the next checkpoint write them again, with fresher absolute values.)
      const done = this.redis.multi().del(regionInflightKey(region), regionCutKey(region));
      for (let k = 0; k < sizes.length; k += 2) done.del(regionInflightEntriesKey(region, String(sizes[k])));
      await done.exec();
      if (staged) await this.applyCut(cut, () => this.renew(lock, token));
      return written;
    } finally {
      if (garbage) await this.dropStage(region, garbage).catch(() => undefined); // else the next checkpoint drops it
      await this.scripts.hhRelease(lock, token);
    }
  }

  /**
   * The entries of a cut that never committed (a checkpoint that failed after taking it) go
   * back to the region's changes, a page at a time, before the next cut is taken: HSETNX,
   * so a newer count a flush wrote meanwhile wins, and the flushes may go on in between.
   * The cut script then only renames (O(keys)); left there, it merges the changes into the
   * old cut entry by entry within one call (its one step that grows with the entries: the
   * bench's 1M-post burst saw checkpoint.lua hold Redis 338 ms). A crash midway leaves them
   * in both places; the next checkpoint folds them again (the same result).
   */
  private async foldUncommitted(region: string, renew: () => Promise<void>): Promise<void> {
    for (const keyId of await this.redis.smembers(regionInflightKey(region))) {
      const from = regionInflightEntriesKey(region, keyId);
      const into = regionDirtyEntriesKey(region, keyId);
      let cursor = '0';
      do {
        const [next, part] = await this.redis.hscan(from, cursor, 'COUNT', FOLD_PAGE);
        if (part.length) {
          const p = this.redis.pipeline().sadd(regionDirtyKey(region), keyId);
          for (let i = 0; i < part.length; i += 2) p.hsetnx(into, part[i], part[i + 1]);
          for (const [err] of (await p.exec()) ?? []) if (err) throw err;
        }
        cursor = next;
      } while (cursor !== '0');
      await this.redis.multi().del(from).srem(regionInflightKey(region), keyId).exec();
      await renew();
    }
  }

  private get atomicEntries(): number {
    return this.opts.atomicEntries ?? MAX_ATOMIC_ENTRIES;
  }

  private get lockMs(): number {
    return this.opts.lockMs ?? LOCK_MS;
  }

  private async renew(lock: string, token: string): Promise<void> {
    if ((await this.scripts.hhRenew(lock, token, this.lockMs)) !== 1)
      throw new Error(`checkpoint lock ${lock} lost while writing (its ${this.lockMs} ms lease ran out)`);
  }

  private stageStatement(cut: Cut, e: Entry): Statement {
    return {
      query: `INSERT INTO ${this.ks}.checkpoint_stage (region_id, cut_id, key_id, post_id, count, expire_at) VALUES (?, ?, ?, ?, ?, ?)`,
      params: [cut.region, cut.id, e.keyId, e.postId, types.Long.fromNumber(e.count), e.expireAt === null ? null : new Date(e.expireAt)],
    };
  }

  /**
   * The entries as region_counts updates, one per (key, bucket), each entry a map cell
   * stamped with its cut's time (the newest cut wins per post, whatever the order of writes)
   * and its window's TTL.
   */
  private stateStatements(cut: Cut, entries: Entry[], now: number): Statement[] {
    // Per key (its entries share its expiry), the counts of each bucket.
    const keys = new Map<string, { ttl: number; buckets: { posts: string[]; counts: number[] }[] }>();
    for (const e of entries) {
      let key = keys.get(e.keyId);
      if (!key) keys.set(e.keyId, (key = { ttl: e.expireAt === null ? 0 : Math.max(1, cassandraTtl(e.expireAt, now)), buckets: [] }));
      const b = (key.buckets[recordBucket(e.postId)] ??= { posts: [], counts: [] });
      b.posts.push(e.postId);
      b.counts.push(e.count);
    }
    const out: Statement[] = [];
    for (const [keyId, { ttl, buckets }] of keys)
      buckets.forEach((b, bucket) =>
        out.push({
          query: `UPDATE ${this.ks}.region_counts USING TIMESTAMP ? AND TTL ? SET counts = counts + ? WHERE region_id = ? AND key_id = ? AND bucket = ?`,
          params: [stamp(cut), ttl, encodeCounts(b.posts, b.counts), cut.region, keyId, bucket],
        }),
      );
    return out;
  }

  private offsetsStatement(cut: Cut): Statement {
    return {
      query: `UPDATE ${this.ks}.region_counts USING TIMESTAMP ? SET offsets = ?, checkpoint_at = ? WHERE region_id = ?`,
      params: [stamp(cut), cut.offsets, new Date(cut.at), cut.region],
    };
  }

  /** The region's committed cut not yet (fully) applied to region_counts, if any. */
  private async pendingCut(region: string): Promise<(Cut & { entries: number }) | null> {
    const rs = await this.cassandra.execute(
      `SELECT cut_id, at, offsets, entry_count, applied FROM ${this.ks}.checkpoint_commits WHERE region_id = ?`,
      [region],
      { prepare: true },
    );
    const r = rs.rows[0];
    if (!r || r.get('applied') !== false) return null;
    return {
      region,
      id: r.get('cut_id') as string,
      at: (r.get('at') as Date).getTime(),
      offsets: Object.fromEntries(mapEntries<types.Long>(r.get('offsets'))),
      entries: r.get('entry_count') as number,
    };
  }

  /** A staged cut's entries, page by page. */
  private async *stagedEntries(cut: Cut, keyId?: string): AsyncGenerator<Entry[]> {
    let pageState: string | undefined;
    do {
      const rs = await this.cassandra.execute(
        `SELECT key_id, post_id, count, expire_at FROM ${this.ks}.checkpoint_stage WHERE region_id = ? AND cut_id = ?${keyId === undefined ? '' : ' AND key_id = ?'}`,
        keyId === undefined ? [cut.region, cut.id] : [cut.region, cut.id, keyId],
        { prepare: true, fetchSize: STAGE_BATCH, pageState },
      );
      yield rs.rows.map((r) => ({
        keyId: r.get('key_id') as string,
        postId: r.get('post_id') as string,
        count: Number(r.get('count')),
        expireAt: (r.get('expire_at') as Date | null)?.getTime() ?? null,
      }));
      pageState = rs.pageState ?? undefined;
    } while (pageState);
  }

  /**
   * Applies a committed cut to region_counts: its entries, then its offsets, each stamped
   * with the cut's time, then forgets the commit. Idempotent (a crash midway only makes
   * the next roll-forward write the same values again), and safe in any order with other
   * cuts (the newest stamp wins per cell).
   */
  private async applyCut(cut: Cut & { entries?: number }, onProgress?: () => Promise<void>): Promise<void> {
    const writes = new Batches(this.cassandra, STAGE_CONCURRENCY);
    const now = Date.now();
    let read = 0;
    for await (const page of this.stagedEntries(cut)) {
      read += page.length;
      await writes.add(
        this.stateStatements(
          cut,
          page.filter((e) => e.expireAt === null || e.expireAt > now),
          now,
        ),
      );
      await onProgress?.();
    }
    await writes.drain();
    if (cut.entries !== undefined && read !== cut.entries)
      throw new Error(`checkpoint ${cut.id} of ${cut.region}: ${read} staged entries, ${cut.entries} committed; its offsets are not applied`);
    const offsets = this.offsetsStatement(cut);
    await this.cassandra.execute(offsets.query, offsets.params, { prepare: true });
    // Done, unless a newer cut's commit (a newer stamp) already replaced the row.
    await this.cassandra.execute(
      `UPDATE ${this.ks}.checkpoint_commits USING TIMESTAMP ? SET applied = true WHERE region_id = ?`,
      [stamp(cut).add(1), cut.region],
      { prepare: true },
    );
    await this.dropStage(cut.region, cut.id);
  }

  /** Applies the region's committed cut if one is still pending (a crash between commit and apply); true if there was one. */
  async rollForward(region: string): Promise<boolean> {
    const pending = await this.pendingCut(region);
    if (pending) await this.applyCut(pending);
    return pending !== null;
  }

  /** Regions with a committed cut still pending. */
  private async regionsPending(): Promise<string[]> {
    const rs = await this.cassandra.execute(`SELECT region_id, applied FROM ${this.ks}.checkpoint_commits`, [], { prepare: true, fetchSize: 10_000 });
    return rs.rows.filter((r) => r.get('applied') === false).map((r) => r.get('region_id') as string);
  }

  private async dropStage(region: string, cutId: string): Promise<void> {
    await this.cassandra.execute(`DELETE FROM ${this.ks}.checkpoint_stage WHERE region_id = ? AND cut_id = ?`, [region, cutId], { prepare: true });
  }

  /** Checkpoints every region with changes; returns entries written (failures are thrown after trying all). */
  async checkpointAll(): Promise<number> {
    // What every region had applied before this round (Redis's applied marks): once every
    // changed region is checkpointed below, the record holds every event at or below them,
    // whatever its region — the replay mark a rebuild may trust (see restoreAll).
    const before = this.opts.resume ? await this.appliedMarks(this.opts.resume.topic) : null;
    const regions = await this.redis.smembers(REGIONS_KEY);
    const pending = new Set(await this.regionsPending()); // committed cuts a crash left half-applied
    let total = 0;
    let complete = true;
    let firstError: unknown;
    for (const r of new Set([...regions, ...pending])) {
      const dirty = await this.redis.exists(regionDirtyKey(r), regionInflightKey(r));
      if (!dirty && !pending.has(r)) continue;
      try {
        const n = await this.checkpoint(r);
        if (n === 'busy') complete = false;
        else total += n;
      } catch (e) {
        firstError ??= e;
      }
    }
    if (firstError) throw firstError;
    if (this.opts.resume && before && complete && before.marks.size > 0 && (await this.redis.get(EPOCH_KEY)) === before.epoch) {
      const offsets: Record<number, types.Long> = {};
      for (const [p, o] of before.marks) offsets[p] = types.Long.fromString(o.toString());
      await this.cassandra.execute(`INSERT INTO ${this.ks}.replay_marks (topic, offsets, at) VALUES (?, ?, ?)`, [this.opts.resume.topic, offsets, new Date()], {
        prepare: true,
      });
    }
    return total;
  }

  /**
   * The timed round every worker's timer asks for: only the first asker in an interval runs
   * it (a Redis lease of 0.9 interval), so W workers checkpoint each region once per
   * interval, not W times. Returns the entries written (null: another process had this
   * interval's round) and when the last round anywhere succeeded (null: none yet).
   */
  async checkpointRound(intervalMs: number): Promise<{ written: number | null; lastOk: number | null }> {
    const lease = await this.redis.set(CHECKPOINT_ROUND_KEY, randomUUID(), 'PX', Math.max(1, Math.floor(intervalMs * 0.9)), 'NX');
    if (lease === null) {
      const last = await this.redis.get(CHECKPOINT_LAST_OK_KEY);
      return { written: null, lastOk: last === null ? null : Number(last) };
    }
    const written = await this.checkpointAll();
    const now = Date.now();
    await this.redis.set(CHECKPOINT_LAST_OK_KEY, String(now));
    return { written, lastOk: now };
  }

  /** Redis's applied marks (partition → last offset applied in every region) under its epoch. */
  private async appliedMarks(topic: string): Promise<{ epoch: string; marks: Map<number, bigint> } | null> {
    const [[e1, epoch], [e2, all]] = (await this.redis.multi().get(EPOCH_KEY).hgetall(appliedKey(topic)).exec())! as [
      [Error | null, string | null],
      [Error | null, Record<string, string>],
    ];
    if (e1 || e2 || epoch === null) return null;
    const marks = new Map<number, bigint>();
    for (const [f, v] of Object.entries(all)) if (/^\d+$/.test(f)) marks.set(Number(f), BigInt(v));
    return { epoch, marks };
  }

  /** The last complete checkpoint round's replay marks of `topic` (empty when none). */
  async replayMarks(topic: string): Promise<Map<number, bigint>> {
    const rs = await this.cassandra.execute(`SELECT offsets FROM ${this.ks}.replay_marks WHERE topic = ?`, [topic], { prepare: true });
    const marks = new Map<number, bigint>();
    for (const [p, o] of mapEntries<types.Long>(rs.rows[0]?.get('offsets'))) marks.set(Number(p), BigInt(o.toString()));
    return marks;
  }

  private windowOf(keyId: string): { spec: WindowSpec; start: number } | undefined {
    const id = parseWindowId(keyId);
    const spec = id && this.specs.get(id.spec);
    return spec ? { spec, start: id.start } : undefined;
  }

  /** A region's recorded counts of one key, highest first (k = all when undefined); null if no record. */
  async readKey(region: string, keyId: string, k?: number): Promise<{ top: RankedCount[]; checkpointAt: Date | null } | null> {
    const counts = new Map<string, number>();
    let checkpointAt: Date | null = null;
    let seen = false;
    let pageState: string | undefined;
    do {
      const rs = await this.cassandra.execute(
        `SELECT counts, checkpoint_at FROM ${this.ks}.region_counts WHERE region_id = ? AND key_id = ?`,
        [region, keyId],
        { prepare: true, fetchSize: ROWS_PER_PAGE, pageState },
      );
      for (const row of rs.rows) {
        seen = true;
        checkpointAt ??= (row.get('checkpoint_at') as Date | null) ?? null;
        for (const [post, count] of mapEntries<types.Long>(row.get('counts'))) counts.set(post, Number(count));
      }
      pageState = rs.pageState ?? undefined;
    } while (pageState);
    // A committed cut still being applied is the record's newest state: its entries win.
    const pending = await this.pendingCut(region);
    if (pending) {
      const now = Date.now();
      for await (const page of this.stagedEntries(pending, keyId))
        for (const e of page) if (e.expireAt === null || e.expireAt > now) counts.set(e.postId, e.count);
      seen ||= counts.size > 0;
      checkpointAt = new Date(pending.at);
    }
    if (!seen) return null;
    const rows = [...counts].map(([post_id, view_count]) => ({ post_id, view_count }));
    rows.sort(byRank);
    return { top: k === undefined ? rows : rows.slice(0, k), checkpointAt };
  }

  /**
   * Restores every recorded region into Redis under a new epoch and publishes the epoch,
   * every write through the caller's rebuild lock: when Redis loses its state meanwhile (the
   * lock goes with it), this throws LostRebuildLock and publishes nothing. Returns the new
   * epoch and the regions restored.
   */
  async restoreAll(lock: RebuildLock): Promise<{ epoch: string; regions: string[] }> {
    const epoch = randomUUID();
    const at = Date.now();
    // The log ends before the restore: whatever the replay must reach to be caught up.
    const logEnds = await this.opts.resume?.logEnds?.();
    const rs = await this.cassandra.execute(`SELECT region_id FROM ${this.ks}.regions`, [], { prepare: true, fetchSize: 10_000 });
    const regions = rs.rows.map((r) => r.get('region_id') as string);
    // Per partition, what every restored region has applied: the lowest of their offsets,
    // taken from the very rows restored (a checkpoint landing meanwhile cannot skew it).
    const applied = new Map<number, bigint>();
    let asOf: number | null = null;
    for (const region of regions) {
      const { offsets, checkpointAt } = await this.restoreRegion(region, epoch, lock);
      for (const [p, o] of offsets) if (o < (applied.get(p) ?? o + 1n)) applied.set(p, o);
      if (checkpointAt !== null && (asOf === null || checkpointAt < asOf)) asOf = checkpointAt;
    }
    if (this.opts.resume && logEnds) {
      // A region with events on a partition but no checkpoint yet is in no row above: its
      // events are safe only below the last complete round's mark. So each partition resumes
      // from the lower of the two (from its beginning where no round completed); the restored
      // fences drop whatever the record already holds.
      const round = await this.replayMarks(this.opts.resume.topic);
      const resumeAt = new Map<number, bigint>();
      for (const p of new Set([...applied.keys(), ...round.keys()])) {
        const r = round.get(p) ?? -1n;
        const a = applied.get(p);
        resumeAt.set(p, a !== undefined && a < r ? a : r);
      }
      await writeRebuildPositions(lock, this.opts.resume.topic, { epoch, at, as_of: asOf }, resumeAt, logEnds);
    }
    await lock.write([['SET', EPOCH_KEY, epoch]]);
    return { epoch, regions };
  }

  private async restoreRegion(region: string, epoch: string, lock: RebuildLock): Promise<{ offsets: Map<number, bigint>; checkpointAt: number | null }> {
    await this.rollForward(region); // a committed cut is restored whole, with its offsets
    const byKey = new Map<string, RankedCount[]>();
    let offsets: [string, types.Long][] = [];
    let checkpointAt: number | null = null;
    let pageState: string | undefined;
    do {
      const rs = await this.cassandra.execute(`SELECT key_id, counts, offsets, checkpoint_at FROM ${this.ks}.region_counts WHERE region_id = ?`, [region], {
        prepare: true,
        fetchSize: ROWS_PER_PAGE,
        pageState,
      });
      for (const row of rs.rows) {
        if (row.get('offsets') !== null) offsets = mapEntries<types.Long>(row.get('offsets'));
        checkpointAt ??= (row.get('checkpoint_at') as Date | null)?.getTime() ?? null;
        const keyId = row.get('key_id') as string | null;
        if (keyId === null) continue; // only the static columns
        let list = byKey.get(keyId);
        if (!list) byKey.set(keyId, (list = []));
        for (const [post_id, count] of mapEntries<types.Long>(row.get('counts'))) list.push({ post_id, view_count: Number(count) });
      }
      pageState = rs.pageState ?? undefined;
    } while (pageState);

    await deleteRegion(this.redis, region, lock);
    const now = Date.now();
    // The roll's progress (window-roll.lua): what the restored parents hold of their children.
    const roll = rollPlan(this.opts.windows, this.opts.mode);
    const progress = new Map((byKey.get(ROLL_KEY_ID) ?? []).map((e) => [e.post_id, e.view_count]));
    const rolledFrom = roll ? progress.get(`${roll.child.name}:start`) : undefined;
    if (roll && rolledFrom !== undefined) {
      const state = `${rolledFrom}:${progress.get(`${roll.child.name}:cursor`) ?? 0}`;
      await lock.write([['HSET', regionSealedKey(region), rolledField(roll.child.name), state]]);
    }
    for (const [keyId, list] of byKey) {
      if (keyId === ROLL_KEY_ID) continue;
      let key = regionTopKey(region);
      let expireAt: number | undefined;
      if (keyId !== ALL_TIME) {
        const w = this.windowOf(keyId);
        if (!w) continue;
        expireAt = windowKeyExpireAt(w.spec, w.start);
        if (expireAt <= now) continue;
        key = regionWindowKey(region, keyId);
      }
      await this.restoreKey(lock, key, list);
      if (expireAt !== undefined) await lock.write([['PEXPIREAT', key, expireAt]]);
      // A child not yet rolled whole is rolled again from its recorded progress.
      const w = roll && keyId !== ALL_TIME ? this.windowOf(keyId) : undefined;
      if (roll && w && w.spec.name === roll.child.name && (rolledFrom === undefined || w.start >= rolledFrom))
        await lock.write([['ZADD', regionUnrolledKey(region, roll.child.name), w.start, String(w.start)]]);
      if (this.opts.mode === 'bounded') await lock.write([['ZREMRANGEBYRANK', key, 0, -(this.opts.boundedK + 1)]]);
      else if (keyId === ALL_TIME) await this.restoreKey(lock, regionBoundedKey(region), [...list].sort(byRank).slice(0, this.opts.boundedK));
    }
    // The restored keys' families, and the parents of restored children (a parent is also its children).
    const mergedAgain = new Set([...byKey.keys()].filter((id) => id !== ROLL_KEY_ID));
    for (const id of [...mergedAgain]) {
      const w = roll ? this.windowOf(id) : undefined;
      if (roll && w && w.spec.name === roll.child.name)
        for (const p of roll.parents) mergedAgain.add(windowId(p.name, Math.floor(w.start / p.sizeMs) * p.sizeMs));
    }
    const flatOffsets = offsets.flatMap(([p, o]) => [p, o.toString()]);
    for (let i = 0; i < flatOffsets.length; i += MAX_FENCED_ARGS)
      await lock.write([['HSET', regionOffsetsKey(region), ...flatOffsets.slice(i, i + MAX_FENCED_ARGS)]]);
    // Last: from here on the region accepts flushes of the new epoch.
    await lock.write([
      // restored_as_of: trailing timeframes (panes are not in the record) miss what came before it.
      ['HSET', regionMetaKey(region), 'epoch', epoch, ...(checkpointAt === null ? [] : ['restored_as_of', String(checkpointAt)])],
      ['SADD', REGIONS_KEY, region],
      ['SADD', GLOBAL_DIRTY_KEY, ...mergedAgain, ALL_TIME], // the global keys are merged again from the restored ones
    ]);
    return { offsets: new Map(offsets.map(([p, o]) => [Number(p), BigInt(o.toString())])), checkpointAt };
  }

  /** Adds a restored key's counts, a fenced ZADD per MAX_FENCED_ARGS arguments. */
  private async restoreKey(lock: RebuildLock, key: string, list: RankedCount[]): Promise<void> {
    const per = MAX_FENCED_ARGS / 2;
    for (let i = 0; i < list.length; i += per) await lock.write([['ZADD', key, ...list.slice(i, i + per).flatMap((p) => [p.view_count, p.post_id])]]);
  }
}
