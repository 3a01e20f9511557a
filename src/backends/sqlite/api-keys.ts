import type BetterSqlite3 from 'better-sqlite3';
import { type ApiKeyRecord, type ApiKeyStore, apiKeyRecordOf } from '../../core/api-keys.js';
import { closedError, SessionHubError } from '../../core/errors.js';

/** A row as the statements read and write it: the record's fields under their own names. */
type ApiKeyRow = ApiKeyRecord;

const COLUMNS = `id, name, tenant, owner, role, secret_hash AS secretHash,
  rate_limit_per_minute AS rateLimitPerMinute, created_at AS createdAt, revoked_at AS revokedAt`;

/**
 * API keys as rows of the `api_keys` table (migration 5). Every operation is one statement, so
 * processes sharing the file need no transaction: the insert's conflict check and write, and the
 * revoke's keep-the-first-time update, each run under SQLite's write lock.
 */
export class SqliteApiKeyStore implements ApiKeyStore {
  private readonly statements;
  private closed = false;

  constructor(private readonly db: BetterSqlite3.Database) {
    this.statements = {
      insert: db.prepare<[ApiKeyRow]>(
        `INSERT INTO api_keys (id, name, tenant, owner, role, secret_hash, rate_limit_per_minute,
           created_at, revoked_at)
         VALUES (@id, @name, @tenant, @owner, @role, @secretHash, @rateLimitPerMinute,
           @createdAt, @revokedAt)
         ON CONFLICT (id) DO NOTHING`,
      ),
      get: db.prepare<[string], ApiKeyRow>(`SELECT ${COLUMNS} FROM api_keys WHERE id = ?`),
      listAll: db.prepare<[], ApiKeyRow>(`SELECT ${COLUMNS} FROM api_keys ORDER BY created_at, id`),
      listTenant: db.prepare<[string], ApiKeyRow>(
        `SELECT ${COLUMNS} FROM api_keys WHERE tenant = ? ORDER BY created_at, id`,
      ),
      // COALESCE keeps the first revocation time: revoking twice changes nothing.
      revoke: db.prepare<[number, string], ApiKeyRow>(
        `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?
         RETURNING ${COLUMNS}`,
      ),
    };
  }

  /** Refuses every later call; the backend closes the database itself. */
  markClosed(): void {
    this.closed = true;
  }

  async insert(key: ApiKeyRecord): Promise<void> {
    this.checkOpen();
    const { changes } = this.statements.insert.run(apiKeyRecordOf(key));
    if (changes === 0) {
      throw new SessionHubError('INVALID_INPUT', `An API key with id ${key.id} already exists.`, {
        id: key.id,
      });
    }
  }

  async get(id: string): Promise<ApiKeyRecord | null> {
    this.checkOpen();
    return this.statements.get.get(id) ?? null;
  }

  async list(tenant?: string): Promise<ApiKeyRecord[]> {
    this.checkOpen();
    return tenant === undefined
      ? this.statements.listAll.all()
      : this.statements.listTenant.all(tenant);
  }

  async revoke(id: string, at: number): Promise<ApiKeyRecord | null> {
    this.checkOpen();
    return this.statements.revoke.get(at, id) ?? null;
  }

  private checkOpen(): void {
    if (this.closed || !this.db.open) throw closedError('SQLite API key store');
  }
}
