import { z } from 'zod';
import { SessionHubError } from './errors.js';

/**
 * Spending and volume limits, set per hub and overridable per tenant and per session (each level
 * overrides the fields it sets; null removes a limit set above it).
 */
export interface Limits {
  maxSessionsPerOwner: number | null;
  maxTurnsPerSession: number | null;
  maxCostPerSessionUsd: number | null;
  maxCostPerOwnerPerDayUsd: number | null;
}

export type LimitName = keyof Limits;
export type LimitOverrides = Partial<Limits>;

export const NO_LIMITS: Limits = {
  maxSessionsPerOwner: null,
  maxTurnsPerSession: null,
  maxCostPerSessionUsd: null,
  maxCostPerOwnerPerDayUsd: null,
};

const count = z.number().int('must be a whole number').positive('must be positive').nullable();
const usd = z.number().positive('must be positive').finite().nullable();

const overridesSchema = z.strictObject({
  maxSessionsPerOwner: count.optional(),
  maxTurnsPerSession: count.optional(),
  maxCostPerSessionUsd: usd.optional(),
  maxCostPerOwnerPerDayUsd: usd.optional(),
});

/** Validates limits from outside (configuration, an API call). */
export function parseLimitOverrides(input: unknown, where = 'limits'): LimitOverrides {
  const parsed = overridesSchema.safeParse(input ?? {});
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => `${i.path.join('.') || where} ${i.message}`);
  throw new SessionHubError(
    'INVALID_OPTION',
    `Invalid ${where}: ${problems.join('; ')}. Use a positive number, or null for no limit.`,
    { problems },
  );
}

export function resolveLimits(
  hub: Limits,
  ...overrides: Array<LimitOverrides | undefined>
): Limits {
  const limits = { ...hub };
  for (const level of overrides) {
    if (!level) continue;
    for (const [field, value] of Object.entries(level)) {
      if (value !== undefined) (limits as Record<string, unknown>)[field] = value;
    }
  }
  return limits;
}

const DESCRIBE: Record<LimitName, string> = {
  maxSessionsPerOwner: 'sessions per owner',
  maxTurnsPerSession: 'turns per session',
  maxCostPerSessionUsd: 'cost per session (USD)',
  maxCostPerOwnerPerDayUsd: 'cost per owner per day (USD)',
};

/**
 * Throws LIMIT_EXCEEDED when `current + adding` would pass the limit (for counts), or when
 * `current` has already reached it (for costs, which are only known after a turn).
 */
export function checkLimit(limits: Limits, name: LimitName, current: number, adding = 0): void {
  const max = limits[name];
  if (max === null) return;
  const over = adding > 0 ? current + adding > max : current >= max;
  if (!over) return;
  throw new SessionHubError(
    'LIMIT_EXCEEDED',
    `Limit reached: ${DESCRIBE[name]} is ${max}, and the current figure is ${round(current)}. Raise the limit for this tenant or session, or wait for the daily figure to reset.`,
    { limit: name, current: round(current), max },
  );
}

/**
 * What a turn may still spend, for the SDK's maxBudgetUsd: the smaller of what is left of the
 * session's and the owner's daily budget; undefined when neither is limited.
 */
export function remainingBudgetUsd(
  limits: Limits,
  sessionCostUsd: number,
  ownerCostTodayUsd: number,
): number | undefined {
  const left = [
    limits.maxCostPerSessionUsd === null ? null : limits.maxCostPerSessionUsd - sessionCostUsd,
    limits.maxCostPerOwnerPerDayUsd === null
      ? null
      : limits.maxCostPerOwnerPerDayUsd - ownerCostTodayUsd,
  ].filter((v): v is number => v !== null);
  return left.length === 0 ? undefined : Math.max(0, Math.min(...left));
}

function round(value: number): number {
  return Math.round(value * 1e6) / 1e6;
}
