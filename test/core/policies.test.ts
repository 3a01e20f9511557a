import { describe, expect, test } from 'vitest';
import { isSessionHubError } from '../../src/core/errors.js';
import {
  DEFAULT_EXPIRY_POLICY,
  type ExpiryPolicy,
  expiresAt,
  parseExpiryOverrides,
  purgeAt,
  resolveExpiryPolicy,
  sessionExpired,
} from '../../src/core/expiry.js';
import {
  canAccess,
  parseIdentity,
  sessionNotFound,
  visibleScope,
} from '../../src/core/identity.js';
import {
  checkLimit,
  NO_LIMITS,
  parseLimitOverrides,
  remainingBudgetUsd,
  resolveLimits,
} from '../../src/core/limits.js';
import { thrown } from '../helpers/thrown.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 0, 1);

describe('identity', () => {
  test('users see their own sessions in their tenant; admins their whole tenant; nobody another tenant', () => {
    const alice = parseIdentity({ tenant: 'acme', owner: 'alice' });
    const admin = parseIdentity({ tenant: 'acme', admin: true });
    const mine = { tenant: 'acme', owner: 'alice' };
    const bobs = { tenant: 'acme', owner: 'bob' };
    const foreign = { tenant: 'other', owner: 'alice' };
    expect([mine, bobs, foreign].map((s) => canAccess(alice, s))).toEqual([true, false, false]);
    expect([mine, bobs, foreign].map((s) => canAccess(admin, s))).toEqual([true, true, false]);
    expect(visibleScope(alice)).toEqual({ tenant: 'acme', owner: 'alice' });
    expect(visibleScope(admin)).toEqual({ tenant: 'acme' });
  });

  test.each([
    [{}, /tenant/],
    [{ tenant: 'acme' }, /owner|admin/],
    [{ tenant: '', owner: 'a' }, /tenant must not be empty/],
    [{ tenant: 'acme', owner: 'a', role: 'root' }, /role|Unrecognized/i],
    [{ tenant: 'a\u0000b', owner: 'a' }, /plain text/],
    [null, /identity/],
  ])('refuses %j with a message that says what an identity is', (input, reason) => {
    const error = thrown(() => parseIdentity(input));
    expect(isSessionHubError(error, 'INVALID_OPTION')).toBe(true);
    expect((error as Error).message).toMatch(/\{ tenant, owner \}/);
    expect((error as Error).message).toMatch(reason);
  });

  test('a session you may not see is reported exactly like a missing one', () => {
    const error = sessionNotFound('s1');
    expect(error.code).toBe('SESSION_NOT_FOUND');
    expect(error.details).toEqual({ sessionId: 's1' });
  });
});

