/**
 * Redis key names and the formats built from them (docs/ARCHITECTURE.md): one region's keys share the `{<region>}` hash tag, so one
 * region's atomic step touches one Redis Cluster slot.
 */

/**
 * Every key of a region starts with this; the flush and the other region scripts build
 * the keys they need from it (the same `{<region>}` tag: one Redis Cluster slot).
 */
export const regionPrefix = (region: string): string => `region:{${region}}:`;

/** Exact all-time leaderboard: every post of the region, scored by its count. */
export const regionTopKey = (region: string): string => `${regionPrefix(region)}top_k`;
/** Bounded Top-K: at most K members, each scored by its true total. */
export const regionBoundedKey = (region: string): string => `${regionPrefix(region)}top_k_bounded`;
/** A tumbling window's leaderboard; `windowId` = `<spec>:<start ms>`. */
export const regionWindowKey = (region: string, windowId: string): string => `${regionPrefix(region)}top_k:${windowId}`;
/**
 * One attempt at summing a sliding window's panes (sliding-assemble.lua): its marker; the sum
 * being built is `<this>:sum`, a pane's members already added `<this>:seen:<pane index>`.
 */
export const regionAssemblyKey = (region: string, windowId: string, token: string): string => `${regionPrefix(region)}assembling:${windowId}:${token}`;
/** Hash partition -> last applied Kafka offset (the offset fence). */
export const regionOffsetsKey = (region: string): string => `${regionPrefix(region)}offsets`;
/** Set of the event_ids remembered for dedup (within the horizon); `seen:<slice>` lists them by arrival slice for eviction. */
export const regionSeenKey = (region: string): string => `${regionPrefix(region)}seen`;
/** Hash with the region state's `epoch` (the flush refuses to write under another epoch). */
export const regionMetaKey = (region: string): string => `${regionPrefix(region)}meta`;
/**
 * Changes not yet checkpointed: the set of key ids (`all`, window ids) with changes, and per
 * key id a hash post -> its count after the last change (-1: no longer kept there).
 */
export const regionDirtyKey = (region: string): string => `${regionPrefix(region)}dirty`;
export const regionDirtyEntriesKey = (region: string, keyId: string): string => `${regionPrefix(region)}dirty:${keyId}`;
/** The same while a checkpoint writes them (its cut), and the token naming that cut. */
export const regionInflightKey = (region: string): string => `${regionPrefix(region)}inflight`;
export const regionInflightEntriesKey = (region: string, keyId: string): string => `${regionPrefix(region)}inflight:${keyId}`;
export const regionCutKey = (region: string): string => `${regionPrefix(region)}inflight-cut`;
/** Held by whichever process is checkpointing the region. */
export const regionCheckpointLockKey = (region: string): string => `${regionPrefix(region)}checkpoint-lock`;
/** The current epoch of the whole Redis state; absent after Redis lost its data. */
export const EPOCH_KEY = 'hh:epoch';
/** Hash partition -> {max event time, regions} of a topic's partitions: a member taking one over carries on its watermark. */
export const watermarksKey = (topic: string): string => `hh:watermarks:${topic}`;
/**
 * Hash partition -> the last offset of a topic's partition that every region has applied
 * (written after a batch's flushes all succeeded), and `*` -> where partitions it does not
 * name start (set by a rebuild: -1, from the beginning). Consumption resumes after it.
 */
export const appliedKey = (topic: string): string => `hh:applied:${topic}`;
/**
 * Hash partition -> "<epoch>:<offset>": the last offset a member handed to its actors (applied
 * or not yet). A member that takes the partition over waits, briefly, until the applied mark
 * reaches it (the previous holder's batches in flight land) before it resumes from the mark.
 */
export const handedKey = (topic: string): string => `hh:handed:${topic}`;
/**
 * While a rebuild's replay runs: hash "p:<partition>" -> the offset that partition's replay
 * must reach (the log end when the rebuild ran), and "meta" -> JSON {epoch, at, as_of}.
 * Gone once every partition caught up: until then answers say they are recovering.
 */
export const recoveryKey = (topic: string): string => `hh:recovery:${topic}`;
/** Held by the process rebuilding Redis from Cassandra. */
export const REBUILD_LOCK_KEY = 'hh:rebuild-lock';
/** The timed checkpoint round's lease: one process per interval runs it, whatever the worker count. */
export const CHECKPOINT_ROUND_KEY = 'hh:checkpoint:round';
/** When (ms) the last timed checkpoint round anywhere succeeded. */
export const CHECKPOINT_LAST_OK_KEY = 'hh:checkpoint:last-ok';
/** Key id of the all-time leaderboard in the record (windows use their window id). */
export const ALL_TIME = 'all';
/** Set of every region that has counted events (unknown region -> 404). */
export const REGIONS_KEY = 'regions';

