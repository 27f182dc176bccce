/**
 * The record in Cassandra that Redis is rebuilt from, and the rebuild itself.
 *
 * Checkpoint (any process, one at a time per region): a consistent cut of the region's
 * changed entries and its offset fence (checkpoint.lua), written as ONE single-partition
 * batch (atomic, isolated) of absolute counts plus the offsets they include, stamped with
 * the cut's time. A repeated or late checkpoint never double counts: values are absolute
 * and the newest cut wins.
 *
 * Rebuild (one process, under a lock): restore every recorded region's keys and fences
 * from Cassandra under a new epoch; every ingest then rewinds its partitions to the
 * oldest recorded offset, and the fences make the replay count only what the record
 * did not include.
 */
import { randomUUID } from 'node:crypto';
import { types, type Client } from 'cassandra-driver';
import type { Redis } from 'ioredis';
import type { WindowSpec, TopKMode } from '../config';
import {
  ALL_TIME,
  appliedKey,
  GLOBAL_DIRTY_KEY,
  EPOCH_KEY,
  REGIONS_KEY,
  regionBoundedKey,
  regionCheckpointLockKey,
  regionDirtyKey,
  regionInflightKey,
  regionInflightEntriesKey,
  regionCutKey,
  regionPrefix,
  regionMetaKey,
  regionOffsetsKey,
  regionTopKey,
  parseWindowId,
  regionWindowKey,
} from '../keys';
import { writeRebuildPositions } from './positions';
import { scripted, type ScriptedRedis } from './scripts';
import { deleteRegion } from './region-keys';
import { byRank, type RankedCount } from '../ranking';

