import type { Pool } from 'pg';
import { type DailyUsage, fromCostNanos } from '../../core/daily-usage.js';
import { closedError } from '../../core/errors.js';
import type { SessionQuery, SessionStatus } from '../../core/session-record.js';
import { emptyUsageState } from '../../core/usage.js';
import { decodeUsageState, encodeUsageState } from '../../core/usage-codec.js';
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
import {
  QUEUE_PLAN,
  type RecordRow,
  RegistryStatements,
  USUAL_PLAN,
} from './registry-statements.js';
import { withTransaction } from './sql.js';
import type { SessionStateRow } from './statements.js';
import type { SessionRowCache } from './transcript-store.js';

function numberOrNull(value: string | null): number | null {
  return value === null ? null : Number(value);
}

/** A record row as the registry hands it out. */
function storedSession(row: RecordRow): StoredSession {
  return {
    id: row.session_id,
    tenant: row.tenant,
    owner: row.owner,
    title: row.title,
    tags: row.tags,
    metadata: JSON.parse(row.metadata) as Record<string, unknown>,
    status: row.status,
    createdAt: Number(row.created_at),
    lastActiveAt: Number(row.last_active_at),
    expiresAt: numberOrNull(row.expires_at),
    expiredAt: numberOrNull(row.expired_at),
    purgeAt: numberOrNull(row.purge_at),
    extendedUntil: numberOrNull(row.extended_until),
    forkedFrom:
      row.fork_parent_id === null
        ? null
        : { sessionId: row.fork_parent_id, messageUuid: row.fork_message_uuid },
    expiry: JSON.parse(row.expiry_overrides),
    limits: JSON.parse(row.limit_overrides),
    usage: row.usage_state === null ? emptyUsageState() : decodeUsageState(row.usage_state),
    version: Number(row.record_version),
  };
}

/** The parameters of the insert statements, $1 to $20. */
function insertParameters(session: NewSession): unknown[] {
  return [
    tenantProjectKey(session.tenant),
    session.id,
    session.tenant,
    session.owner,
    session.title,
    session.title?.toLowerCase() ?? null,
    session.tags,
    JSON.stringify(session.metadata),
    session.status,
    session.createdAt,
    session.lastActiveAt,
    session.expiresAt,
    session.expiredAt,
    session.purgeAt,
    session.extendedUntil,
    session.forkedFrom?.sessionId ?? null,
    session.forkedFrom?.messageUuid ?? null,
    JSON.stringify(session.expiry),
    JSON.stringify(session.limits),
    session.usage === undefined ? null : encodeUsageState(session.usage),
  ];
}

/**
 * Session records in PostgreSQL, as columns of the transcript's session row (see migration 3):
 * registering a session fills in the columns of its row, creating the row if no transcript has
 * been written yet, and deleting the transcript deletes the record. Every operation is one
 * statement except remove and purgeDue, which lock their rows before deleting, as the store does;
 * the sweeper's two run in a transaction that pins their plan (see QUEUE_PLAN).
 */
export class PostgresRegistry implements SessionRegistry {
  private readonly pool: Pool;
  private readonly sql: RegistryStatements;
  private readonly cache: SessionRowCache | undefined;
  private closed = false;

  constructor(options: { pool: Pool; schema: string; cache?: SessionRowCache }) {
    this.pool = options.pool;
    this.sql = new RegistryStatements(options.schema);
    this.cache = options.cache;
  }

