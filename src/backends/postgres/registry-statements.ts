import type { SessionQuery, SessionStatus } from '../../core/session-record.js';
import type { SessionPatch } from '../registry.js';
import { prepared, quoteIdentifier, type Statement } from './sql.js';

/** The record columns every registry read returns, plus the usage state. */
const RECORD_COLUMNS = `session_id, tenant, owner, title, tags, metadata, status, created_at,
  last_active_at, expires_at, expired_at, purge_at, extended_until, fork_parent_id,
  fork_message_uuid, expiry_overrides, limit_overrides, record_version, usage_state`;

/** A registered session row as the registry statements return it (bigints as decimal text). */
export interface RecordRow {
  session_id: string;
  tenant: string;
  owner: string;
  title: string | null;
  tags: string[];
  metadata: string;
  status: SessionStatus;
  created_at: string;
  last_active_at: string;
  expires_at: string | null;
  expired_at: string | null;
  purge_at: string | null;
  extended_until: string | null;
  fork_parent_id: string | null;
  fork_message_uuid: string | null;
  expiry_overrides: string;
  limit_overrides: string;
  record_version: string;
  usage_state: string | null;
}

/** The columns a patch field writes, and how its value is sent. */
const PATCH_COLUMNS: ReadonlyArray<{
  field: keyof SessionPatch;
  columns: Array<{ name: string; type: string }>;
}> = [
  {
    field: 'title',
    columns: [
      { name: 'title', type: 'text' },
      { name: 'title_lower', type: 'text' },
    ],
  },
  { field: 'tags', columns: [{ name: 'tags', type: 'text[]' }] },
  { field: 'metadata', columns: [{ name: 'metadata', type: 'text' }] },
  { field: 'status', columns: [{ name: 'status', type: 'text' }] },
  { field: 'lastActiveAt', columns: [{ name: 'last_active_at', type: 'bigint' }] },
  { field: 'expiresAt', columns: [{ name: 'expires_at', type: 'bigint' }] },
  { field: 'expiredAt', columns: [{ name: 'expired_at', type: 'bigint' }] },
  { field: 'purgeAt', columns: [{ name: 'purge_at', type: 'bigint' }] },
  { field: 'extendedUntil', columns: [{ name: 'extended_until', type: 'bigint' }] },
  { field: 'expiry', columns: [{ name: 'expiry_overrides', type: 'text' }] },
  { field: 'limits', columns: [{ name: 'limit_overrides', type: 'text' }] },
];

/** The parameter values of one patch field's columns, in PATCH_COLUMNS order. */
function patchValues(field: keyof SessionPatch, patch: SessionPatch): unknown[] {
  switch (field) {
    case 'title':
      return [patch.title ?? null, patch.title?.toLowerCase() ?? null];
    case 'metadata':
    case 'expiry':
    case 'limits':
      return [JSON.stringify(patch[field])];
    default:
      return [patch[field]];
  }
}

/** What a listing or count is narrowed to, after the scope and the query's owner are merged. */
export interface ListFilter {
  tenant: string;
  owner?: string;
}

/**
 * The SQL text of a listing and its parameters. One text per combination of filters, so each
 * shape is prepared once per connection; the values are always parameters.
 */
function listSql(
  sessions: string,
  filter: ListFilter,
  query: SessionQuery,
  now: number,
): { text: string; values: unknown[] } {
  const values: unknown[] = [];
  const param = (value: unknown, type: string): string => {
    values.push(value);
    return `$${values.length}::${type}`;
  };
  const where = [`tenant = ${param(filter.tenant, 'text')}`];
  if (filter.owner !== undefined) where.push(`owner = ${param(filter.owner, 'text')}`);
  if (query.status !== undefined) where.push(statusSql(query.status, () => param(now, 'bigint')));
  if (query.tag !== undefined) where.push(`${param(query.tag, 'text')} = ANY (tags)`);
  if (query.titleContains !== undefined) {
    // The lowered title was stored by JavaScript's toLowerCase(), so this is exactly
    // `title.toLowerCase().includes(text.toLowerCase())`, as matchesQuery() reads it.
    const text = param(query.titleContains.toLowerCase(), 'text');
    where.push(`strpos(coalesce(title_lower, ''), ${text}) > 0`);
  }
  if (query.createdFrom !== undefined) {
    where.push(`created_at >= ${param(query.createdFrom, 'bigint')}`);
  }
  if (query.createdTo !== undefined) where.push(`created_at < ${param(query.createdTo, 'bigint')}`);
  if (query.activeFrom !== undefined) {
    where.push(`last_active_at >= ${param(query.activeFrom, 'bigint')}`);
  }
  if (query.activeTo !== undefined) {
    where.push(`last_active_at < ${param(query.activeTo, 'bigint')}`);
  }
  if (query.cursor !== undefined) {
    // A row comparison the listing indexes answer directly: the page starts right after it.
    where.push(
      `(created_at, session_id) < (${param(query.cursor.createdAt, 'bigint')}, ${param(query.cursor.id, 'text')})`,
    );
  }
  const limit = param(query.limit + 1, 'int');
  return {
    text: `SELECT ${RECORD_COLUMNS} FROM ${sessions}
      WHERE ${where.join(' AND ')}
      ORDER BY created_at DESC, session_id DESC LIMIT ${limit}`,
    values,
  };
}