export interface RecordOptions {
  keyspace: string;
  /**
   * The topic whose consumption a rebuild positions (its applied marks and replay targets
   * in Redis) and how to read its partitions' log ends; without it a rebuild restores
   * counts only (tools and tests that read the record).
   */
  resume?: { topic: string; logEnds: () => Promise<Map<number, bigint>> };
  windows: readonly WindowSpec[];
  boundedK: number;
  /** `bounded`: restored leaderboards are cut back to boundedK (the record keeps evicted posts' last counts). */
  mode?: TopKMode;
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
  }

  private get ks(): string {
    return this.opts.keyspace;
  }

  /**
   * Checkpoints one region if it changed. Returns the number of entries written, or
   * 'busy' when another process holds the region's checkpoint lock.
   */
  async checkpoint(region: string): Promise<number | 'busy'> {
    const token = randomUUID();
    const lock = regionCheckpointLockKey(region);
    if ((await this.redis.set(lock, token, 'PX', 60_000, 'NX')) === null) return 'busy';
    try {
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
      const stamp = types.Long.fromNumber(at * 1000);
      const offsets: Record<number, types.Long> = {};
      for (let i = 0; i < flatOffsets.length; i += 2) offsets[Number(flatOffsets[i])] = types.Long.fromString(flatOffsets[i + 1]);
      const queries: { query: string; params: unknown[] }[] = [
        {
          query: `UPDATE ${this.ks}.region_state USING TIMESTAMP ? SET offsets = ?, checkpoint_at = ? WHERE region_id = ?`,
          params: [stamp, offsets, new Date(at), region],
        },
      ];
      const insert = `INSERT INTO ${this.ks}.region_state (region_id, key_id, post_id, count) VALUES (?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?`;
      // The cut is taken: its entries are read in steps (Redis serves flushes in between),
      // straight into the batch's statements.
      for (let k = 0; k < sizes.length; k += 2) {
        const keyId = String(sizes[k]);
        let ttl = 0;
        if (keyId !== ALL_TIME) {
          const w = this.windowOf(keyId);
          ttl = w ? cassandraTtl(w.start + w.spec.sizeMs + w.spec.ttlMs, at) : 0;
          if (ttl <= 0) continue; // expired (or no longer configured): nothing to keep
        }
        let read = 0;
        let cursor = '0';
        do {
          const [next, part] = await this.redis.hscan(regionInflightEntriesKey(region, keyId), cursor, 'COUNT', 5000);
          for (let i = 0; i < part.length; i += 2) {
            read++;
            const count = Number(part[i + 1]);
            if (count < 0) continue; // no longer kept there (evicted in bounded mode)
            queries.push({ query: insert, params: [region, keyId, part[i], types.Long.fromNumber(count), stamp, ttl] });
          }
          cursor = next;
        } while (cursor !== '0');
        // Whole, or not at all: a cut lost mid-read (FLUSHDB, a restart) must not reach the
        // record with its offsets and only part of its counts.
        if (read !== Number(sizes[k + 1]))
          throw new Error(`checkpoint of ${region}: the cut changed while it was read (Redis lost or replaced it); nothing written`);
      }
      if ((await this.redis.get(regionCutKey(region))) !== token) {
        throw new Error(`checkpoint of ${region}: the cut changed while it was read (Redis lost or replaced it); nothing written`);
      }
      await this.cassandra.execute(`INSERT INTO ${this.ks}.regions (region_id, first_checkpoint_at) VALUES (?, ?) USING TIMESTAMP 1`, [region, new Date(at)], {
        prepare: true,
      });
      await this.cassandra.batch(queries, { prepare: true, logged: false });
      // Committed: the inflight entries are in the record. (A crash before this only makes
      // the next checkpoint write them again, with fresher absolute values.)
      const done = this.redis.multi().del(regionInflightKey(region), regionCutKey(region));
      for (let k = 0; k < sizes.length; k += 2) done.del(regionInflightEntriesKey(region, String(sizes[k])));
      await done.exec();
      return queries.length - 1;
    } finally {
      await this.scripts.hhRelease(lock, token);
    }
  }

  /** Checkpoints every region with changes; returns entries written (failures are thrown after trying all). */
  async checkpointAll(): Promise<number> {
    // What every region had applied before this round (Redis's applied marks): once every
    // changed region is checkpointed below, the record holds every event at or below them,
    // whatever its region — the replay mark a rebuild may trust (see restoreAll).
    const before = this.opts.resume ? await this.appliedMarks(this.opts.resume.topic) : null;
    const regions = await this.redis.smembers(REGIONS_KEY);
    let total = 0;
    let complete = true;
    let firstError: unknown;
    for (const r of regions) {
      const dirty = await this.redis.exists(regionDirtyKey(r), regionInflightKey(r));
      if (!dirty) continue;
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
    const offsets = (rs.rows[0]?.get('offsets') as Record<string, types.Long> | null) ?? {};
    for (const [p, o] of Object.entries(offsets)) marks.set(Number(p), BigInt(o.toString()));
    return marks;
  }

  private windowOf(keyId: string): { spec: WindowSpec; start: number } | undefined {
    const id = parseWindowId(keyId);
    const spec = id && this.specs.get(id.spec);
    return spec ? { spec, start: id.start } : undefined;
  }

  /** A region's recorded counts of one key, highest first (k = all when undefined); null if no record. */
  async readKey(region: string, keyId: string, k?: number): Promise<{ top: RankedCount[]; checkpointAt: Date | null } | null> {
    const rows: RankedCount[] = [];
    let checkpointAt: Date | null = null;
    let seen = false;
    let pageState: string | undefined;
    do {
      const rs = await this.cassandra.execute(
        `SELECT post_id, count, checkpoint_at FROM ${this.ks}.region_state WHERE region_id = ? AND key_id = ?`,
        [region, keyId],
        { prepare: true, fetchSize: 5000, pageState },
      );
      for (const row of rs.rows) {
        seen = true;
        checkpointAt ??= (row.get('checkpoint_at') as Date | null) ?? null;
        rows.push({ post_id: row.get('post_id') as string, view_count: Number(row.get('count')) });
      }
      pageState = rs.pageState ?? undefined;
    } while (pageState);
    if (!seen) return null;
    rows.sort(byRank);
    return { top: k === undefined ? rows : rows.slice(0, k), checkpointAt };
  }

  /** Per Kafka partition, the oldest offset any recorded region includes (replay starts after it). */
  async recordedOffsets(): Promise<Map<number, bigint>> {
    const rs = await this.cassandra.execute(`SELECT DISTINCT region_id, offsets FROM ${this.ks}.region_state`, [], { prepare: true, fetchSize: 10_000 });
    const min = new Map<number, bigint>();
    for (const row of rs.rows) {
      const offsets = (row.get('offsets') as Record<string, types.Long> | null) ?? {};
      for (const [p, o] of Object.entries(offsets)) {
        const v = BigInt(o.toString());
        const cur = min.get(Number(p));
        if (cur === undefined || v < cur) min.set(Number(p), v);
      }
    }
    return min;
  }

  /**
   * Restores every recorded region into Redis under a new epoch and publishes the epoch.
   * The caller holds the rebuild lock. Returns the new epoch and the regions restored.
   */
  async restoreAll(): Promise<{ epoch: string; regions: string[] }> {
    const epoch = randomUUID();
    const at = Date.now();
    // The log ends before the restore: whatever the replay must reach to be caught up.
    const logEnds = await this.opts.resume?.logEnds();
    const rs = await this.cassandra.execute(`SELECT region_id FROM ${this.ks}.regions`, [], { prepare: true, fetchSize: 10_000 });
    const regions = rs.rows.map((r) => r.get('region_id') as string);
    // Per partition, what every restored region has applied: the lowest of their offsets,
    // taken from the very rows restored (a checkpoint landing meanwhile cannot skew it).
    const applied = new Map<number, bigint>();
    let asOf: number | null = null;
    for (const region of regions) {
      const { offsets, checkpointAt } = await this.restoreRegion(region, epoch);
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
      await writeRebuildPositions(this.redis, this.opts.resume.topic, { epoch, at, as_of: asOf }, resumeAt, logEnds);
    }
    await this.redis.set(EPOCH_KEY, epoch);
    return { epoch, regions };
  }

  private async restoreRegion(region: string, epoch: string): Promise<{ offsets: Map<number, bigint>; checkpointAt: number | null }> {
    const byKey = new Map<string, RankedCount[]>();
    let offsets: Record<string, types.Long> = {};
    let checkpointAt: number | null = null;
    let pageState: string | undefined;
    do {
      const rs = await this.cassandra.execute(
        `SELECT key_id, post_id, count, offsets, checkpoint_at FROM ${this.ks}.region_state WHERE region_id = ?`,
        [region],
        { prepare: true, fetchSize: 5000, pageState },
      );
      for (const row of rs.rows) {
        offsets = (row.get('offsets') as Record<string, types.Long> | null) ?? offsets;
        checkpointAt ??= (row.get('checkpoint_at') as Date | null)?.getTime() ?? null;
        const keyId = row.get('key_id') as string | null;
        if (keyId === null) continue; // only the static columns
        let list = byKey.get(keyId);
        if (!list) byKey.set(keyId, (list = []));
        list.push({ post_id: row.get('post_id') as string, view_count: Number(row.get('count')) });
      }
      pageState = rs.pageState ?? undefined;
    } while (pageState);

    await deleteRegion(this.redis, region);
    const now = Date.now();
    for (const [keyId, list] of byKey) {
      let key = regionTopKey(region);
      let expireAt: number | undefined;
      if (keyId !== ALL_TIME) {
        const w = this.windowOf(keyId);
        if (!w) continue;
        expireAt = w.start + w.spec.sizeMs + w.spec.ttlMs;
        if (expireAt <= now) continue;
        key = regionWindowKey(region, keyId);
      }
      for (let i = 0; i < list.length; i += 5000) {
        const args = list.slice(i, i + 5000).flatMap((p) => [p.view_count, p.post_id]);
        await this.redis.zadd(key, ...args);
      }
      if (expireAt !== undefined) await this.redis.pexpireat(key, expireAt);
      if (this.opts.mode === 'bounded') await this.redis.zremrangebyrank(key, 0, -(this.opts.boundedK + 1));
      else if (keyId === ALL_TIME) {
        const top = [...list].sort(byRank).slice(0, this.opts.boundedK);
        if (top.length) await this.redis.zadd(regionBoundedKey(region), ...top.flatMap((p) => [p.view_count, p.post_id]));
      }
    }
    const flatOffsets = Object.entries(offsets).flatMap(([p, o]) => [p, o.toString()]);
    if (flatOffsets.length) await this.redis.hset(regionOffsetsKey(region), ...flatOffsets);
    // Last: from here on the region accepts flushes of the new epoch.
    await this.redis
      .pipeline()
      // restored_as_of: trailing timeframes (panes are not in the record) miss what came before it.
      .hset(regionMetaKey(region), 'epoch', epoch, ...(checkpointAt === null ? [] : ['restored_as_of', String(checkpointAt)]))
      .sadd(REGIONS_KEY, region)
      .sadd(GLOBAL_DIRTY_KEY, ...byKey.keys(), ALL_TIME) // the global keys are merged again from the restored ones
      .exec();
    return { offsets: new Map(Object.entries(offsets).map(([p, o]) => [Number(p), BigInt(o.toString())])), checkpointAt };
  }
}
