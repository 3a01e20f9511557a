import type BetterSqlite3 from 'better-sqlite3';
import type { DailyUsage } from '../../core/daily-usage.js';
import { closedError } from '../../core/errors.js';
import type { SessionQuery, SessionStatus } from '../../core/session-record.js';
import { encodeUsageState } from '../../core/usage-codec.js';
import {
  type NewSession,
  type RegistryScope,
  type SessionPatch,
  type SessionRegistry,
  type StatusCounts,
  type StoredSession,
  type SweptSession,
  sessionExists,
  tenantProjectKey,
} from '../registry.js';
import type { SqliteDailyUsage } from './daily-usage.js';
import { listSql, registerListFunctions } from './list-query.js';
import {
  patchAssignments,
  RECORD_COLUMNS,
  type RecordRow,
  recordParams,
  rowToSession,
} from './records.js';

interface CountsRow {
  active: number;
  archived: number;
  expired: number;
  failed: number;
  due_to_expire: number;
  due_to_purge: number;
}

/** The record columns an insert writes, as `name = @name` and as named parameters. */
const WRITTEN = [
  'tenant',
  'owner',
  'title',
  'tags',
  'metadata',
  'status',
  'created_at',
  'last_active_at',
  'expires_at',
  'expired_at',
  'purge_at',
  'extended_until',
  'fork_parent_id',
  'fork_message_uuid',
  'expiry_overrides',
  'limit_overrides',
];

/** countByStatus's figures, as effectiveStatus() reads statuses as of @now. */
const COUNTS = `
  COUNT(*) FILTER (WHERE status = 'active' AND (expires_at IS NULL OR expires_at > @now)) AS active,
  COUNT(*) FILTER (WHERE status = 'archived') AS archived,
  COUNT(*) FILTER (WHERE status = 'expired' OR (status IN ('active', 'failed') AND expires_at <= @now))
    AS expired,
  COUNT(*) FILTER (WHERE status = 'failed' AND (expires_at IS NULL OR expires_at > @now)) AS failed,
  COUNT(*) FILTER (WHERE status IN ('active', 'failed') AND expires_at <= @now) AS due_to_expire,
  COUNT(*) FILTER (WHERE status IN ('active', 'failed', 'expired') AND purge_at <= @now)
    AS due_to_purge`;

/**
 * Session records in the transcript store's SQLite database: each is the record columns of the
 * session's `transcript_sessions` row. Every write is one statement or one IMMEDIATE
 * transaction, so several processes on one file never lose an update or count a session twice.
 */
export class SqliteRegistry implements SessionRegistry {
  private readonly statements;
  private readonly updates = new Map<string, BetterSqlite3.Statement>();
  private readonly lists = new Map<string, BetterSqlite3.Statement>();
  private readonly ownedCounts = new Map<number, BetterSqlite3.Statement>();
  private readonly insertTransaction;
  private readonly removeTransaction;
  private readonly expireTransaction;
  private readonly purgeTransaction;
  private closed = false;

  constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly daily: SqliteDailyUsage,
  ) {
    // Functions live on the connection, not in the file: every process registers its own.
    registerListFunctions(db);
    this.statements = {
      findRow: db.prepare<[string, string], { id: number; tenant: string | null }>(
        'SELECT id, tenant FROM transcript_sessions WHERE project_key = ? AND session_id = ?',
      ),
      insertRow: db.prepare(
        `INSERT INTO transcript_sessions (project_key, session_id, record_version, usage_state,
           ${WRITTEN.join(', ')})
         VALUES (@project_key, @session_id, 1, @usage_state, ${WRITTEN.map((c) => `@${c}`).join(', ')})
         RETURNING ${RECORD_COLUMNS}`,
      ),
      // Adopts a transcript stored before its record: its entries and folded usage stay.
      adoptRow: db.prepare(
        `UPDATE transcript_sessions SET record_version = 1,
           usage_state = CASE WHEN @replace_usage THEN @usage_state ELSE usage_state END,
           ${WRITTEN.map((c) => `${c} = @${c}`).join(', ')}
         WHERE id = @id
         RETURNING ${RECORD_COLUMNS}`,
      ),
      get: db.prepare<[string, string, string], RecordRow>(
        `SELECT ${RECORD_COLUMNS} FROM transcript_sessions
         WHERE project_key = ? AND session_id = ? AND tenant = ?`,
      ),
      findRecordRow: db
        .prepare<[string, string, string], number>(
          `SELECT id FROM transcript_sessions
           WHERE project_key = ? AND session_id = ? AND tenant = ?`,
        )
        .pluck(),
      deleteEntries: db.prepare<[number]>('DELETE FROM transcript_entries WHERE session_ref = ?'),
      deleteRow: db.prepare<[number]>('DELETE FROM transcript_sessions WHERE id = ?'),
      forks: db.prepare<[string, string], RecordRow>(
        `SELECT ${RECORD_COLUMNS} FROM transcript_sessions
         WHERE tenant = ? AND fork_parent_id = ?
         ORDER BY created_at DESC, session_id DESC`,
      ),
      counts: db.prepare<{ tenant: string; now: number }, CountsRow>(
        `SELECT ${COUNTS} FROM transcript_sessions WHERE tenant = @tenant`,
      ),
      countsOfOwner: db.prepare<{ tenant: string; owner: string; now: number }, CountsRow>(
        `SELECT ${COUNTS} FROM transcript_sessions WHERE tenant = @tenant AND owner = @owner`,
      ),
      // Set-based: one statement marks the whole batch. The partial index holds only live
      // sessions, so finding the due ones reads nothing else.
      expire: db.prepare<[number, number], SweptSession>(
        `UPDATE transcript_sessions
         SET status = 'expired', expired_at = expires_at, record_version = record_version + 1
         WHERE id IN (
           SELECT id FROM transcript_sessions
           WHERE status IN ('active', 'failed') AND expires_at <= ?
           LIMIT ?)
         RETURNING tenant, session_id AS id`,
      ),
      duePurge: db.prepare<[number, number], SweptSession & { ref: number }>(
        `SELECT id AS ref, tenant, session_id AS id FROM transcript_sessions
         WHERE status IN ('active', 'failed', 'expired') AND purge_at <= ?
         LIMIT ?`,
      ),
      purgeEntries: db.prepare<[string]>(
        'DELETE FROM transcript_entries WHERE session_ref IN (SELECT value FROM json_each(?))',
      ),
      purgeRows: db.prepare<[string]>(
        'DELETE FROM transcript_sessions WHERE id IN (SELECT value FROM json_each(?))',
      ),
    };

    this.insertTransaction = db.transaction((session: NewSession): RecordRow => {
      const projectKey = tenantProjectKey(session.tenant);
      const existing = this.statements.findRow.get(projectKey, session.id);
      if (existing?.tenant != null) throw sessionExists(session.id);
      const usageState = session.usage === undefined ? null : encodeUsageState(session.usage);
      const params = recordParams(session);
      if (existing) {
        return this.statements.adoptRow.get({
          ...params,
          id: existing.id,
          replace_usage: session.usage === undefined ? 0 : 1,
          usage_state: usageState,
        }) as RecordRow;
      }
      return this.statements.insertRow.get({
        ...params,
        project_key: projectKey,
        session_id: session.id,
        usage_state: usageState,
      }) as RecordRow;
    });

    this.removeTransaction = db.transaction((tenant: string, id: string): boolean => {
      const row = this.statements.findRecordRow.get(tenantProjectKey(tenant), id, tenant);
      if (row === undefined) return false;
      // Removing refunds nothing: the running charge joins the owner's days first.
      this.daily.flushRunning(row);
      // Subagent transcripts are entries of the same row (under their subpath): all go at once.
      this.statements.deleteEntries.run(row);
      this.statements.deleteRow.run(row);
      return true;
    });

    this.expireTransaction = db.transaction((now: number, limit: number): SweptSession[] =>
      this.statements.expire.all(now, limit),
    );

    // One transaction: the rows picked are the rows deleted, so each is reported exactly once.
    this.purgeTransaction = db.transaction((now: number, limit: number): SweptSession[] => {
      const due = this.statements.duePurge.all(now, limit);
      if (due.length === 0) return [];
      const list = JSON.stringify(due.map((row) => row.ref));
      this.daily.flushRunningOf(list);
      this.statements.purgeEntries.run(list);
      this.statements.purgeRows.run(list);
      return due.map(({ tenant, id }) => ({ tenant, id }));
    });
  }

  private checkOpen(): void {
    if (this.closed || !this.db.open) throw closedError('SQLite session registry');
  }

  /** Marks the registry unusable; the backend closes the database itself. */
  markClosed(): void {
    this.closed = true;
  }

  async insert(session: NewSession): Promise<StoredSession> {
    this.checkOpen();
    // IMMEDIATE: the existence check and the write hold the write lock together, so of two
    // processes registering one id exactly one wins.
    return rowToSession(this.insertTransaction.immediate(session));
  }

  async get(tenant: string, id: string): Promise<StoredSession | null> {
    this.checkOpen();
    const row = this.statements.get.get(tenantProjectKey(tenant), id, tenant);
    return row ? rowToSession(row) : null;
  }

  async update(
    tenant: string,
    id: string,
    expectedVersion: number,
    patch: SessionPatch,
  ): Promise<StoredSession | null> {
    this.checkOpen();
    const { columns, values } = patchAssignments(patch);
    const shape = columns.join(',');
    let statement = this.updates.get(shape);
    if (!statement) {
      // One statement: the version test and the write are atomic on their own. It never reads
      // or writes the append's columns, so appends and updates never invalidate each other.
      statement = this.db.prepare(
        `UPDATE transcript_sessions
         SET ${[...columns.map((c) => `${c} = ?`), 'record_version = record_version + 1'].join(', ')}
         WHERE project_key = ? AND session_id = ? AND tenant = ? AND record_version = ?
         RETURNING ${RECORD_COLUMNS}`,
      );
      this.updates.set(shape, statement);
    }
    const row = statement.get(...values, tenantProjectKey(tenant), id, tenant, expectedVersion) as
      | RecordRow
      | undefined;
    return row ? rowToSession(row) : null;
  }

  async list(scope: RegistryScope, query: SessionQuery, now: number): Promise<StoredSession[]> {
    this.checkOpen();
    const built = listSql(scope, query, now);
    if (!built) return [];
    let statement = this.lists.get(built.shape);
    if (!statement) {
      statement = this.db.prepare(built.sql);
      this.lists.set(built.shape, statement);
    }
    return (statement.all(built.params) as RecordRow[]).map(rowToSession);
  }

  async remove(tenant: string, id: string): Promise<boolean> {
    this.checkOpen();
    return this.removeTransaction.immediate(tenant, id);
  }

  async countOwned(tenant: string, owner: string, statuses: SessionStatus[]): Promise<number> {
    this.checkOpen();
    statuses = [...new Set(statuses)];
    if (statuses.length === 0) return 0;
    let statement = this.ownedCounts.get(statuses.length);
    if (!statement) {
      statement = this.db
        .prepare(
          `SELECT COUNT(*) FROM transcript_sessions
           WHERE tenant = ? AND owner = ? AND status IN (${statuses.map(() => '?').join(', ')})`,
        )
        .pluck();
      this.ownedCounts.set(statuses.length, statement);
    }
    return statement.get(tenant, owner, ...statuses) as number;
  }

  async forksOf(tenant: string, id: string): Promise<StoredSession[]> {
    this.checkOpen();
    return this.statements.forks.all(tenant, id).map(rowToSession);
  }

  async dailyUsage(scope: RegistryScope, fromDay: string, toDay: string): Promise<DailyUsage[]> {
    this.checkOpen();
    return this.daily.read(scope, fromDay, toDay);
  }

  async countByStatus(scope: RegistryScope, now: number): Promise<StatusCounts> {
    this.checkOpen();
    const row =
      scope.owner === undefined
        ? this.statements.counts.get({ tenant: scope.tenant, now })
        : this.statements.countsOfOwner.get({ tenant: scope.tenant, owner: scope.owner, now });
    return {
      byStatus: {
        active: row?.active ?? 0,
        archived: row?.archived ?? 0,
        expired: row?.expired ?? 0,
        failed: row?.failed ?? 0,
      },
      dueToExpire: row?.due_to_expire ?? 0,
      dueToPurge: row?.due_to_purge ?? 0,
    };
  }

  async expireDue(now: number, limit: number): Promise<SweptSession[]> {
    this.checkOpen();
    if (limit <= 0) return [];
    return this.expireTransaction.immediate(now, limit);
  }

  async purgeDue(now: number, limit: number): Promise<SweptSession[]> {
    this.checkOpen();
    if (limit <= 0) return [];
    return this.purgeTransaction.immediate(now, limit);
  }
}
