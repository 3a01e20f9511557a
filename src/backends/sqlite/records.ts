import type { SessionStatus } from '../../core/session-record.js';
import { emptyUsageState } from '../../core/usage.js';
import { decodeUsageState } from '../../core/usage-codec.js';
import type { NewSession, SessionPatch, StoredSession } from '../registry.js';

/**
 * How a registry record maps onto the record columns of `transcript_sessions` (migration 3):
 * the columns a read selects, the row it gets back, and the values an insert or update writes.
 */

/** Every record column, as a SELECT or RETURNING list. */
export const RECORD_COLUMNS = `session_id, tenant, owner, title, tags, metadata, status, created_at,
  last_active_at, expires_at, expired_at, purge_at, extended_until, fork_parent_id,
  fork_message_uuid, expiry_overrides, limit_overrides, record_version, usage_state`;

export interface RecordRow {
  session_id: string;
  tenant: string;
  owner: string;
  title: string | null;
  tags: string;
  metadata: string;
  status: SessionStatus;
  created_at: number;
  last_active_at: number;
  expires_at: number | null;
  expired_at: number | null;
  purge_at: number | null;
  extended_until: number | null;
  fork_parent_id: string | null;
  fork_message_uuid: string | null;
  expiry_overrides: string;
  limit_overrides: string;
  record_version: number;
  usage_state: string | null;
}

export function rowToSession(row: RecordRow): StoredSession {
  return {
    id: row.session_id,
    tenant: row.tenant,
    owner: row.owner,
    title: row.title,
    tags: JSON.parse(row.tags) as string[],
    metadata: JSON.parse(row.metadata) as Record<string, unknown>,
    status: row.status,
    createdAt: row.created_at,
    lastActiveAt: row.last_active_at,
    expiresAt: row.expires_at,
    expiredAt: row.expired_at,
    purgeAt: row.purge_at,
    extendedUntil: row.extended_until,
    forkedFrom:
      row.fork_parent_id === null
        ? null
        : { sessionId: row.fork_parent_id, messageUuid: row.fork_message_uuid },
    expiry: JSON.parse(row.expiry_overrides),
    limits: JSON.parse(row.limit_overrides),
    usage: row.usage_state === null ? emptyUsageState() : decodeUsageState(row.usage_state),
    version: row.record_version,
  };
}

/** The named parameters an insert (or an adoption of an existing row) binds. */
export function recordParams(session: NewSession) {
  return {
    tenant: session.tenant,
    owner: session.owner,
    title: session.title,
    tags: JSON.stringify(session.tags),
    metadata: JSON.stringify(session.metadata),
    status: session.status,
    created_at: session.createdAt,
    last_active_at: session.lastActiveAt,
    expires_at: session.expiresAt,
    expired_at: session.expiredAt,
    purge_at: session.purgeAt,
    extended_until: session.extendedUntil,
    fork_parent_id: session.forkedFrom?.sessionId ?? null,
    fork_message_uuid: session.forkedFrom?.messageUuid ?? null,
    expiry_overrides: JSON.stringify(session.expiry),
    limit_overrides: JSON.stringify(session.limits),
  };
}

/** Each patchable field's column, and how its value is stored. */
const PATCH_COLUMNS: {
  [K in keyof Required<SessionPatch>]: [string, (v: SessionPatch[K]) => unknown];
} = {
  title: ['title', (v) => v],
  tags: ['tags', (v) => JSON.stringify(v)],
  metadata: ['metadata', (v) => JSON.stringify(v)],
  status: ['status', (v) => v],
  lastActiveAt: ['last_active_at', (v) => v],
  expiresAt: ['expires_at', (v) => v],
  expiredAt: ['expired_at', (v) => v],
  purgeAt: ['purge_at', (v) => v],
  extendedUntil: ['extended_until', (v) => v],
  expiry: ['expiry_overrides', (v) => JSON.stringify(v)],
  limits: ['limit_overrides', (v) => JSON.stringify(v)],
};

/**
 * The columns a patch sets, in a fixed order (so equal shapes share one prepared statement),
 * and their stored values. A field present with the value undefined is left alone.
 */
export function patchAssignments(patch: SessionPatch): { columns: string[]; values: unknown[] } {
  const columns: string[] = [];
  const values: unknown[] = [];
  for (const field of Object.keys(PATCH_COLUMNS) as Array<keyof SessionPatch>) {
    const value = patch[field];
    if (value === undefined) continue;
    const [column, store] = PATCH_COLUMNS[field] as [string, (v: unknown) => unknown];
    columns.push(column);
    values.push(store(value));
  }
  return { columns, values };
}
