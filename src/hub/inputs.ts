import { z } from 'zod';
import { SessionHubError } from '../core/errors.js';
import { type ExpiryOverrides, parseExpiryOverrides } from '../core/expiry.js';
import { nameSchema } from '../core/identity.js';
import { type LimitOverrides, parseLimitOverrides } from '../core/limits.js';
import {
  epochMs,
  metadataSchema,
  parseInput,
  tagSchema,
  tagsSchema,
  titleSchema,
} from '../core/session-record.js';

/** What callers of the hub pass in, validated at the edge: one schema per operation. */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Session ids are the SDK's session UUIDs; anything else is refused before any I/O. */
export function parseSessionId(id: unknown): string {
  if (typeof id === 'string' && UUID.test(id)) return id.toLowerCase();
  throw new SessionHubError(
    'INVALID_INPUT',
    'A session id is a UUID such as 3f2b8c1e-6a4d-4e0f-9b7a-1c2d3e4f5a6b (the SDK session id).',
    { sessionId: typeof id === 'string' ? id.slice(0, 100) : typeof id },
  );
}

/** The schemas are exported for the HTTP layer, which extends them and documents them. */
export const createSchema = z.strictObject({
  id: z.string().regex(UUID, 'must be a UUID').optional(),
  owner: nameSchema.optional(),
  title: titleSchema.optional(),
  tags: tagsSchema.optional(),
  metadata: metadataSchema.optional(),
  expiry: z.unknown().optional(),
  limits: z.unknown().optional(),
});

export interface CreateInput {
  /** The session id to use (a UUID); default: a new random one. */
  id?: string;
  /** Whose session it is. Users create their own; a tenant admin names the owner. */
  owner?: string;
  title?: string | null;
  tags?: string[];
  metadata?: Record<string, unknown>;
  /** Overrides of the tenant's expiry policy for this session. */
  expiry?: ExpiryOverrides;
  /** Overrides of the tenant's limits for this session (tenant admins only). */
  limits?: LimitOverrides;
}

export function parseCreateInput(input: unknown): CreateInput {
  const parsed = parseInput(createSchema, input ?? {}, 'session');
  const { expiry, limits, ...rest } = parsed;
  const result: CreateInput = { ...rest, ...parseOverrides(expiry, limits) };
  if (rest.id !== undefined) result.id = rest.id.toLowerCase();
  return result;
}

/** Policy overrides in a session call are input, not configuration: report them as such. */
function asInput<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof SessionHubError && error.code === 'INVALID_OPTION') {
      throw new SessionHubError('INVALID_INPUT', error.message, error.details, { cause: error });
    }
    throw error;
  }
}

export function parseOverridesInput(input: unknown): {
  expiry?: ExpiryOverrides;
  limits?: LimitOverrides;
} {
  const parsed = parseInput(
    z.strictObject({ expiry: z.unknown().optional(), limits: z.unknown().optional() }),
    input ?? {},
    'overrides',
  );
  return parseOverrides(parsed.expiry, parsed.limits);
}

function parseOverrides(
  expiry: unknown,
  limits: unknown,
): { expiry?: ExpiryOverrides; limits?: LimitOverrides } {
  const result: { expiry?: ExpiryOverrides; limits?: LimitOverrides } = {};
  if (expiry !== undefined) result.expiry = asInput(() => parseExpiryOverrides(expiry, 'expiry'));
  if (limits !== undefined) result.limits = asInput(() => parseLimitOverrides(limits, 'limits'));
  return result;
}

export const extendSchema = z.union([
  z.strictObject({
    byMs: z.number().int('must be whole milliseconds').positive('must be positive'),
  }),
  z.strictObject({ until: epochMs }),
]);

/** Extend by a duration from the current deadline (or now, if later), or to a fixed time. */
export type ExtendInput = { byMs: number } | { until: number };

export function parseExtendInput(input: unknown): ExtendInput {
  return parseInput(extendSchema, input, 'extension (give { byMs } or { until })');
}

export const forkSchema = z.strictObject({
  atMessageUuid: z.string().min(1).max(200).optional(),
  title: titleSchema.optional(),
  tags: tagsSchema.optional(),
  metadata: metadataSchema.optional(),
});

export interface ForkInput {
  /** Cut the fork after this message (inclusive); default: the whole transcript. */
  atMessageUuid?: string;
  /** Default: the parent's title with " (fork)". */
  title?: string | null;
  /** Default: the parent's tags and metadata. */
  tags?: string[];
  metadata?: Record<string, unknown>;
}

export function parseForkInput(input: unknown): ForkInput {
  return parseInput(forkSchema, input ?? {}, 'fork');
}

export const updateSchema = z.strictObject({
  title: titleSchema.optional(),
  tags: tagsSchema.optional(),
  metadata: metadataSchema.optional(),
  expiry: z.unknown().optional(),
  limits: z.unknown().optional(),
});

/** Fields of a session to set at once; tags and metadata are replaced, overrides merged. */
export interface UpdateInput {
  title?: string | null;
  tags?: string[];
  metadata?: Record<string, unknown>;
  expiry?: ExpiryOverrides;
  /** Tenant admins only. */
  limits?: LimitOverrides;
}

export function parseUpdateInput(input: unknown): UpdateInput {
  const { expiry, limits, ...rest } = parseInput(updateSchema, input ?? {}, 'update');
  return { ...rest, ...parseOverrides(expiry, limits) };
}

export function parseTitle(input: unknown): string | null {
  return parseInput(titleSchema, input, 'title');
}

/** One tag or several. */
export function parseTags(input: unknown): string[] {
  return parseInput(z.union([tagSchema.transform((t) => [t]), tagsSchema]), input, 'tags');
}

export function parseMetadata(input: unknown): Record<string, unknown> {
  return parseInput(metadataSchema, input, 'metadata');
}

const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a UTC day, YYYY-MM-DD');

export interface StatsInput {
  /** First and last UTC day of the usage figures, inclusive. Default: the last 30 days. */
  fromDay?: string;
  toDay?: string;
}

export function parseStatsInput(input: unknown): StatsInput {
  return parseInput(
    z.strictObject({ fromDay: day.optional(), toDay: day.optional() }),
    input ?? {},
    'stats query',
  );
}
