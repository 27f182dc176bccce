/**
 * Post metadata (author, content) from Cassandra's `posts` table, joined into Top-K
 * answers: the posts a request needs that are not cached are fetched in ONE query, and
 * cached (found ones for `ttlMs`, absent ones for `missTtlMs`).
 */
import type { Client } from 'cassandra-driver';

export interface PostMeta {
  author: string | null;
  content: string | null;
}

export interface PostMetaStoreOptions {
  /** Most cached posts. @default 100000 */
  maxEntries?: number;
  /** How long a found post's metadata is reused. @default 5 minutes: metadata rarely changes. */
  ttlMs?: number;
  /** How long "no such post" is reused. @default 30 s: a new post's metadata appears soon. */
  missTtlMs?: number;
}

interface Entry {
  meta: PostMeta | null;
  expires: number;
}

export class PostMetaStore {
  private readonly cache = new Map<string, Entry>();
  private readonly maxEntries: number;
  private readonly ttlMs: number;
  private readonly missTtlMs: number;

  constructor(
    private readonly client: Client,
    private readonly keyspace: string,
    opts: PostMetaStoreOptions = {},
  ) {
    this.maxEntries = opts.maxEntries ?? 100_000;
    this.ttlMs = opts.ttlMs ?? 300_000;
    this.missTtlMs = opts.missTtlMs ?? 30_000;
  }

  /** Metadata of each post id (null where the store has none). Throws if Cassandra cannot answer. */
  async get(postIds: string[], now = Date.now()): Promise<Map<string, PostMeta | null>> {
    const out = new Map<string, PostMeta | null>();
    const missing: string[] = [];
    for (const id of postIds) {
      const e = this.cache.get(id);
      if (e && e.expires > now) {
        out.set(id, e.meta);
        // Refresh recency: a Map iterates in insertion order, so re-insert to keep hot ids last.
        this.cache.delete(id);
        this.cache.set(id, e);
      } else missing.push(id);
    }
    if (missing.length) {
      const rs = await this.client.execute(`SELECT post_id, author, content FROM ${this.keyspace}.posts WHERE post_id IN ?`, [missing], {
        prepare: true,
        fetchSize: missing.length + 1,
      });
      const found = new Map<string, PostMeta>();
      for (const row of rs.rows) {
        found.set(row.get('post_id') as string, {
          author: (row.get('author') as string | null) ?? null,
          content: (row.get('content') as string | null) ?? null,
        });
      }
      for (const id of missing) {
        const meta = found.get(id) ?? null;
        out.set(id, meta);
        this.remember(id, { meta, expires: now + (meta ? this.ttlMs : this.missTtlMs) });
      }
    }
    return out;
  }

  private remember(id: string, e: Entry): void {
    this.cache.delete(id);
    this.cache.set(id, e);
    while (this.cache.size > this.maxEntries) this.cache.delete(this.cache.keys().next().value as string);
  }
}

/** Writes post metadata with bounded concurrency (prepared statement, one partition per row). */
export async function writePosts(
  client: Client,
  keyspace: string,
  posts: Iterable<{ post_id: string; author: string; content: string; created_at: Date; metadata?: Record<string, string> }>,
  concurrency = 64,
): Promise<number> {
  const query = `INSERT INTO ${keyspace}.posts (post_id, author, content, created_at, metadata) VALUES (?, ?, ?, ?, ?)`;
  const it = posts[Symbol.iterator]();
  let n = 0;
  const worker = async () => {
    for (let r = it.next(); !r.done; r = it.next()) {
      const p = r.value;
      await client.execute(query, [p.post_id, p.author, p.content, p.created_at, p.metadata ?? {}], { prepare: true });
      n++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return n;
}
