import { z } from 'zod';
import { SessionHubError } from './errors.js';

/**
 * When sessions expire and when they are purged. Set per hub, overridable per tenant and per
 * session (each level overrides only the fields it sets).
 *
 * - `absoluteTtlMs`: a session expires this long after creation, however active (null: never).
 *   Only an explicit extend() moves this deadline.
 * - `idleTtlMs`: a session expires this long after its last activity (null: never idles out).
 * - `extendOnActivity`: whether a turn counts as activity that pushes the idle deadline. Off, the
 *   idle deadline only moves on extend(): a fixed lifetime from creation, as some teams want.
 * - `retentionMs`: how long an expired session (record and transcript) is kept before the sweeper
 *   purges it; until then it can be extended back to life.
 *
 * An archived session never expires; unarchiving it counts as activity.
 */
export interface ExpiryPolicy {
  absoluteTtlMs: number | null;
  idleTtlMs: number | null;
  extendOnActivity: boolean;
  retentionMs: number;
}

export type ExpiryOverrides = Partial<ExpiryPolicy>;

const DAY = 24 * 60 * 60 * 1000;

/** Without configuration: idle for 30 days expires, kept 7 more days, no absolute limit. */
export const DEFAULT_EXPIRY_POLICY: ExpiryPolicy = {
  absoluteTtlMs: null,
  idleTtlMs: 30 * DAY,
  extendOnActivity: true,
  retentionMs: 7 * DAY,
};

const duration = z.number().int('must be whole milliseconds').positive('must be positive');

const overridesSchema = z.strictObject({
  absoluteTtlMs: duration.nullable().optional(),
  idleTtlMs: duration.nullable().optional(),
  extendOnActivity: z.boolean().optional(),
  retentionMs: z
    .number()
    .int('must be whole milliseconds')
    .min(0, 'must not be negative')
    .optional(),
});

/** Validates expiry settings from outside (configuration, an API call). */
export function parseExpiryOverrides(input: unknown, where = 'expiry policy'): ExpiryOverrides {
  const parsed = overridesSchema.safeParse(input ?? {});
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => `${i.path.join('.') || where} ${i.message}`);
  throw new SessionHubError(
    'INVALID_OPTION',
    `Invalid ${where}: ${problems.join('; ')}. Durations are whole milliseconds; null means never.`,
    { problems },
  );
}

/** The policy in force: the hub's, then the tenant's overrides, then the session's. */
export function resolveExpiryPolicy(
  hub: ExpiryPolicy,
  ...overrides: Array<ExpiryOverrides | undefined>
): ExpiryPolicy {
  const policy = { ...hub };
  for (const level of overrides) {
    if (!level) continue;
    for (const [field, value] of Object.entries(level)) {
      if (value !== undefined) (policy as Record<string, unknown>)[field] = value;
    }
  }
  return policy;
}

/** What expiry needs to know about a session. Times are epoch ms. */
export interface ExpiryFacts {
  createdAt: number;
  lastActiveAt: number;
  /** The latest explicit extend(), if any: it moves both deadlines. */
  extendedUntil?: number | null;
  archived: boolean;
}

function earliest(...deadlines: Array<number | null>): number | null {
  const set = deadlines.filter((d): d is number => d !== null);
  return set.length === 0 ? null : Math.min(...set);
}

/**
 * When the session expires under `policy`, or null for never. An explicit extension past both
 * deadlines wins over them: extend() is how an owner keeps a session beyond its policy.
 */
export function expiresAt(facts: ExpiryFacts, policy: ExpiryPolicy): number | null {
  if (facts.archived) return null;
  const absolute = policy.absoluteTtlMs === null ? null : facts.createdAt + policy.absoluteTtlMs;
  const idleFrom = policy.extendOnActivity ? facts.lastActiveAt : facts.createdAt;
  const idle = policy.idleTtlMs === null ? null : idleFrom + policy.idleTtlMs;
  const deadline = earliest(absolute, idle);
  const extended = facts.extendedUntil ?? null;
  if (extended === null) return deadline;
  return deadline === null ? null : Math.max(deadline, extended);
}

/** When an expired session is purged. */
export function purgeAt(expiredAt: number, policy: ExpiryPolicy): number {
  return expiredAt + policy.retentionMs;
}

/** The error for a turn or write on an expired session. */
export function sessionExpired(sessionId: string, expiredAt: number): SessionHubError {
  return new SessionHubError(
    'SESSION_EXPIRED',
    `Session ${sessionId} expired at ${new Date(expiredAt).toISOString()}. Extend it (hub.extend(sessionId, { byMs }) or POST /v1/sessions/${sessionId}/extend) before its retention ends, or start a new session.`,
    {
      sessionId,
      expiredAt,
      extend: { method: 'extend', path: `/v1/sessions/${sessionId}/extend` },
    },
  );
}