describe('expiry policy', () => {
  const policy = (overrides: Partial<ExpiryPolicy>): ExpiryPolicy => ({
    ...DEFAULT_EXPIRY_POLICY,
    ...overrides,
  });
  const facts = (overrides: Partial<Parameters<typeof expiresAt>[0]> = {}) => ({
    createdAt: T0,
    lastActiveAt: T0,
    archived: false,
    ...overrides,
  });

  test('idle TTL counts from the last activity when activity extends', () => {
    const p = policy({ idleTtlMs: 2 * HOUR, absoluteTtlMs: null });
    expect(expiresAt(facts({ lastActiveAt: T0 + 5 * HOUR }), p)).toBe(T0 + 7 * HOUR);
  });

  test('with extend-on-activity off, activity does not move the deadline', () => {
    const p = policy({ idleTtlMs: 8 * HOUR, absoluteTtlMs: null, extendOnActivity: false });
    expect(expiresAt(facts({ lastActiveAt: T0 + 5 * HOUR }), p)).toBe(T0 + 8 * HOUR);
  });

  test('the absolute TTL caps an active session', () => {
    const p = policy({ idleTtlMs: 2 * HOUR, absoluteTtlMs: 24 * HOUR });
    expect(expiresAt(facts({ lastActiveAt: T0 + 23 * HOUR }), p)).toBe(T0 + 24 * HOUR);
  });

  test('an explicit extension wins over both deadlines, and never shortens one', () => {
    const p = policy({ idleTtlMs: 2 * HOUR, absoluteTtlMs: 24 * HOUR });
    expect(expiresAt(facts({ extendedUntil: T0 + 48 * HOUR }), p)).toBe(T0 + 48 * HOUR);
    expect(expiresAt(facts({ extendedUntil: T0 + HOUR }), p)).toBe(T0 + 2 * HOUR);
  });

  test('archived sessions and sessions with no TTL never expire', () => {
    expect(expiresAt(facts({ archived: true }), DEFAULT_EXPIRY_POLICY)).toBeNull();
    expect(expiresAt(facts(), policy({ idleTtlMs: null, absoluteTtlMs: null }))).toBeNull();
  });

  test('purge comes retention after expiry', () => {
    expect(purgeAt(T0, policy({ retentionMs: HOUR }))).toBe(T0 + HOUR);
  });

  test('tenant and session levels override only the fields they set, null included', () => {
    const resolved = resolveExpiryPolicy(
      DEFAULT_EXPIRY_POLICY,
      { absoluteTtlMs: 24 * HOUR, retentionMs: 0 },
      undefined,
      { absoluteTtlMs: null, extendOnActivity: false },
    );
    expect(resolved).toEqual({
      absoluteTtlMs: null,
      idleTtlMs: DEFAULT_EXPIRY_POLICY.idleTtlMs,
      extendOnActivity: false,
      retentionMs: 0,
    });
  });

  test.each([
    [{ idleTtlMs: -1 }, /idleTtlMs must be positive/],
    [{ idleTtlMs: 1.5 }, /whole milliseconds/],
    [{ retentionMs: -1 }, /retentionMs must not be negative/],
    [{ ttl: 5 }, /Unrecognized|ttl/],
  ])('refuses %j', (input, reason) => {
    const error = thrown(() => parseExpiryOverrides(input, 'tenant expiry policy'));
    expect(isSessionHubError(error, 'INVALID_OPTION')).toBe(true);
    expect((error as Error).message).toMatch(reason);
    expect((error as Error).message).toMatch(/tenant expiry policy/);
  });

  test('SessionExpired says when and how to extend', () => {
    const error = sessionExpired('s1', T0);
    expect(error.code).toBe('SESSION_EXPIRED');
    expect(error.message).toContain('2026-01-01T00:00:00.000Z');
    expect(error.message).toMatch(/extend/);
    expect(error.details).toMatchObject({ sessionId: 's1', expiredAt: T0 });
  });
});

describe('limits', () => {
  const limits = resolveLimits(NO_LIMITS, {
    maxSessionsPerOwner: 3,
    maxTurnsPerSession: 10,
    maxCostPerSessionUsd: 1,
    maxCostPerOwnerPerDayUsd: 5,
  });

  test('counts refuse what would pass the limit; costs refuse once reached', () => {
    expect(() => checkLimit(limits, 'maxSessionsPerOwner', 2, 1)).not.toThrow();
    const error = thrown(() => checkLimit(limits, 'maxSessionsPerOwner', 3, 1));
    expect(isSessionHubError(error, 'LIMIT_EXCEEDED')).toBe(true);
    expect((error as { details: unknown }).details).toEqual({
      limit: 'maxSessionsPerOwner',
      current: 3,
      max: 3,
    });
    expect((error as Error).message).toMatch(/sessions per owner is 3.*current figure is 3/);
    expect(() => checkLimit(limits, 'maxCostPerSessionUsd', 0.999)).not.toThrow();
    expect(() => checkLimit(limits, 'maxCostPerSessionUsd', 1)).toThrow(/cost per session/);
  });

  test('no limit, no refusal', () => {
    expect(() => checkLimit(NO_LIMITS, 'maxTurnsPerSession', 1e9, 1)).not.toThrow();
  });

  test('the remaining budget is the tighter of the session and daily budgets, never negative', () => {
    expect(remainingBudgetUsd(limits, 0.25, 0)).toBe(0.75);
    expect(remainingBudgetUsd(limits, 0.25, 4.9)).toBeCloseTo(0.1, 9);
    expect(remainingBudgetUsd(limits, 2, 0)).toBe(0);
    expect(remainingBudgetUsd(NO_LIMITS, 2, 0)).toBeUndefined();
  });

  test('overrides can lift a limit with null, and bad values are refused', () => {
    expect(resolveLimits(limits, { maxTurnsPerSession: null }).maxTurnsPerSession).toBeNull();
    const error = thrown(() => parseLimitOverrides({ maxTurnsPerSession: 0 }));
    expect(isSessionHubError(error, 'INVALID_OPTION')).toBe(true);
    expect((error as Error).message).toMatch(/maxTurnsPerSession must be positive/);
  });
});