/** The effective-status filter: a live session past its deadline reads as expired. */
function statusSql(statuses: readonly SessionStatus[], now: () => string): string {
  const wanted = new Set(statuses);
  const any: string[] = [];
  let at: string | undefined;
  const nowParam = () => {
    at ??= now();
    return at;
  };
  for (const live of ['active', 'failed'] as const) {
    if (!wanted.has(live)) continue;
    any.push(`(status = '${live}' AND (expires_at IS NULL OR expires_at > ${nowParam()}))`);
  }
  if (wanted.has('expired')) {
    any.push(
      `status = 'expired' OR (status IN ('active', 'failed') AND expires_at <= ${nowParam()})`,
    );
  }
  if (wanted.has('archived')) any.push(`status = 'archived'`);
  return any.length === 0 ? 'false' : `(${any.join(' OR ')})`;
}

/**
 * Run first in the sweeper's transactions. Its queue queries must walk their partial index in
 * deadline order and stop after `limit` rows. On a table filled faster than autovacuum analyzes
 * it, the planner takes the default selectivity of `status = 'active'` and believes a few hundred
 * rows are due, so it reads every due row through a bitmap and sorts them: 100,000 rows for each
 * batch of 1,000. Ruling out those two plans keeps a batch at its cost whatever the statistics.
 */
export const QUEUE_PLAN = 'SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off';

/**
 * Undoes QUEUE_PLAN for the rest of the transaction: the purge's deletes by id need bitmap scans
 * (without statistics, a plain index scan looks dearer to the planner than reading the table).
 */
export const USUAL_PLAN = 'SET LOCAL enable_bitmapscan = on; SET LOCAL enable_sort = on';

/** Every statement the registry runs, for one schema. */
export class RegistryStatements {
  readonly sessions: string;
  readonly entries: string;
  readonly daily: string;
  private readonly updates = new Map<string, Statement>();

  /** Registers a session (see PostgresRegistry.insert); no row back = already registered. */
  readonly insert: Statement;
  /** The same, replacing the usage state of an adopted transcript and bumping its version. */
  readonly insertWithUsage: Statement;
  readonly get: Statement;
  readonly lockForRemove: Statement;
  readonly countOwned: Statement;
  readonly forksOf: Statement;
  readonly dailyUsage: Statement;
  readonly dailyUsageOfOwner: Statement;
  readonly countByStatus: Statement;
  readonly countByStatusOfOwner: Statement;
  readonly expireDue: Statement;
  readonly lockDueForPurge: Statement;
  readonly purge: Statement;

