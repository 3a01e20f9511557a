import { z } from 'zod';
import { SessionHubError } from './errors.js';

/**
 * Who is calling. Every hub call carries one: a user sees and changes only its own sessions in
 * its tenant; a tenant admin sees every session of its tenant. Nobody sees another tenant.
 */
export type Identity =
  | { tenant: string; owner: string; admin?: false }
  | { tenant: string; owner?: string; admin: true };

/** A tenant or owner name: plain text, 1 to 200 characters. */
export const nameSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(200, 'must be at most 200 characters')
  .refine((value) => value.isWellFormed() && !value.includes('\u0000'), 'must be plain text');

const identitySchema = z.union([
  z.strictObject({ tenant: nameSchema, owner: nameSchema, admin: z.literal(false).optional() }),
  z.strictObject({ tenant: nameSchema, owner: nameSchema.optional(), admin: z.literal(true) }),
]);

/** Validates an identity from outside (an API key's binding, a library caller). */
export function parseIdentity(input: unknown): Identity {
  const parsed = identitySchema.safeParse(input);
  if (parsed.success) return parsed.data as Identity;
  const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'identity'} ${i.message}`);
  throw new SessionHubError(
    'INVALID_OPTION',
    `An identity is { tenant, owner } for a user or { tenant, admin: true } for a tenant admin: ${problems.join('; ')}.`,
    { problems },
  );
}

/** Whether `identity` may see a session owned by `owner` in `tenant`. */
export function canAccess(identity: Identity, session: { tenant: string; owner: string }): boolean {
  if (identity.tenant !== session.tenant) return false;
  return identity.admin === true || identity.owner === session.owner;
}

/** What a listing is narrowed to for this caller: its tenant, and its owner unless an admin. */
export function visibleScope(identity: Identity): { tenant: string; owner?: string } {
  return identity.admin === true
    ? { tenant: identity.tenant }
    : { tenant: identity.tenant, owner: identity.owner };
}

/** The error for a session the caller may not see: the same as for one that does not exist. */
export function sessionNotFound(sessionId: string): SessionHubError {
  return new SessionHubError(
    'SESSION_NOT_FOUND',
    `No session ${sessionId} is visible to you. Check the id, and that you are calling as its owner or a tenant admin.`,
    { sessionId },
  );
}
