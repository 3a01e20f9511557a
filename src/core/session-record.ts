import { z } from 'zod';
import { SessionHubError } from './errors.js';
import type { ExpiryOverrides, ExpiryPolicy } from './expiry.js';
import type { LimitOverrides, Limits } from './limits.js';
import type { SessionUsage } from './usage.js';

/**
 * What sessionhub knows about a session beside its transcript. The id is the SDK's session id.
 * Every backend stores records with the same fields; this module holds their shape, the
 * validation of what callers may set, and the listing order and cursors all backends share.
 */
export type SessionStatus = 'active' | 'archived' | 'expired' | 'failed';
export const SESSION_STATUSES: readonly SessionStatus[] = [
  'active',
  'archived',
  'expired',
  'failed',
];

export interface SessionRecord {
  id: string;
  tenant: string;
  owner: string;
  title: string | null;
  tags: string[];
  metadata: Record<string, unknown>;
  /** As of the time it was read: an active session past its deadline reads as expired. */
  status: SessionStatus;
  /** Epoch ms. */
  createdAt: number;
  lastActiveAt: number;
  /** When it expires or expired (null: never, e.g. archived). */
  expiresAt: number | null;
  /** When it expired, once it has. */
  expiredAt: number | null;
  /** When the sweeper deletes it for good (null: not scheduled). */
  purgeAt: number | null;
  /** A fork's origin: the parent session and the message it was cut at (null: the end). */
  forkedFrom: ForkOrigin | null;
  usage: SessionUsage;
  /** The policies in force for this session: the hub's, with tenant and session overrides. */
  expiry: ExpiryPolicy;
  limits: Limits;
  /** What this session sets itself, on top of the hub's and tenant's policies. */
  overrides: { expiry: ExpiryOverrides; limits: LimitOverrides };
  /** Grows by one on every change to the record: the basis for compare-and-set updates. */
  version: number;
}

export interface ForkOrigin {
  sessionId: string;
  messageUuid: string | null;
}

/** The fields listing and filtering read; both records and stored sessions have them. */
export interface ListableSession {
  id: string;
  tenant: string;
  owner: string;
  title: string | null;
  tags: string[];
  status: SessionStatus;
  createdAt: number;
  lastActiveAt: number;
  expiresAt: number | null;
}

/**
 * The statuses whose deadline runs. A failed session (its last turn failed) is still live: it
 * takes the next turn, and it expires and is purged like an active one.
 */
export const LIVE_STATUSES: readonly SessionStatus[] = ['active', 'failed'];

export function isLive(status: SessionStatus): boolean {
  return status === 'active' || status === 'failed';
}

/** Live and past its deadline: the next sweep marks it expired. */
export function isDueToExpire(
  session: Pick<ListableSession, 'status' | 'expiresAt'>,
  now: number,
): boolean {
  return isLive(session.status) && session.expiresAt !== null && session.expiresAt <= now;
}

/**
 * Past its retention (`purgeAt` is the deadline plus the retention), whether or not a sweep has
 * marked it expired yet: the next sweep deletes it.
 */
export function isDueToPurge(
  session: { status: SessionStatus; purgeAt: number | null },
  now: number,
): boolean {
  return (
    (session.status === 'expired' || isLive(session.status)) &&
    session.purgeAt !== null &&
    session.purgeAt <= now
  );
}

/**
 * The status as of `now`: a live session whose deadline has passed is expired, whether or not
 * the sweeper has been by to mark it.
 */
export function effectiveStatus(
  session: Pick<ListableSession, 'status' | 'expiresAt'>,
  now: number,
): SessionStatus {
  return isDueToExpire(session, now) ? 'expired' : session.status;
}

export const MAX_TITLE_LENGTH = 200;
export const MAX_TAGS = 32;
export const MAX_TAG_LENGTH = 64;
export const MAX_METADATA_BYTES = 16 * 1024;

const plainText = (max: number) =>
  z
    .string()
    .max(max, `must be at most ${max} characters`)
    .refine((value) => value.isWellFormed() && !value.includes('\u0000'), 'must be plain text');

export const titleSchema = plainText(MAX_TITLE_LENGTH).nullable();

export const tagSchema = plainText(MAX_TAG_LENGTH)
  .min(1, 'must not be empty')
  .regex(/^[^\s,]+$/, 'must not contain spaces or commas');

export const tagsSchema = z.array(tagSchema).max(MAX_TAGS, `must be at most ${MAX_TAGS} tags`);

export const metadataSchema = z
  .record(z.string(), z.unknown())
  .refine(
    (value) => new TextEncoder().encode(JSON.stringify(value)).length <= MAX_METADATA_BYTES,
    `must be at most ${MAX_METADATA_BYTES} bytes of JSON`,
  );

