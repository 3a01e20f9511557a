import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import { type Clock, systemClock } from '../../core/clock.js';
import { closedError, SessionHubError } from '../../core/errors.js';
import {
  type AcquireOptions,
  assertLeaseRequest,
  assertResource,
  assertTtl,
  type Lease,
  type LeaseInfo,
  type LeaseManager,
  leaseLost,
} from '../../core/lease.js';
import { prepared, quoteIdentifier, type Statement } from './sql.js';

/** The primary key is a btree entry (at most about 2.7 kB): longer names are refused up front. */

/**
 * Every statement the lease manager runs, for one schema. Each is a single statement, so each
 * operation is atomic on its own: no transaction, no explicit lock, one round trip. `$now` is
 * always the caller's clock.
 */
class LeaseStatements {
  /**
   * Takes a free, released or expired lease. On a conflict the row is locked and the WHERE is
   * checked against its newest committed version, so of concurrent acquirers exactly one gets a
   * row back; the others (and anyone facing a live lease) get none.
   *   $1 resource, $2 holder, $3 token, $4 now, $5 expiresAt
   */
  readonly acquire: Statement;
  /** $1 resource, $2 token, $3 now, $4 new expiresAt. A row back means it was still held. */
  readonly renew: Statement;
  /** $1 resource, $2 token, $3 now. Keeps the row, for its fence. */
  readonly release: Statement;
  /** $1 resource, $2 now. */
  readonly current: Statement;
  /** $1 resource, $2 fence, $3 now. */
  readonly validate: Statement;

  constructor(schema: string) {
    const leases = `${quoteIdentifier(schema)}.leases`;
    this.acquire = prepared(`
      INSERT INTO ${leases} AS l (resource, holder, token, fence, expires_at)
      VALUES ($1, $2, $3, 1, $5::bigint)
      ON CONFLICT (resource) DO UPDATE SET
        holder = EXCLUDED.holder,
        token = EXCLUDED.token,
        fence = l.fence + 1,
        expires_at = EXCLUDED.expires_at
      WHERE l.token IS NULL OR l.expires_at <= $4::bigint
      RETURNING l.fence`);
    this.renew = prepared(`
      UPDATE ${leases} SET expires_at = $4::bigint
      WHERE resource = $1 AND token = $2 AND expires_at > $3::bigint
      RETURNING fence`);
    this.release = prepared(`
      UPDATE ${leases} SET token = NULL
      WHERE resource = $1 AND token = $2 AND expires_at > $3::bigint
      RETURNING fence`);
    this.current = prepared(`
      SELECT holder, fence, expires_at FROM ${leases}
      WHERE resource = $1 AND token IS NOT NULL AND expires_at > $2::bigint`);
    this.validate = prepared(`
      SELECT fence FROM ${leases}
      WHERE resource = $1 AND fence = $2::bigint
        AND token IS NOT NULL AND expires_at > $3::bigint`);
  }
}

/**
 * Leases in PostgreSQL: one row per resource in `leases`, shared by every process and host on the
 * schema. Expiry is decided by the injected clock, passed into each statement, so hosts agree as
 * far as their clocks do and tests move a ManualClock instead of waiting.
 */
export class PostgresLeaseManager implements LeaseManager {
  private readonly pool: Pool;
  private readonly clock: Clock;
  private readonly sql: LeaseStatements;
  private closed = false;

  /** Expects a schema already migrated (see migratePostgres). */
  constructor(options: { pool: Pool; schema: string; clock?: Clock }) {
    this.pool = options.pool;
    this.clock = options.clock ?? systemClock;
    this.sql = new LeaseStatements(options.schema);
  }

  async acquire(resource: string, options: AcquireOptions): Promise<Lease | null> {
    assertLeaseRequest(resource, options);
    this.assertOpen();
    const token = randomUUID();
    const now = this.now();
    const expiresAt = now + options.ttlMs;
    const { rows } = await this.run<{ fence: string }>('acquire', this.sql.acquire, [
      resource,
      options.holder,
      token,
      now,
      expiresAt,
    ]);
    const row = rows[0];
    if (!row) return null;
    return {
      resource,
      holder: options.holder,
      token,
      fence: Number(row.fence),
      expiresAt,
      ttlMs: options.ttlMs,
    };
  }

  async renew(lease: Lease, ttlMs = lease?.ttlMs): Promise<Lease> {
    assertResource(lease?.resource);
    assertTtl(ttlMs);
    this.assertOpen();
    if (!isToken(lease.token)) throw leaseLost(lease, 'it carries no valid token');
    const now = this.now();
    const expiresAt = now + ttlMs;
    const { rows } = await this.run('renew', this.sql.renew, [
      lease.resource,
      lease.token,
      now,
      expiresAt,
    ]);
    if (rows.length === 0) throw leaseLost(lease, 'it expired or was taken over');
    return { ...lease, expiresAt, ttlMs };
  }

  async release(lease: Lease): Promise<boolean> {
    assertResource(lease?.resource);
    this.assertOpen();
    if (!isToken(lease.token)) return false;
    const { rows } = await this.run('release', this.sql.release, [
      lease.resource,
      lease.token,
      this.now(),
    ]);
    return rows.length > 0;
  }

  async current(resource: string): Promise<LeaseInfo | null> {
    assertResource(resource);
    this.assertOpen();
    const { rows } = await this.run<{ holder: string; fence: string; expires_at: string }>(
      'current',
      this.sql.current,
      [resource, this.now()],
    );
    const row = rows[0];
    if (!row) return null;
    return {
      resource,
      holder: row.holder,
      fence: Number(row.fence),
      expiresAt: Number(row.expires_at),
    };
  }

  async validate(resource: string, fence: number): Promise<boolean> {
    assertResource(resource);
    this.assertOpen();
    // A fence is a positive whole number; anything else could never match, and would fail the cast.
    if (!Number.isSafeInteger(fence) || fence < 1) return false;
    const { rows } = await this.run('validate', this.sql.validate, [resource, fence, this.now()]);
    return rows.length > 0;
  }

  /** Refuses every later call; the pool itself belongs to the backend. */
  close(): void {
    this.closed = true;
  }

  /** Whole milliseconds: the columns are bigint, and a custom clock may return fractions. */
  private now(): number {
    return Math.floor(this.clock.now());
  }

  private assertOpen(): void {
    if (this.closed) {
      throw closedError('PostgreSQL lease manager');
    }
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
        `PostgreSQL lease ${operation}() failed: ${reason}. Check that the server is up and reachable and that the user may read and write the schema's leases table.`,
        { operation },
        { cause: error },
      );
    }
  }
}

function isToken(token: unknown): token is string {
  return typeof token === 'string' && token.length > 0;
}