/** One API client's rate-limit state (client = `key:<hash>` or `ip:<address>`); its own hash tag. */
export const rateLimitKey = (client: string): string => `ratelimit:{${client}}`;
/**
 * Trailing timeframe `<spec>`: the sum of the panes (pane = spec size / 60) the watermark
 * has passed, back over the spec's size, kept by adding the newest pane and subtracting the
 * one that falls out.
 */
export const regionTrailingKey = (region: string, spec: string): string => `${regionPrefix(region)}trailing:${spec}`;
/** One pane of a trailing timeframe: counts of the events with event time in [start, start + pane). */
export const regionPaneKey = (region: string, spec: string, startMs: number): string => `${regionPrefix(region)}pane:${spec}:${startMs}`;
/** Hash spec -> "<lowest pane start>:<highest pane start>" the trailing key holds. */
export const regionTrailingStateKey = (region: string): string => `${regionPrefix(region)}trailing`;

/**
 * Hash session spec -> bucket start below which that spec's sessions are sealed; and
 * `final:<tumbling spec>` -> the start of the latest window of that spec taking its FINAL
 * snapshot (windowFinalField). Flushes refuse to write to either.
 */
export const regionSealedKey = (region: string): string => `${regionPrefix(region)}sealed`;
/** The starts of a child spec's windows written and not yet rolled up into their parents (store/window-roll.lua). */
export const regionUnrolledKey = (region: string, spec: string): string => `${regionPrefix(region)}unrolled:${spec}`;
/** The field of regionSealedKey with a child spec's roll progress, "<start>:<cursor>". */
export const rolledField = (spec: string): string => `rolled:${spec}`;
/** The field of regionSealedKey counting roll pages (a reader that saw it change reads again). */
export const ROLL_VERSION_FIELD = 'roll_version';
/** The record's key id of the roll progress (entries <child spec>:start and <child spec>:cursor). */
export const ROLL_KEY_ID = 'roll';
/** The field of regionSealedKey naming a tumbling spec's latest FINAL window. */
export const windowFinalField = (spec: string): string => `final:${spec}`;
/** Sorted set of the bucket starts not yet sealed into a session, per session spec. */
export const regionBucketIndexKey = (region: string, spec: string): string => `${regionPrefix(region)}buckets:${spec}`;
/** Sorted set of the sealed sessions ("<start>:<end>", by start) the coordinator has not taken yet. */
export const regionSessionsKey = (region: string, spec: string): string => `${regionPrefix(region)}sessions:${spec}`;
/** One session bucket: counts of the events with event time in [start, start + bucket). */
export const regionBucketKey = (region: string, spec: string, startMs: number): string => `${regionPrefix(region)}bucket:${spec}:${startMs}`;

/** Global Top-K of a key family: all-time, a window id, or `trailing:<spec>`. */
export const globalTopKey = (family?: string): string => (family && family !== 'all' ? `global:top_k:${family}` : 'global:top_k');
/** Figures of the last merge of a key family (JSON): when, entries moved, the naive figure. */
export const globalMetaKey = (family: string): string => `global:meta:${family}`;
/** Key families changed since the last global merge (set by the hot path). */
export const GLOBAL_DIRTY_KEY = 'global:dirty';

/**
 * A window's id, `<spec>:<start ms>` (spec names never contain a colon: config.ts). The one
 * place ids are built and parsed (the flush script splits them at the same colon).
 */
export const windowId = (spec: string, startMs: number): string => `${spec}:${startMs}`;

/** `<spec>:<start ms>` back into its parts; undefined when it is not one. */
export function parseWindowId(id: string): { spec: string; start: number } | undefined {
  const i = id.indexOf(':');
  if (i <= 0) return undefined;
  const start = Number(id.slice(i + 1));
  return Number.isSafeInteger(start) && start >= 0 && /^\d+$/.test(id.slice(i + 1)) ? { spec: id.slice(0, i), start } : undefined;
}

/**
 * The late mask an event carries to the flush (region-flush.lua reads the same layout):
 * bit k for tumbling spec k (at most MAX_TUMBLING_SPECS), bit SESSION_BIT0 + q for session
 * spec q (at most MAX_SESSION_SPECS). A set bit: beyond that spec's allowed lateness.
 */
export const MAX_TUMBLING_SPECS = 16;
export const MAX_SESSION_SPECS = 8;
export const SESSION_BIT0 = MAX_TUMBLING_SPECS;
export const lateMaskBit = (k: number): number => 1 << k;
export const sessionLateBit = (q: number): number => 1 << (SESSION_BIT0 + q);

/**
 * How long a tumbling window's Redis key (and its entries in the record) outlive the
 * window's TTL. The window's workflow deletes the key at the TTL after persisting it; the
 * grace is for a workflow held up past the TTL (Temporal lagging, the runtime down for a
 * while, a backlog read after downtime): it still finds the key and persists the counts.
 */
export const WINDOW_KEY_GRACE_MS = 600_000;
