import type BetterSqlite3 from 'better-sqlite3';
import type { SessionQuery } from '../../core/session-record.js';
import type { RegistryScope } from '../registry.js';
import { RECORD_COLUMNS } from './records.js';

/**
 * Registry listings as SQL. The WHERE clause is built from the filters a query sets, so SQLite
 * plans each shape with the index it fits; statements are prepared once per shape.
 */

/** The status as of :now, as effectiveStatus() reads it. */
const EFFECTIVE_STATUS = `CASE WHEN status IN ('active', 'failed') AND expires_at <= @now
  THEN 'expired' ELSE status END`;

/**
 * The title filter calls back into JavaScript, so it is exactly matchesQuery's: Unicode case
 * folding by toLowerCase() (SQLite's lower() folds ASCII only) and a plain substring.
 */
export const TITLE_CONTAINS_FUNCTION = 'sessionhub_title_contains';

export function registerListFunctions(db: BetterSqlite3.Database): void {
  db.function(
    TITLE_CONTAINS_FUNCTION,
    { deterministic: true, varargs: false },
    (title: unknown, needle: unknown) =>
      (typeof title === 'string' ? title : '').toLowerCase().includes(String(needle).toLowerCase())
        ? 1
        : 0,
  );
}

export interface ListSql {
  /** Identifies the statement's shape, for the statement cache. */
  shape: string;
  sql: string;
  params: Record<string, unknown>;
}

/**
 * One page of `scope` filtered by `query`, in listing order, limit + 1 rows. Null when the
 * filters exclude everything (an owner filter other than the caller's own scope).
 */
export function listSql(scope: RegistryScope, query: SessionQuery, now: number): ListSql | null {
  if (scope.owner !== undefined && query.owner !== undefined && scope.owner !== query.owner) {
    return null;
  }
  const owner = scope.owner ?? query.owner;
  const where = ['tenant = @tenant'];
  const params: Record<string, unknown> = { tenant: scope.tenant, limit: query.limit + 1 };
  if (owner !== undefined) {
    where.push('owner = @owner');
    params.owner = owner;
  }
  if (query.status !== undefined) {
    // Deduplicated: at most four statuses, so a bounded number of statement shapes.
    const names = [...new Set(query.status)].map((status, i) => {
      params[`status${i}`] = status;
      return `@status${i}`;
    });
    where.push(`${EFFECTIVE_STATUS} IN (${names.join(', ')})`);
    params.now = now;
  }
  if (query.tag !== undefined) {
    where.push('EXISTS (SELECT 1 FROM json_each(tags) WHERE value = @tag)');
    params.tag = query.tag;
  }
  if (query.titleContains !== undefined) {
    where.push(`${TITLE_CONTAINS_FUNCTION}(title, @title)`);
    params.title = query.titleContains;
  }
  const ranges = [
    ['createdFrom', 'created_at >='],
    ['createdTo', 'created_at <'],
    ['activeFrom', 'last_active_at >='],
    ['activeTo', 'last_active_at <'],
  ] as const;
  for (const [field, test] of ranges) {
    if (query[field] === undefined) continue;
    where.push(`${test} @${field}`);
    params[field] = query[field];
  }
  if (query.cursor !== undefined) {
    // A row value comparison: SQLite seeks the listing index straight to the cursor.
    where.push('(created_at, session_id) < (@cursorCreatedAt, @cursorId)');
    params.cursorCreatedAt = query.cursor.createdAt;
    params.cursorId = query.cursor.id;
  }
  const sql = `SELECT ${RECORD_COLUMNS} FROM transcript_sessions
    WHERE ${where.join(' AND ')}
    ORDER BY created_at DESC, session_id DESC
    LIMIT @limit`;
  return { shape: where.join(' AND '), sql, params };
}
