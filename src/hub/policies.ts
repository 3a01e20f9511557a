import type { StoredSession } from '../backends/registry.js';
import {
  DEFAULT_EXPIRY_POLICY,
  type ExpiryOverrides,
  type ExpiryPolicy,
  expiresAt,
  parseExpiryOverrides,
  purgeAt,
  resolveExpiryPolicy,
} from '../core/expiry.js';
import {
  type LimitOverrides,
  type Limits,
  NO_LIMITS,
  parseLimitOverrides,
  resolveLimits,
} from '../core/limits.js';

/** Policies for one tenant, over the hub's. */
export interface TenantPolicy {
  expiry?: ExpiryOverrides;
  limits?: LimitOverrides;
}

/**
 * The hub's expiry and limit policies: its own, each tenant's overrides, and a session's own
 * overrides on top. Each level overrides only the fields it sets.
 */
export class HubPolicies {
  private readonly expiry: ExpiryPolicy;
  private readonly limits: Limits;
  private readonly tenants: Map<string, TenantPolicy>;

  constructor(options: {
    expiry?: unknown;
    limits?: unknown;
    tenants?: Record<string, { expiry?: unknown; limits?: unknown }>;
  }) {
    this.expiry = resolveExpiryPolicy(
      DEFAULT_EXPIRY_POLICY,
      parseExpiryOverrides(options.expiry, 'hub expiry policy'),
    );
    this.limits = resolveLimits(NO_LIMITS, parseLimitOverrides(options.limits, 'hub limits'));
    this.tenants = new Map(
      Object.entries(options.tenants ?? {}).map(([tenant, policy]) => [
        tenant,
        {
          expiry: parseExpiryOverrides(policy.expiry, `expiry policy of tenant ${tenant}`),
          limits: parseLimitOverrides(policy.limits, `limits of tenant ${tenant}`),
        },
      ]),
    );
  }

  expiryFor(tenant: string, session?: ExpiryOverrides): ExpiryPolicy {
    return resolveExpiryPolicy(this.expiry, this.tenants.get(tenant)?.expiry, session);
  }

  limitsFor(tenant: string, session?: LimitOverrides): Limits {
    return resolveLimits(this.limits, this.tenants.get(tenant)?.limits, session);
  }

  /**
   * The deadlines of a session as its facts and overrides now stand: when it expires, and when
   * it would be purged after that.
   */
  deadlines(
    session: Pick<
      StoredSession,
      'tenant' | 'createdAt' | 'lastActiveAt' | 'extendedUntil' | 'status' | 'expiry'
    >,
  ): { expiresAt: number | null; purgeAt: number | null } {
    const policy = this.expiryFor(session.tenant, session.expiry);
    const deadline = expiresAt(
      {
        createdAt: session.createdAt,
        lastActiveAt: session.lastActiveAt,
        extendedUntil: session.extendedUntil,
        archived: session.status === 'archived',
      },
      policy,
    );
    return { expiresAt: deadline, purgeAt: deadline === null ? null : purgeAt(deadline, policy) };
  }
}
