import type { DailyUsage } from '../core/daily-usage.js';
import { SessionHubError } from '../core/errors.js';
import type { ExpiryOverrides } from '../core/expiry.js';
import type { LimitOverrides } from '../core/limits.js';
import type {
  ForkOrigin,
  ListableSession,
  SessionQuery,
  SessionStatus,
} from '../core/session-record.js';
import type { UsageState } from '../core/usage.js';

/**
 * A session as a backend stores it: the record fields, the usage fold's state, and the expiry
 * bookkeeping the sweeper reads. The hub turns it into the public SessionRecord.
 *
 * Records live beside their transcripts, under the transcript key (tenantProjectKey(tenant), id):
 * on the SQL backends the record is the transcript's session row, on Redis the session's meta
 * hash, so deleting one deletes the other and usage is folded in the same write as the entries.
 */
export interface StoredSession extends ListableSession {
  metadata: Record<string, unknown>;
  expiredAt: number | null;
  /** expiresAt (or the time of an explicit expire) plus the retention in force at the time. */
  purgeAt: number | null;
  /** The deadline an explicit extend() set, which outlasts the policy's deadlines. */
  extendedUntil: number | null;
  forkedFrom: ForkOrigin | null;
  expiry: ExpiryOverrides;
  limits: LimitOverrides;
  /** The usage fold's state, kept up to date by every main-transcript append. */
  usage: UsageState;
  /** Starts at 1 and grows by one on every record update (not on appends). */
  version: number;
}

export type NewSession = Omit<StoredSession, 'version' | 'usage'> & {
  /**
   * The usage state to start from. Omitted: an empty state, or what appends already folded when
   * the transcript was written before the record (a session adopted after the fact).
   */
  usage?: UsageState;
};

/** The record fields an update may change; usage belongs to appends alone. */
export type SessionPatch = Partial<
  Pick<
    StoredSession,
    | 'title'
    | 'tags'
    | 'metadata'
    | 'status'
    | 'lastActiveAt'
    | 'expiresAt'
    | 'expiredAt'
    | 'purgeAt'
    | 'extendedUntil'
    | 'expiry'
    | 'limits'
  >
>;

/** Who a listing or a count is narrowed to. */
export interface RegistryScope {
  tenant: string;
  owner?: string;
}

export interface StatusCounts {
  /** By status as of `now` (an active session past its deadline counts as expired). */
  byStatus: Record<SessionStatus, number>;
  /** Past their deadline, not yet marked expired by a sweep. */
  dueToExpire: number;
  /** Past their deadline and their retention (expired or not yet marked), not yet purged. */
  dueToPurge: number;
}

/**
 * The session registry of one backend. Every method is atomic on its own; the hub builds the
 * lifecycle (policies, ownership, limits) on top, with compare-and-set updates.
 */
export interface SessionRegistry {
  /**
   * Registers a session. Throws SESSION_EXISTS when the tenant already has a record with this id.
   * A transcript already stored under the session's key is adopted, not replaced.
   */
  insert(session: NewSession): Promise<StoredSession>;
  get(tenant: string, id: string): Promise<StoredSession | null>;
  /**
   * Applies `patch` if the record is still at `expectedVersion`, and returns it as written. Null
   * when the record is gone or has moved on (read it again and retry).
   */
  update(
    tenant: string,
    id: string,
    expectedVersion: number,
    patch: SessionPatch,
  ): Promise<StoredSession | null>;
  /**
   * One page in listing order (createdAt desc, id desc) after `query.cursor`: up to `query.limit
   * + 1` sessions, the extra one telling the caller that another page follows. Filters as
   * matchesQuery() does, with status read as of `now`.
   */
  list(scope: RegistryScope, query: SessionQuery, now: number): Promise<StoredSession[]>;
  /** Deletes the record, the transcript and every subagent transcript. False if none existed. */
  remove(tenant: string, id: string): Promise<boolean>;
  /** Sessions of an owner with one of `statuses` (stored status), for the per-owner limit. */
  countOwned(tenant: string, owner: string, statuses: SessionStatus[]): Promise<number>;
  /** Direct forks of a session, in listing order. */
  forksOf(tenant: string, id: string): Promise<StoredSession[]>;
  /** Daily figures per owner in [fromDay, toDay] (UTC `YYYY-MM-DD`, inclusive). */
  dailyUsage(scope: RegistryScope, fromDay: string, toDay: string): Promise<DailyUsage[]>;
  countByStatus(scope: RegistryScope, now: number): Promise<StatusCounts>;
  /**
   * Marks up to `limit` live (active or failed) sessions whose deadline is at or before `now` as
   * expired, as of their deadline. Returns the sessions this call changed: with several sweepers
   * at once, each session is reported by exactly one.
   */
  expireDue(now: number, limit: number): Promise<SweptSession[]>;
  /**
   * Removes, as remove() does, up to `limit` sessions whose purgeAt is at or before `now` and
   * that are expired, or active and long past their deadline (purgeAt is the deadline plus the
   * retention): a session due for both is deleted at once, never updated first. Returns how many
   * this call removed, each reported by exactly one caller.
   */
  purgeDue(now: number, limit: number): Promise<SweptSession[]>;
}

/** A session a sweep expired or purged. */
export interface SweptSession {
  tenant: string;
  id: string;
}

/**
 * The transcript projectKey of a tenant's sessions. The hub hands the SDK a store that uses it
 * whatever working directory the SDK derives its own key from, so tenants never share a key.
 */
export function tenantProjectKey(tenant: string): string {
  return `sessionhub-tenant:${tenant}`;
}

/** The error for registering an id the tenant already has. */
export function sessionExists(id: string): SessionHubError {
  return new SessionHubError(
    'SESSION_EXISTS',
    `A session with id ${id} already exists. Omit the id to get a new one, or use the existing session.`,
    { sessionId: id },
  );
}
