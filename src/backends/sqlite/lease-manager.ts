import { randomUUID } from 'node:crypto';
import type BetterSqlite3 from 'better-sqlite3';
import { type Clock, systemClock } from '../../core/clock.js';
import { closedError } from '../../core/errors.js';
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

interface AcquireParams {
  resource: string;
  holder: string;
  token: string;
  expiresAt: number;
  now: number;
}

interface CurrentRow {
  holder: string;
  fence: number;
  expiresAt: number;
}

/**
 * Leases as rows of the `leases` table. Every operation is a single SQL statement: a write
 * statement takes SQLite's write lock before it reads anything, so check-and-set cannot
 * interleave with another connection or process on the same file (one waiting on the lock
 * waits out busy_timeout instead of failing). Times come from the injected clock and are passed
 * in as parameters, so every process judges expiry by the clock it was given.
 */
export class SqliteLeaseManager implements LeaseManager {
  private readonly clock: Clock;
  private readonly statements;
  private closed = false;

  constructor(
    private readonly db: BetterSqlite3.Database,
    options: { clock?: Clock } = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.statements = {
      // The fence lives on after release and expiry, so a re-acquire continues from it.
      acquire: db
        .prepare<[AcquireParams], number>(
          `INSERT INTO leases (resource, holder, token, fence, expires_at)
           VALUES (@resource, @holder, @token, 1, @expiresAt)
           ON CONFLICT (resource) DO UPDATE SET
             holder = excluded.holder,
             token = excluded.token,
             fence = leases.fence + 1,
             expires_at = excluded.expires_at
           WHERE leases.token IS NULL OR leases.expires_at <= @now
           RETURNING fence`,
        )
        .pluck(),
      renew: db.prepare<[{ resource: string; token: string; expiresAt: number; now: number }]>(
        `UPDATE leases SET expires_at = @expiresAt
         WHERE resource = @resource AND token = @token AND expires_at > @now`,
      ),
      release: db.prepare<[{ resource: string; token: string; now: number }]>(
        `UPDATE leases SET token = NULL
         WHERE resource = @resource AND token = @token AND expires_at > @now`,
      ),
      current: db.prepare<[{ resource: string; now: number }], CurrentRow>(
        `SELECT holder, fence, expires_at AS expiresAt FROM leases
         WHERE resource = @resource AND token IS NOT NULL AND expires_at > @now`,
      ),
      validate: db
        .prepare<[{ resource: string; fence: number; now: number }], number>(
          `SELECT 1 FROM leases
           WHERE resource = @resource AND fence = @fence AND token IS NOT NULL AND expires_at > @now`,
        )
        .pluck(),
    };
  }

  /** Marks the manager unusable; the backend closes the database itself. */
  markClosed(): void {
    this.closed = true;
  }

  private checkOpen(): void {
    if (this.closed || !this.db.open) {
      throw closedError('SQLite lease manager');
    }
  }

  /** Whole milliseconds, because the columns are integers and expiry compares them exactly. */
  private now(): number {
    return Math.floor(this.clock.now());
  }

  async acquire(resource: string, options: AcquireOptions): Promise<Lease | null> {
    assertLeaseRequest(resource, options);
    this.checkOpen();
    const now = this.now();
    const token = randomUUID();
    const expiresAt = now + options.ttlMs;
    const { holder } = options;
    const fence = this.statements.acquire.get({ resource, holder, token, expiresAt, now });
    if (fence === undefined) return null;
    return { resource, holder, token, fence, expiresAt, ttlMs: options.ttlMs };
  }

  async renew(lease: Lease, ttlMs = lease?.ttlMs): Promise<Lease> {
    assertResource(lease?.resource);
    assertTtl(ttlMs);
    this.checkOpen();
    const now = this.now();
    const expiresAt = now + ttlMs;
    const changed =
      typeof lease.token === 'string' &&
      this.statements.renew.run({ resource: lease.resource, token: lease.token, expiresAt, now })
        .changes > 0;
    if (!changed) throw leaseLost(lease, 'it expired or was taken over');
    return { ...lease, expiresAt, ttlMs };
  }

  async release(lease: Lease): Promise<boolean> {
    assertResource(lease?.resource);
    this.checkOpen();
    if (typeof lease.token !== 'string') return false;
    const { resource, token } = lease;
    return this.statements.release.run({ resource, token, now: this.now() }).changes > 0;
  }

  async current(resource: string): Promise<LeaseInfo | null> {
    assertResource(resource);
    this.checkOpen();
    const row = this.statements.current.get({ resource, now: this.now() });
    return row ? { resource, ...row } : null;
  }

  async validate(resource: string, fence: number): Promise<boolean> {
    assertResource(resource);
    this.checkOpen();
    // SQLite would compare '1' equal to the integer 1; a fence is a number or it is not valid.
    if (!Number.isSafeInteger(fence)) return false;
    return this.statements.validate.get({ resource, fence, now: this.now() }) !== undefined;
  }
}
