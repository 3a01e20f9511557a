import type { NewSession } from '../../src/backends/registry.js';

/**
 * Builds registry records for tests: an active session of alice in tenant acme, created and last
 * active at `at`, with no deadline; `fields` override any of that.
 */
export function sessionBuilder(at: number) {
  return (id: string, fields: Partial<NewSession> = {}): NewSession => ({
    id,
    tenant: 'acme',
    owner: 'alice',
    title: null,
    tags: [],
    metadata: {},
    status: 'active',
    createdAt: at,
    lastActiveAt: at,
    expiresAt: null,
    expiredAt: null,
    purgeAt: null,
    extendedUntil: null,
    forkedFrom: null,
    expiry: {},
    limits: {},
    ...fields,
  });
}
