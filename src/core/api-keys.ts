import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { SessionHubError } from './errors.js';
import type { Identity } from './identity.js';
import { nameSchema } from './identity.js';

/**
 * API keys for the HTTP service. A key is shown once, at creation: `shk_<id>_<secret>`. Only the
 * SHA-256 of the secret is stored; the secret is 32 random bytes, so a fast hash is enough (there
 * is nothing to guess), and the id finds the record without scanning.
 *
 * A key is bound to a tenant and a role: a `user` key to one owner, who sees its own sessions; an
 * `admin` key to the whole tenant.
 */
export type ApiKeyRole = 'user' | 'admin';

export interface ApiKeyRecord {
  /** Public part of the key, also its name in listings and logs. */
  id: string;
  /** A label for people ("ci", "discord bot"). */
  name: string;
  tenant: string;
  /** The owner a user key acts as; null for an admin key. */
  owner: string | null;
  role: ApiKeyRole;
  /** Hex SHA-256 of the secret. */
  secretHash: string;
  /** Requests per minute this key may make (null: the service's default). */
  rateLimitPerMinute: number | null;
  /** Epoch ms. */
  createdAt: number;
  /** When it was revoked (null: it works). */
  revokedAt: number | null;
}

/** Where a backend keeps API keys, shared by every service instance on it. */
export interface ApiKeyStore {
  /** Stores a new key; throws INVALID_INPUT if the id is taken (a random id: never in practice). */
  insert(key: ApiKeyRecord): Promise<void>;
  get(id: string): Promise<ApiKeyRecord | null>;
  /** Every key, or a tenant's, oldest first. */
  list(tenant?: string): Promise<ApiKeyRecord[]>;
  /** Marks the key revoked as of `at`; returns it, or null when there is no such key. */
  revoke(id: string, at: number): Promise<ApiKeyRecord | null>;
}

const KEY_PREFIX = 'shk';
const ID_PATTERN = /^[a-z0-9]{12}$/;
const TOKEN_PATTERN = /^shk_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;

export const newApiKeySchema = z.strictObject({
  name: z.string().min(1).max(100).default('key'),
  tenant: nameSchema,
  owner: nameSchema.optional(),
  role: z.enum(['user', 'admin']).default('user'),
  rateLimitPerMinute: z.number().int().positive().max(1_000_000).nullable().default(null),
});

export type NewApiKey = z.input<typeof newApiKeySchema>;

/** Makes a key: the record to store and the token to hand to its user, once. */
export function createApiKey(
  input: NewApiKey,
  now: number,
): { record: ApiKeyRecord; token: string } {
  const parsed = newApiKeySchema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'key'} ${i.message}`);
    throw new SessionHubError('INVALID_INPUT', `Cannot create the key: ${problems.join('; ')}.`, {
      problems,
    });
  }
  const { name, tenant, owner, role, rateLimitPerMinute } = parsed.data;
  if (role === 'user' && owner === undefined) {
    throw new SessionHubError(
      'INVALID_INPUT',
      'A user key acts as one owner: give --owner (or make an admin key with --role admin).',
      { role },
    );
  }
  if (role === 'admin' && owner !== undefined) {
    throw new SessionHubError(
      'INVALID_INPUT',
      'An admin key sees the whole tenant and has no owner: drop --owner, or use --role user.',
      { role, owner },
    );
  }
  const id = randomId();
  const secret = randomBytes(32).toString('base64url');
  return {
    token: `${KEY_PREFIX}_${id}_${secret}`,
    record: {
      id,
      name,
      tenant,
      owner: owner ?? null,
      role,
      secretHash: hashSecret(secret),
      rateLimitPerMinute,
      createdAt: now,
      revokedAt: null,
    },
  };
}

/** A copy with only the record's own fields, so a caller's extra properties are never stored. */
export function apiKeyRecordOf(key: ApiKeyRecord): ApiKeyRecord {
  return {
    id: key.id,
    name: key.name,
    tenant: key.tenant,
    owner: key.owner,
    role: key.role,
    secretHash: key.secretHash,
    rateLimitPerMinute: key.rateLimitPerMinute,
    createdAt: key.createdAt,
    revokedAt: key.revokedAt,
  };
}

/** Splits a presented token; null when it is not shaped like one of ours. */
export function parseApiKeyToken(token: string): { id: string; secret: string } | null {
  const match = TOKEN_PATTERN.exec(token);
  return match ? { id: match[1] as string, secret: match[2] as string } : null;
}

/** Whether `secret` is the key's, compared in constant time. */
export function secretMatches(record: ApiKeyRecord, secret: string): boolean {
  const presented = Buffer.from(hashSecret(secret), 'hex');
  const stored = Buffer.from(record.secretHash, 'hex');
  return presented.length === stored.length && timingSafeEqual(presented, stored);
}

/** Who a key acts as. */
export function identityOfKey(record: ApiKeyRecord): Identity {
  return record.role === 'admin'
    ? { tenant: record.tenant, admin: true }
    : { tenant: record.tenant, owner: record.owner as string };
}

export function isApiKeyId(id: string): boolean {
  return ID_PATTERN.test(id);
}

function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

function randomId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let id = '';
  for (let i = 0; i < 12; i++) id += alphabet[randomInt(alphabet.length)];
  return id;
}
