import { randomUUID } from 'node:crypto';
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
import { guardRedis } from './failures.js';
import { leaseKeys } from './keys.js';
import { lua, type RedisClient, runScript } from './scripts.js';

/**
 * Added to a lease's ttl for the server-side PEXPIRE of its HASH. That expiry only collects
 * leases nobody released; whether a lease is live is decided by `exp` and the callers' clock.
 * It must never fire while some caller's clock still sees the lease as live, so it leaves room
 * for clocks that are skewed or stopped (a ManualClock) far beyond anything plausible.
 */
const GC_GRACE_MS = 24 * 60 * 60 * 1000;

/**
 * Takes the lease if it is free (no HASH: never taken, released or collected) or expired by the
 * caller's clock. The fence comes from a counter that never expires, so it keeps growing even
 * after the HASH is gone.
 * KEYS: lease, fence. ARGV: now, expiresAt, holder, token, PEXPIRE ms.
 * Returns the new fence, or nil when a live lease holds the resource.
 */
const ACQUIRE = lua(
  'lease_acquire',
  `
local held = redis.call('HMGET', KEYS[1], 'token', 'exp')
if held[1] and tonumber(held[2]) > tonumber(ARGV[1]) then return false end
local fence = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'holder', ARGV[3], 'token', ARGV[4],
  'fence', string.format('%d', fence), 'exp', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return fence
`,
);

/**
 * Extends the lease if the token still holds it and it has not expired.
 * KEYS: lease. ARGV: now, token, expiresAt, PEXPIRE ms. Returns 1 if extended, else 0.
 */
const RENEW = lua(
  'lease_renew',
  `
local held = redis.call('HMGET', KEYS[1], 'token', 'exp')
if held[1] ~= ARGV[2] or tonumber(held[2]) <= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'exp', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`,
);

/**
 * Frees the lease if the token still holds it and it has not expired; the fence counter stays.
 * KEYS: lease. ARGV: now, token. Returns 1 if released, else 0.
 */
const RELEASE = lua(
  'lease_release',
  `
local held = redis.call('HMGET', KEYS[1], 'token', 'exp')
if held[1] ~= ARGV[2] or tonumber(held[2]) <= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
return 1
`,
);

/**
 * Leases in Redis (standalone or Cluster): per resource a HASH holding the current lease and a
 * counter holding its fence, under one hash tag. Acquire, renew and release are Lua scripts, so
 * each check-and-write is atomic; current and validate are a single HMGET. Expiry is decided by
 * the injected clock, passed into each script, never by the server's clock. See docs/redis.md.
 */
export class RedisLeaseManager implements LeaseManager {
  private readonly client: RedisClient;
  private readonly prefix: string;
  private readonly clock: Clock;
  private closed = false;

  constructor(client: RedisClient, options: { prefix: string; clock?: Clock }) {
    this.client = client;
    this.prefix = options.prefix;
    this.clock = options.clock ?? systemClock;
  }

  async acquire(resource: string, options: AcquireOptions): Promise<Lease | null> {
    assertLeaseRequest(resource, options);
    this.assertOpen();
    const keys = leaseKeys(this.prefix, resource);
    const token = randomUUID();
    const now = this.now();
    const expiresAt = now + options.ttlMs;
    const fence = await this.guard(
      'acquire',
      runScript(
        this.client,
        ACQUIRE,
        [keys.lease, keys.fence],
        [now, expiresAt, options.holder, token, options.ttlMs + GC_GRACE_MS],
      ),
    );
    if (fence === null) return null;
    return {
      resource,
      holder: options.holder,
      token,
      fence: Number(fence),
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
    const renewed = await this.guard(
      'renew',
      runScript(
        this.client,
        RENEW,
        [leaseKeys(this.prefix, lease.resource).lease],
        [now, lease.token, expiresAt, ttlMs + GC_GRACE_MS],
      ),
    );
    if (renewed !== 1) throw leaseLost(lease, 'it expired or was taken over');
    return { ...lease, expiresAt, ttlMs };
  }

  async release(lease: Lease): Promise<boolean> {
    assertResource(lease?.resource);
    this.assertOpen();
    if (!isToken(lease.token)) return false;
    const released = await this.guard(
      'release',
      runScript(
        this.client,
        RELEASE,
        [leaseKeys(this.prefix, lease.resource).lease],
        [this.now(), lease.token],
      ),
    );
    return released === 1;
  }

  async current(resource: string): Promise<LeaseInfo | null> {
    assertResource(resource);
    this.assertOpen();
    const held = await this.live(resource, 'current');
    return held && { resource, holder: held.holder, fence: held.fence, expiresAt: held.expiresAt };
  }

  async validate(resource: string, fence: number): Promise<boolean> {
    assertResource(resource);
    this.assertOpen();
    return (await this.live(resource, 'validate'))?.fence === fence;
  }

  /** Refuses every later call; the connection itself belongs to the backend. */
  close(): void {
    this.closed = true;
  }

  /** The resource's lease if it is live by our clock; one read, so the fields belong together. */
  private async live(
    resource: string,
    operation: string,
  ): Promise<{ holder: string; fence: number; expiresAt: number } | null> {
    const [holder, token, fence, exp] = await this.guard(
      operation,
      this.client.hmget(leaseKeys(this.prefix, resource).lease, 'holder', 'token', 'fence', 'exp'),
    );
    if (holder == null || token == null || fence == null || exp == null) return null;
    const expiresAt = Number(exp);
    return expiresAt > this.now() ? { holder, fence: Number(fence), expiresAt } : null;
  }

  /** Whole milliseconds, so the scripts compare and store integers. */
  private now(): number {
    return Math.floor(this.clock.now());
  }

  private assertOpen(): void {
    if (this.closed) throw closedError('Redis lease manager');
  }

  private guard<T>(operation: string, pending: Promise<T>): Promise<T> {
    return guardRedis(`Redis lease ${operation}()`, operation, pending);
  }
}

function isToken(token: unknown): token is string {
  return typeof token === 'string' && token.length > 0;
}
