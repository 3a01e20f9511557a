import type { Pool } from 'pg';
import type { ApiKeyRecord, ApiKeyRole, ApiKeyStore } from '../../core/api-keys.js';
import { closedError, SessionHubError } from '../../core/errors.js';
import { prepared, quoteIdentifier, type Statement } from './sql.js';

/** A row as node-postgres returns it: bigint columns arrive as strings. */
type ApiKeyRow = {
  id: string;
  name: string;
  tenant: string;
  owner: string | null;
  role: ApiKeyRole;
  secret_hash: string;
  rate_limit_per_minute: number | null;
  created_at: string;
  revoked_at: string | null;
};

const COLUMNS = `id, name, tenant, owner, role, secret_hash, rate_limit_per_minute, created_at,
  revoked_at`;

/** Every statement the store runs, for one schema; each is atomic on its own. */
class ApiKeyStatements {
  /** $1..$9 the record's columns in COLUMNS order. A row back means it was inserted. */
  readonly insert: Statement;
  /** $1 id. */
  readonly get: Statement;
  readonly listAll: Statement;
  /** $1 tenant. */
  readonly listTenant: Statement;
  /** $1 id, $2 at. COALESCE keeps the first revocation time. */
  readonly revoke: Statement;

  constructor(schema: string) {
    const table = `${quoteIdentifier(schema)}.api_keys`;
    this.insert = prepared(`
      INSERT INTO ${table} (${COLUMNS})
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8::bigint, $9::bigint)
      ON CONFLICT (id) DO NOTHING
      RETURNING id`);
    this.get = prepared(`SELECT ${COLUMNS} FROM ${table} WHERE id = $1`);
    this.listAll = prepared(`SELECT ${COLUMNS} FROM ${table} ORDER BY created_at, id`);
    this.listTenant = prepared(
      `SELECT ${COLUMNS} FROM ${table} WHERE tenant = $1 ORDER BY created_at, id`,
    );
    this.revoke = prepared(`
      UPDATE ${table} SET revoked_at = COALESCE(revoked_at, $2::bigint)
      WHERE id = $1
      RETURNING ${COLUMNS}`);
  }
}

/**
 * API keys as rows of `api_keys` (migration 5), shared by every host on the schema. Every
 * operation is one statement on the backend's pool: no transaction, no explicit lock.
 */
export class PostgresApiKeyStore implements ApiKeyStore {
  private readonly pool: Pool;
  private readonly sql: ApiKeyStatements;
  private closed = false;

  /** Expects a schema already migrated (see migratePostgres). */
  constructor(options: { pool: Pool; schema: string }) {
    this.pool = options.pool;
    this.sql = new ApiKeyStatements(options.schema);
  }

  async insert(key: ApiKeyRecord): Promise<void> {
    this.assertOpen();
    const { rows } = await this.run('insert', this.sql.insert, [
      key.id,
      key.name,
      key.tenant,
      key.owner,
      key.role,
      key.secretHash,
      key.rateLimitPerMinute,
      key.createdAt,
      key.revokedAt,
    ]);
    if (rows.length === 0) {
      throw new SessionHubError('INVALID_INPUT', `An API key with id ${key.id} already exists.`, {
        id: key.id,
      });
    }
  }

  async get(id: string): Promise<ApiKeyRecord | null> {
    this.assertOpen();
    const { rows } = await this.run<ApiKeyRow>('get', this.sql.get, [id]);
    return rows[0] ? recordOf(rows[0]) : null;
  }

  async list(tenant?: string): Promise<ApiKeyRecord[]> {
    this.assertOpen();
    const { rows } =
      tenant === undefined
        ? await this.run<ApiKeyRow>('list', this.sql.listAll, [])
        : await this.run<ApiKeyRow>('list', this.sql.listTenant, [tenant]);
    return rows.map(recordOf);
  }

  async revoke(id: string, at: number): Promise<ApiKeyRecord | null> {
    this.assertOpen();
    const { rows } = await this.run<ApiKeyRow>('revoke', this.sql.revoke, [id, at]);
    return rows[0] ? recordOf(rows[0]) : null;
  }

  /** Refuses every later call; the pool itself belongs to the backend. */
  close(): void {
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed) throw closedError('PostgreSQL API key store');
  }

  /** Turns driver and server failures into BACKEND_UNAVAILABLE, naming the operation. */
  private async run<R extends Record<string, unknown> = Record<string, unknown>>(
    operation: string,
    statement: Statement,
    values: unknown[],
  ): Promise<{ rows: R[] }> {
    try {
      return await this.pool.query<R>({ ...statement, values });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new SessionHubError(
        'BACKEND_UNAVAILABLE',
        `PostgreSQL API key ${operation}() failed: ${reason}. Check that the server is up and reachable and that the user may read and write the schema's api_keys table.`,
        { operation },
        { cause: error },
      );
    }
  }
}

function recordOf(row: ApiKeyRow): ApiKeyRecord {
  return {
    id: row.id,
    name: row.name,
    tenant: row.tenant,
    owner: row.owner,
    role: row.role,
    secretHash: row.secret_hash,
    rateLimitPerMinute: row.rate_limit_per_minute,
    createdAt: Number(row.created_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
  };
}
