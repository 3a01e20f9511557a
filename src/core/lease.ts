import { SessionHubError } from './errors.js';

/**
 * A lease: the right of one holder to act on one resource (in sessionhub: to run a turn on a
 * session) until `expiresAt`. Leases are how one turn at a time per session holds across
 * processes and hosts.
 */
export interface Lease {
  /** What the lease is on; opaque to the lease manager. */
  resource: string;
  /** Who holds it (a process or request id), for diagnostics. */
  holder: string;
  /** A random secret only the holder knows: renew and release must present it. */
  token: string;
  /**
   * The fencing token: it grows by one every time the resource is acquired. A writer that
   * records the highest fence it has seen can refuse a late write from a holder whose lease
   * expired and was taken over (check it with `LeaseManager.validate`).
   */
  fence: number;
  /** Epoch ms, on the lease manager's clock, after which the lease is free to take. */
  expiresAt: number;
  /** The duration asked for; renew() extends by it again unless told otherwise. */
  ttlMs: number;
}

/** What a lease manager tells about a resource's current lease (never the secret token). */
export interface LeaseInfo {
  resource: string;
  holder: string;
  fence: number;
  expiresAt: number;
}

export interface AcquireOptions {
  holder: string;
  ttlMs: number;
}

/**
 * One holder at a time per resource. Every backend provides one; all of them read time from the
 * injected clock, so tests move time instead of waiting for it.
 */
export interface LeaseManager {
  /** Takes the lease if it is free or expired; null when another unexpired lease holds it. */
  acquire(resource: string, options: AcquireOptions): Promise<Lease | null>;
  /**
   * Extends a lease still held to now + ttlMs (default: its own ttlMs). Throws LEASE_LOST if it
   * expired or another holder took over.
   */
  renew(lease: Lease, ttlMs?: number): Promise<Lease>;
  /** Gives the lease up if `lease` still holds it; false (and nothing changed) otherwise. */
  release(lease: Lease): Promise<boolean>;
  /** The unexpired lease on a resource, or null. */
  current(resource: string): Promise<LeaseInfo | null>;
  /** True while `fence` belongs to the resource's current, unexpired lease. */
  validate(resource: string, fence: number): Promise<boolean>;
}

/** Longest lease a caller may ask for: a turn that needs more should renew. */
export const MAX_LEASE_TTL_MS = 24 * 60 * 60 * 1000;

export function assertLeaseRequest(resource: unknown, options: AcquireOptions): void {
  assertResource(resource);
  const holder: unknown = options?.holder;
  if (typeof holder !== 'string' || !isStorableName(holder)) {
    throw new SessionHubError(
      'INVALID_OPTION',
      `A lease needs a holder name: a non-empty, well-formed string of at most ${MAX_RESOURCE_BYTES} UTF-8 bytes without U+0000.`,
      { holder: typeof holder === 'string' ? holder.slice(0, 100) : holder },
    );
  }
  assertTtl(options.ttlMs);
}

/** Whether every backend can store and index `name` as it is (PostgreSQL text refuses NUL). */
function isStorableName(name: string): boolean {
  return (
    name.length > 0 &&
    name.isWellFormed() &&
    !name.includes('\u0000') &&
    new TextEncoder().encode(name).length <= MAX_RESOURCE_BYTES
  );
}

/** Longest resource name, in UTF-8 bytes: every backend can index a key this long. */
export const MAX_RESOURCE_BYTES = 1024;

export function assertResource(resource: unknown): asserts resource is string {
  if (typeof resource !== 'string' || !isStorableName(resource)) {
    throw new SessionHubError(
      'INVALID_OPTION',
      `A lease resource must be a non-empty, well-formed string of at most ${MAX_RESOURCE_BYTES} UTF-8 bytes without U+0000 (e.g. the session id).`,
      { resource: typeof resource === 'string' ? resource.slice(0, 100) : resource },
    );
  }
}

export function assertTtl(ttlMs: unknown): asserts ttlMs is number {
  if (
    typeof ttlMs !== 'number' ||
    !Number.isInteger(ttlMs) ||
    ttlMs <= 0 ||
    ttlMs > MAX_LEASE_TTL_MS
  ) {
    throw new SessionHubError(
      'INVALID_OPTION',
      `A lease ttlMs must be a whole number of milliseconds from 1 to ${MAX_LEASE_TTL_MS}; renew long leases instead.`,
      { ttlMs },
    );
  }
}

export function leaseLost(lease: Lease, why: string): SessionHubError {
  return new SessionHubError(
    'LEASE_LOST',
    `The lease on ${lease.resource} (fence ${lease.fence}) is no longer held: ${why}. Stop writing, then acquire it again.`,
    { resource: lease.resource, fence: lease.fence },
  );
}