  /** Refuses new work; the pool belongs to the backend. */
  close(): void {
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed) throw closedError('PostgreSQL session registry');
  }

  async insert(session: NewSession): Promise<StoredSession> {
    this.assertOpen();
    const statement = session.usage === undefined ? this.sql.insert : this.sql.insertWithUsage;
    const { rows } = await this.pool.query<RecordRow & SessionStateRow>({
      ...statement,
      values: insertParameters(session),
    });
    const row = rows[0];
    if (!row) throw sessionExists(session.id);
    // The row as written: the store's next append to it needs no read first.
    this.cache?.remember(
      { projectKey: tenantProjectKey(session.tenant), sessionId: session.id },
      row,
    );
    return storedSession(row);
  }

  async get(tenant: string, id: string): Promise<StoredSession | null> {
    this.assertOpen();
    const { rows } = await this.pool.query<RecordRow>({
      ...this.sql.get,
      values: [tenantProjectKey(tenant), id],
    });
    const row = rows[0];
    return row ? storedSession(row) : null;
  }

  async update(
    tenant: string,
    id: string,
    expectedVersion: number,
    patch: SessionPatch,
  ): Promise<StoredSession | null> {
    this.assertOpen();
    const { statement, values } = this.sql.update(patch);
    const { rows } = await this.pool.query<RecordRow>({
      ...statement,
      values: [tenantProjectKey(tenant), id, expectedVersion, ...values],
    });
    const row = rows[0];
    return row ? storedSession(row) : null;
  }

  async list(scope: RegistryScope, query: SessionQuery, now: number): Promise<StoredSession[]> {
    this.assertOpen();
    // Two different owners (the caller's and the query's) match nothing.
    if (scope.owner !== undefined && query.owner !== undefined && scope.owner !== query.owner) {
      return [];
    }
    const owner = scope.owner ?? query.owner;
    const filter = owner === undefined ? { tenant: scope.tenant } : { tenant: scope.tenant, owner };
    const { statement, values } = this.sql.list(filter, query, now);
    const { rows } = await this.pool.query<RecordRow>({ ...statement, values });
    return rows.map(storedSession);
  }

  async remove(tenant: string, id: string): Promise<boolean> {
    this.assertOpen();
    const ref = { projectKey: tenantProjectKey(tenant), sessionId: id };
    const removed = await withTransaction(this.pool, async (client) => {
      const { rows } = await client.query<{ id: string }>({
        ...this.sql.lockForRemove,
        values: [ref.projectKey, ref.sessionId],
      });
      const found = rows[0];
      if (!found) return false;
      await client.query({ ...this.sql.purge, values: [[found.id]] });
      return true;
    });
    if (removed) this.cache?.forget(ref);
    return removed;
  }

  async countOwned(tenant: string, owner: string, statuses: SessionStatus[]): Promise<number> {
    this.assertOpen();
    const { rows } = await this.pool.query<{ n: string }>({
      ...this.sql.countOwned,
      values: [tenant, owner, statuses],
    });
    return Number(rows[0]?.n ?? 0);
  }

  async forksOf(tenant: string, id: string): Promise<StoredSession[]> {
    this.assertOpen();
    const { rows } = await this.pool.query<RecordRow>({
      ...this.sql.forksOf,
      values: [tenant, id],
    });
    return rows.map(storedSession);
  }

  async dailyUsage(scope: RegistryScope, fromDay: string, toDay: string): Promise<DailyUsage[]> {
    this.assertOpen();
    const { rows } = await this.pool.query<DailyRow>(
      scope.owner === undefined
        ? { ...this.sql.dailyUsage, values: [scope.tenant, fromDay, toDay] }
        : { ...this.sql.dailyUsageOfOwner, values: [scope.tenant, fromDay, toDay, scope.owner] },
    );
    // Sorted here, by JavaScript's string order, as every backend sorts them.
    return rows.map(dailyUsage).sort(byDayThenOwner);
  }

  async countByStatus(scope: RegistryScope, now: number): Promise<StatusCounts> {
    this.assertOpen();
    const { rows } = await this.pool.query<Record<string, string>>(
      scope.owner === undefined
        ? { ...this.sql.countByStatus, values: [scope.tenant, now] }
        : { ...this.sql.countByStatusOfOwner, values: [scope.tenant, now, scope.owner] },
    );
    const row = rows[0] ?? {};
    const n = (column: string) => Number(row[column] ?? 0);
    return {
      byStatus: {
        active: n('active'),
        archived: n('archived'),
        expired: n('expired'),
        failed: n('failed'),
      },
      dueToExpire: n('due_to_expire'),
      dueToPurge: n('due_to_purge'),
    };
  }

  async expireDue(now: number, limit: number): Promise<SweptSession[]> {
    this.assertOpen();
    if (limit <= 0) return [];
    return withTransaction(this.pool, async (client) => {
      await client.query(QUEUE_PLAN);
      const { rows } = await client.query<SweptSession>({
        ...this.sql.expireDue,
        values: [now, limit],
      });
      return rows;
    });
  }

  async purgeDue(now: number, limit: number): Promise<SweptSession[]> {
    this.assertOpen();
    if (limit <= 0) return [];
    return withTransaction(this.pool, async (client) => {
      await client.query(QUEUE_PLAN);
      const { rows } = await client.query<{ ref: string; tenant: string; id: string }>({
        ...this.sql.lockDueForPurge,
        values: [now, limit],
      });
      if (rows.length === 0) return [];
      await client.query(USUAL_PLAN);
      // The rows are locked until the commit: the delete takes exactly these.
      await client.query({ ...this.sql.purge, values: [rows.map((row) => row.ref)] });
      return rows.map(({ tenant, id }) => ({ tenant, id }));
    });
  }
}

interface DailyRow {
  owner: string;
  day: string;
  cost_nanos: string;
  turns: string;
  input_tokens: string;
  output_tokens: string;
  cache_read_tokens: string;
  cache_creation_tokens: string;
}

function dailyUsage(row: DailyRow): DailyUsage {
  return {
    owner: row.owner,
    day: row.day,
    costUsd: fromCostNanos(Number(row.cost_nanos)),
    tokens: {
      inputTokens: Number(row.input_tokens),
      outputTokens: Number(row.output_tokens),
      cacheReadInputTokens: Number(row.cache_read_tokens),
      cacheCreationInputTokens: Number(row.cache_creation_tokens),
    },
    turns: Number(row.turns),
  };
}

function byDayThenOwner(a: DailyUsage, b: DailyUsage): number {
  if (a.day !== b.day) return a.day < b.day ? -1 : 1;
  return a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0;
}
