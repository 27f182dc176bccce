/**
 * The audit log of admin actions: one row per action in Cassandra (`admin_audit`, a
 * partition per UTC day) and one log line — who, what, when, outcome. A failed write to
 * the table is logged and counted, never hides the action's own answer.
 */
import { types, type Client } from 'cassandra-driver';

export interface AuditEntry {
  /** Who asked: the credential's role and the peer address (never the token). */
  who: string;
  action: string;
  target: string;
  outcome: 'ok' | 'refused' | 'failed';
  detail?: string;
  /** The API request that asked (in the log line; the table keeps who, what, when, outcome). */
  request_id?: string;
}

export interface AuditRow extends AuditEntry {
  at: Date;
}

export class AuditLog {
  constructor(
    private readonly cassandra: Client,
    private readonly keyspace: string,
    private readonly log: (s: string) => void,
    private readonly onFailure?: (e: Error) => void,
  ) {}

  async record(e: AuditEntry, at = new Date()): Promise<void> {
    this.log(`audit: ${JSON.stringify({ at: at.toISOString(), ...e })}`);
    try {
      await this.cassandra.execute(
        `INSERT INTO ${this.keyspace}.admin_audit (day, at, id, who, action, target, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        [at.toISOString().slice(0, 10), at, types.TimeUuid.fromDate(at), e.who, e.action, e.target, e.outcome, e.detail ?? null],
        { prepare: true },
      );
    } catch (err) {
      this.log(`audit: could not write the row to Cassandra: ${(err as Error).message}`);
      this.onFailure?.(err as Error);
    }
  }

  /** The newest entries of one UTC day (YYYY-MM-DD). */
  async day(day: string, limit = 100): Promise<AuditRow[]> {
    const rs = await this.cassandra.execute(
      `SELECT at, who, action, target, outcome, detail FROM ${this.keyspace}.admin_audit WHERE day = ? LIMIT ?`,
      [day, limit],
      {
        prepare: true,
      },
    );
    return rs.rows.map((r) => ({
      at: r.get('at') as Date,
      who: r.get('who') as string,
      action: r.get('action') as string,
      target: r.get('target') as string,
      outcome: r.get('outcome') as AuditEntry['outcome'],
      ...(r.get('detail') ? { detail: r.get('detail') as string } : {}),
    }));
  }
}
