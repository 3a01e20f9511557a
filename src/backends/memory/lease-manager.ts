import { randomUUID } from 'node:crypto';
import { type Clock, systemClock } from '../../core/clock.js';
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

interface Held {
  holder: string;
  token: string;
  fence: number;
  expiresAt: number;
}

/** Leases in process memory: one holder at a time within this process. */
export class MemoryLeaseManager implements LeaseManager {
  private readonly held = new Map<string, Held>();
  /** Fences outlive their leases, so a resource's fence only ever grows. */
  private readonly fences = new Map<string, number>();
  private readonly clock: Clock;

  constructor(options: { clock?: Clock } = {}) {
    this.clock = options.clock ?? systemClock;
  }

  private live(resource: string): Held | undefined {
    const held = this.held.get(resource);
    return held && held.expiresAt > this.clock.now() ? held : undefined;
  }

  async acquire(resource: string, options: AcquireOptions): Promise<Lease | null> {
    assertLeaseRequest(resource, options);
    if (this.live(resource)) return null;
    const fence = (this.fences.get(resource) ?? 0) + 1;
    this.fences.set(resource, fence);
    const held = {
      holder: options.holder,
      token: randomUUID(),
      fence,
      expiresAt: this.clock.now() + options.ttlMs,
    };
    this.held.set(resource, held);
    return { resource, ...held, ttlMs: options.ttlMs };
  }

  async renew(lease: Lease, ttlMs = lease?.ttlMs): Promise<Lease> {
    assertResource(lease?.resource);
    assertTtl(ttlMs);
    const held = this.live(lease.resource);
    if (!held || held.token !== lease.token) throw leaseLost(lease, 'it expired or was taken over');
    held.expiresAt = this.clock.now() + ttlMs;
    return { ...lease, expiresAt: held.expiresAt, ttlMs };
  }

  async release(lease: Lease): Promise<boolean> {
    assertResource(lease?.resource);
    const held = this.held.get(lease.resource);
    if (!held || held.token !== lease.token) return false;
    this.held.delete(lease.resource);
    return held.expiresAt > this.clock.now();
  }

  async current(resource: string): Promise<LeaseInfo | null> {
    assertResource(resource);
    const held = this.live(resource);
    return held
      ? { resource, holder: held.holder, fence: held.fence, expiresAt: held.expiresAt }
      : null;
  }

  async validate(resource: string, fence: number): Promise<boolean> {
    assertResource(resource);
    return this.live(resource)?.fence === fence;
  }
}