/** Validates caller input with `schema`, turning problems into one INVALID_INPUT error. */
export function parseInput<T>(schema: z.ZodType<T>, input: unknown, what: string): T {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => `${[what, ...i.path].join('.')} ${i.message}`);
  throw new SessionHubError('INVALID_INPUT', `Invalid ${what}: ${problems.join('; ')}.`, {
    problems,
  });
}

/** A listing's filters. Every filter narrows; none given lists everything visible. */
export interface SessionQuery {
  owner?: string;
  status?: SessionStatus[];
  tag?: string;
  /** Case-insensitive substring of the title. */
  titleContains?: string;
  createdFrom?: number;
  createdTo?: number;
  activeFrom?: number;
  activeTo?: number;
  /** Page size, 1 to 200; default 50. */
  limit: number;
  /** Where the previous page ended (`nextCursor` of that page). */
  cursor?: ListCursor;
}

/** Listings run newest first by creation time, ties broken by id: a stable, total order. */
export interface ListCursor {
  createdAt: number;
  id: string;
}

export const epochMs = z.number().int('must be whole epoch milliseconds').nonnegative();

const querySchema = z.strictObject({
  owner: plainText(200).min(1).optional(),
  status: z
    .union([
      z.enum(SESSION_STATUSES as [SessionStatus, ...SessionStatus[]]),
      z.array(z.enum(SESSION_STATUSES as [SessionStatus, ...SessionStatus[]])).min(1),
    ])
    .transform((value) => (Array.isArray(value) ? value : [value]))
    .optional(),
  tag: tagSchema.optional(),
  titleContains: plainText(MAX_TITLE_LENGTH).min(1).optional(),
  createdFrom: epochMs.optional(),
  createdTo: epochMs.optional(),
  activeFrom: epochMs.optional(),
  activeTo: epochMs.optional(),
  limit: z.number().int().min(1).max(200).default(50),
  cursor: z.string().min(1).optional(),
});

/** Validates a listing request from outside; the cursor string is decoded too. */
export function parseSessionQuery(input: unknown): SessionQuery {
  const { cursor, ...rest } = parseInput(querySchema, input ?? {}, 'list query');
  return cursor === undefined ? rest : { ...rest, cursor: decodeCursor(cursor) };
}

/** An opaque, URL-safe cursor. */
export function encodeCursor(cursor: ListCursor): string {
  return Buffer.from(JSON.stringify([cursor.createdAt, cursor.id]), 'utf8').toString('base64url');
}

export function decodeCursor(text: string): ListCursor {
  try {
    const value: unknown = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
    if (
      Array.isArray(value) &&
      value.length === 2 &&
      Number.isInteger(value[0]) &&
      typeof value[1] === 'string' &&
      value[1].length > 0
    ) {
      return { createdAt: value[0] as number, id: value[1] };
    }
  } catch {
    // Reported below, the same as a cursor that parses to the wrong shape.
  }
  throw new SessionHubError(
    'INVALID_INPUT',
    'The list cursor is not one this server issued. Pass back `nextCursor` from the previous page unchanged, or omit it to start from the first page.',
    { cursor: text.slice(0, 100) },
  );
}

/** The listing order: newest first, then by id descending. Negative when `a` comes first. */
export function compareForListing(a: ListCursor, b: ListCursor): number {
  if (a.createdAt !== b.createdAt) return b.createdAt - a.createdAt;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/** Whether `record` comes after the cursor, i.e. belongs to the next page. */
export function isAfterCursor(record: ListCursor, cursor: ListCursor | undefined): boolean {
  return cursor === undefined || compareForListing(cursor, record) < 0;
}

/**
 * Whether a record passes a query's filters, within a caller's visible scope, as of `now` (the
 * status filter reads the effective status). Backends with no query language (memory, file,
 * Redis) filter with this; the SQL backends must agree with it.
 */
export function matchesQuery(
  record: ListableSession,
  scope: { tenant: string; owner?: string },
  query: SessionQuery,
  now: number,
): boolean {
  if (record.tenant !== scope.tenant) return false;
  if (scope.owner !== undefined && record.owner !== scope.owner) return false;
  if (query.owner !== undefined && record.owner !== query.owner) return false;
  if (query.status !== undefined && !query.status.includes(effectiveStatus(record, now))) {
    return false;
  }
  if (query.tag !== undefined && !record.tags.includes(query.tag)) return false;
  if (
    query.titleContains !== undefined &&
    !(record.title ?? '').toLowerCase().includes(query.titleContains.toLowerCase())
  ) {
    return false;
  }
  if (query.createdFrom !== undefined && record.createdAt < query.createdFrom) return false;
  if (query.createdTo !== undefined && record.createdAt >= query.createdTo) return false;
  if (query.activeFrom !== undefined && record.lastActiveAt < query.activeFrom) return false;
  if (query.activeTo !== undefined && record.lastActiveAt >= query.activeTo) return false;
  return isAfterCursor(record, query.cursor);
}
