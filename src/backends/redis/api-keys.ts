import type { ApiKeyRecord, ApiKeyRole, ApiKeyStore } from '../../core/api-keys.js';
import { closedError, SessionHubError } from '../../core/errors.js';
import { guardRedis } from './failures.js';
import { type ApiKeyKeys, apiKeyKeys } from './keys.js';
import { lua, type RedisClient, runScript } from './scripts.js';

/**
 * Stores a key unless its id is taken, and lists it, in one step: a HASH and its id in two
 * ZSETs scored by createdAt. All three share the API-key slot.
 * KEYS: key HASH, all ZSET, tenant ZSET. ARGV: id, createdAt, then field, value pairs.
 * Returns 1 if stored, 0 if the id was taken (nothing is written then).
 */
const INSERT = lua(
  'api_key_insert',
  `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
`,
);

/**
 * Marks a key revoked unless it already is (HSETNX keeps the first time), and returns it; a
 * missing key is left missing rather than created.
 * KEYS: key HASH. ARGV: at. Returns the HASH as HGETALL does, or nil when there is no such key.
 */
const REVOKE = lua(
  'api_key_revoke',
  `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSETNX', KEYS[1], 'revokedAt', ARGV[1])
return redis.call('HGETALL', KEYS[1])
`,
);

/**
 * API keys in Redis under the backend's prefix, shared by every host on it (see keys.ts): one
 * HASH per key, and its id in the ZSET of every key and of its tenant, for list(). Keys are never
 * deleted, so the listings never name a missing HASH.
 */
export class RedisApiKeyStore implements ApiKeyStore {
  private readonly keys: ApiKeyKeys;
  private closed = false;

  constructor(
    private readonly client: RedisClient,
    prefix: string,
  ) {
    this.keys = apiKeyKeys(prefix);
  }

  async insert(key: ApiKeyRecord): Promise<void> {
    this.assertOpen();
    const stored = await this.guard(
      'insert',
      runScript(
        this.client,
        INSERT,
        [this.keys.key(key.id), this.keys.all, this.keys.tenant(key.tenant)],
        [key.id, key.createdAt, ...fieldsOf(key)],
      ),
    );
    if (stored !== 1) {
      throw new SessionHubError('INVALID_INPUT', `An API key with id ${key.id} already exists.`, {
        id: key.id,
      });
    }
  }

  async get(id: string): Promise<ApiKeyRecord | null> {
    this.assertOpen();
    return recordOf(await this.guard('get', this.client.hgetall(this.keys.key(id))));
  }

  async list(tenant?: string): Promise<ApiKeyRecord[]> {
    this.assertOpen();
    const index = tenant === undefined ? this.keys.all : this.keys.tenant(tenant);
    // Equal scores come back in byte order of the id, as the SQL backends' ORDER BY has it.
    const ids = await this.guard('list', this.client.zrange(index, 0, -1));
    if (ids.length === 0) return [];
    // One round trip for every HASH; they share the listing's slot, so a Cluster takes it too.
    const pipeline = this.client.pipeline();
    for (const id of ids) pipeline.hgetall(this.keys.key(id));
    const replies = await this.guard('list', repliesOf(pipeline.exec()));
    return replies
      .map((fields) => recordOf(fields as Record<string, string>))
      .filter((record): record is ApiKeyRecord => record !== null);
  }

  async revoke(id: string, at: number): Promise<ApiKeyRecord | null> {
    this.assertOpen();
    const reply = await this.guard(
      'revoke',
      runScript(this.client, REVOKE, [this.keys.key(id)], [at]),
    );
    return Array.isArray(reply) ? recordOf(pairsToObject(reply as string[])) : null;
  }

  /** Refuses every later call; the connection itself belongs to the backend. */
  close(): void {
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed) throw closedError('Redis API key store');
  }

  private guard<T>(operation: string, pending: Promise<T>): Promise<T> {
    return guardRedis(`Redis API key ${operation}()`, operation, pending);
  }
}

/** The HASH fields of a record; a null field is left out, so absent means null. */
function fieldsOf(key: ApiKeyRecord): string[] {
  const fields = [
    'id',
    key.id,
    'name',
    key.name,
    'tenant',
    key.tenant,
    'role',
    key.role,
    'secretHash',
    key.secretHash,
    'createdAt',
    String(key.createdAt),
  ];
  if (key.owner !== null) fields.push('owner', key.owner);
  if (key.rateLimitPerMinute !== null) {
    fields.push('rateLimitPerMinute', String(key.rateLimitPerMinute));
  }
  if (key.revokedAt !== null) fields.push('revokedAt', String(key.revokedAt));
  return fields;
}

/** A record from its HASH; null for an empty one (HGETALL of a missing key). */
function recordOf(fields: Record<string, string>): ApiKeyRecord | null {
  if (fields.id === undefined) return null;
  return {
    id: fields.id,
    name: fields.name as string,
    tenant: fields.tenant as string,
    owner: fields.owner ?? null,
    role: fields.role as ApiKeyRole,
    secretHash: fields.secretHash as string,
    rateLimitPerMinute:
      fields.rateLimitPerMinute === undefined ? null : Number(fields.rateLimitPerMinute),
    createdAt: Number(fields.createdAt),
    revokedAt: fields.revokedAt === undefined ? null : Number(fields.revokedAt),
  };
}

/** A pipeline's replies, or its first error: ioredis reports each command's error in place. */
async function repliesOf(
  pending: Promise<Array<[error: Error | null, reply: unknown]> | null>,
): Promise<unknown[]> {
  return ((await pending) ?? []).map(([error, reply]) => {
    if (error) throw error;
    return reply;
  });
}

/** A flat [field, value, …] reply, as a script's HGETALL returns it. */
function pairsToObject(pairs: string[]): Record<string, string> {
  const fields: Record<string, string> = {};
  for (let i = 0; i + 1 < pairs.length; i += 2) fields[pairs[i] as string] = pairs[i + 1] as string;
  return fields;
}