  constructor(schema: string) {
    const s = quoteIdentifier(schema);
    const sessions = `${s}.transcript_sessions`;
    const entries = `${s}.transcript_entries`;
    const daily = `${s}.usage_daily`;
    this.sessions = sessions;
    this.entries = entries;
    this.daily = daily;

    const insert = (withUsage: boolean) =>
      prepared(`
      INSERT INTO ${sessions} AS t (project_key, session_id, version, tenant, owner, title,
        title_lower, tags, metadata, status, created_at, last_active_at, expires_at, expired_at,
        purge_at, extended_until, fork_parent_id, fork_message_uuid, expiry_overrides,
        limit_overrides, record_version, usage_state)
      VALUES ($1, $2, 0, $3, $4, $5, $6, $7::text[], $8, $9, $10::bigint, $11::bigint,
        $12::bigint, $13::bigint, $14::bigint, $15::bigint, $16, $17, $18, $19, 1, $20)
      ON CONFLICT (project_key, session_id) DO UPDATE SET
        tenant = excluded.tenant, owner = excluded.owner, title = excluded.title,
        title_lower = excluded.title_lower, tags = excluded.tags, metadata = excluded.metadata,
        status = excluded.status, created_at = excluded.created_at,
        last_active_at = excluded.last_active_at, expires_at = excluded.expires_at,
        expired_at = excluded.expired_at, purge_at = excluded.purge_at,
        extended_until = excluded.extended_until, fork_parent_id = excluded.fork_parent_id,
        fork_message_uuid = excluded.fork_message_uuid,
        expiry_overrides = excluded.expiry_overrides, limit_overrides = excluded.limit_overrides,
        record_version = 1${
          withUsage
            ? `,
        -- A new version makes every process's cached fold state stale: its next append fails
        -- the version check, reads this state and folds onto it.
        usage_state = excluded.usage_state, version = DEFAULT`
            : ''
        }
      WHERE t.tenant IS NULL
      RETURNING t.id, t.version, t.summary, ${RECORD_COLUMNS}`);
    this.insert = insert(false);
    this.insertWithUsage = insert(true);

    this.get = prepared(`
      SELECT ${RECORD_COLUMNS} FROM ${sessions}
      WHERE project_key = $1 AND session_id = $2 AND tenant IS NOT NULL`);

    this.lockForRemove = prepared(`
      SELECT id FROM ${sessions}
      WHERE project_key = $1 AND session_id = $2 AND tenant IS NOT NULL FOR UPDATE`);

    this.countOwned = prepared(`
      SELECT count(*) AS n FROM ${sessions}
      WHERE tenant = $1 AND owner = $2 AND status = ANY ($3::text[])`);

    this.forksOf = prepared(`
      SELECT ${RECORD_COLUMNS} FROM ${sessions}
      WHERE tenant = $1 AND fork_parent_id = $2
      ORDER BY created_at DESC, session_id DESC`);

    const dailyUsage = (ofOwner: boolean) =>
      prepared(`
      SELECT owner, day, cost_nanos, turns, input_tokens, output_tokens, cache_read_tokens,
        cache_creation_tokens
      FROM ${daily}
      WHERE tenant = $1 AND day >= $2 AND day <= $3${ofOwner ? ' AND owner = $4' : ''}`);
    this.dailyUsage = dailyUsage(false);
    this.dailyUsageOfOwner = dailyUsage(true);

    const countByStatus = (ofOwner: boolean) =>
      prepared(`
      SELECT
        count(*) FILTER (WHERE status = 'active' AND (expires_at IS NULL OR expires_at > $2))
          AS active,
        count(*) FILTER (WHERE status = 'archived') AS archived,
        count(*) FILTER (WHERE status = 'expired'
          OR (status IN ('active', 'failed') AND expires_at <= $2)) AS expired,
        count(*) FILTER (WHERE status = 'failed' AND (expires_at IS NULL OR expires_at > $2))
          AS failed,
        count(*) FILTER (WHERE status IN ('active', 'failed') AND expires_at <= $2)
          AS due_to_expire,
        count(*) FILTER (WHERE status IN ('active', 'failed', 'expired') AND purge_at <= $2)
          AS due_to_purge
      FROM ${sessions}
      WHERE tenant = $1${ofOwner ? ' AND owner = $3' : ''}`);
    this.countByStatus = countByStatus(false);
    this.countByStatusOfOwner = countByStatus(true);

    // One statement: the rows are picked and locked by the subquery (SKIP LOCKED passes over
    // those another sweeper holds) and changed by the same statement, so of several sweepers
    // each session is expired, and counted, by exactly one. The lock returns the row version it
    // locked, which nobody else can replace before this statement does: the update reaches it
    // by its ctid, without a second trip through the primary key.
    this.expireDue = prepared(`
      WITH due AS MATERIALIZED (
        SELECT ctid FROM ${sessions}
        WHERE status IN ('active', 'failed') AND tenant IS NOT NULL AND expires_at <= $1
        ORDER BY expires_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED
      )
      UPDATE ${sessions} AS t SET
        status = 'expired',
        expired_at = t.expires_at,
        record_version = t.record_version + 1
      FROM due WHERE t.ctid = due.ctid
      RETURNING t.tenant, t.session_id AS id`);

    // A purge locks first and deletes in a later statement of the same transaction, as the
    // store's delete does: that statement's snapshot then holds every entry committed for the
    // sessions, and no writer can add one until the commit.
    this.lockDueForPurge = prepared(`
      SELECT id AS ref, tenant, session_id AS id FROM ${sessions}
      WHERE status IN ('active', 'failed', 'expired') AND purge_at <= $1
      ORDER BY purge_at
      LIMIT $2
      FOR UPDATE SKIP LOCKED`);

    this.purge = prepared(`
      WITH entries AS (DELETE FROM ${entries} WHERE session_ref = ANY ($1::bigint[]))
      DELETE FROM ${sessions} WHERE id = ANY ($1::bigint[])`);
  }

  /**
   * A compare-and-set update of the fields `patch` holds, on the record version. The statement
   * is one per set of fields; appends never touch the columns it checks or writes.
   *   $1 projectKey, $2 sessionId, $3 expected record version, $4… the fields' values
   */
  update(patch: SessionPatch): { statement: Statement; values: unknown[] } {
    const fields = PATCH_COLUMNS.filter(({ field }) => patch[field] !== undefined);
    const values: unknown[] = [];
    const sets: string[] = [];
    for (const { field, columns } of fields) {
      const fieldValues = patchValues(field, patch);
      columns.forEach(({ name, type }, i) => {
        values.push(fieldValues[i]);
        sets.push(`${name} = $${3 + values.length}::${type}`);
      });
    }
    const key = fields.map(({ field }) => field).join(',');
    let statement = this.updates.get(key);
    if (!statement) {
      statement = prepared(`
        UPDATE ${this.sessions} SET ${[...sets, 'record_version = record_version + 1'].join(', ')}
        WHERE project_key = $1 AND session_id = $2 AND tenant IS NOT NULL
          AND record_version = $3::bigint
        RETURNING ${RECORD_COLUMNS}`);
      this.updates.set(key, statement);
    }
    return { statement, values };
  }

  /** One listing page (see SessionRegistry.list). */
  list(
    filter: ListFilter,
    query: SessionQuery,
    now: number,
  ): { statement: Statement; values: unknown[] } {
    const { text, values } = listSql(this.sessions, filter, query, now);
    return { statement: prepared(text), values };
  }
}
