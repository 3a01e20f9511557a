import type { StoredSession } from '../backends/registry.js';
import { effectiveStatus, isLive, type SessionRecord } from '../core/session-record.js';
import { usageTotals } from '../core/usage.js';
import type { HubPolicies } from './policies.js';

/**
 * The public record of a stored session as of `now`: status as it stands (a session past its
 * deadline reads as expired before any sweep), usage totals, and the policies in force.
 */
export function toRecord(
  session: StoredSession,
  policies: HubPolicies,
  now: number,
): SessionRecord {
  const status = effectiveStatus(session, now);
  const lapsed = status === 'expired' && isLive(session.status);
  return {
    id: session.id,
    tenant: session.tenant,
    owner: session.owner,
    title: session.title,
    tags: [...session.tags],
    metadata: structuredClone(session.metadata),
    status,
    createdAt: session.createdAt,
    lastActiveAt: session.lastActiveAt,
    expiresAt: session.expiresAt,
    expiredAt: lapsed ? session.expiresAt : session.expiredAt,
    purgeAt: session.purgeAt,
    forkedFrom: session.forkedFrom && { ...session.forkedFrom },
    usage: usageTotals(session.usage),
    expiry: policies.expiryFor(session.tenant, session.expiry),
    limits: policies.limitsFor(session.tenant, session.limits),
    overrides: { expiry: { ...session.expiry }, limits: { ...session.limits } },
    version: session.version,
  };
}
