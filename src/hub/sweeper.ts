import type { SessionRegistry, SweptSession } from '../backends/registry.js';
import type { Clock } from '../core/clock.js';
import { SessionHubError } from '../core/errors.js';
import type { Lease, LeaseManager } from '../core/lease.js';

/** The timer functions background sweeping uses; tests pass their own to fire it by hand. */
export interface Timers {
  setInterval(callback: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

const realTimers: Timers = {
  setInterval: (callback, ms) => {
    const handle = setInterval(callback, ms);
    // Sweeping alone should never keep a process alive.
    handle.unref();
    return handle;
  },
  clearInterval: (handle) => clearInterval(handle as NodeJS.Timeout),
};

export interface SweepOptions {
  /** Sessions per batch (default: the hub's, 1,000). */
  batchSize?: number;
  /** Stop after this many batches of each kind (default: until nothing is due). */
  maxBatches?: number;
  /**
   * Take the backend's sweep lease first (default true), so that concurrent sweeps do not do the
   * same work twice. Without it a sweep is still correct: each session is expired and purged once.
   */
  exclusive?: boolean;
  /**
   * Keep the sweep lease until this long after the sweep began instead of releasing it, so that
   * no hub on the backend sweeps again sooner (background sweeping: once per interval across
   * every hub, however many there are).
   */
  holdMs?: number;
}

export interface SweepResult {
  /** False when another hub held the sweep lease and this call did nothing. */
  ran: boolean;
  /** Sessions this call marked expired. */
  expired: number;
  /** Sessions this call deleted for good, with their transcripts. */
  purged: number;
  /** The time the sweep judged deadlines by. */
  now: number;
}

/** The lease that keeps sweeps of one backend from overlapping. */
export const SWEEP_LEASE = 'sweep';
const SWEEP_LEASE_MS = 60_000;
const DEFAULT_BATCH = 1000;

/** Expires and purges due sessions in batches, now or every interval. */
export class Sweeper {
  private handle: unknown = null;
  private running: Promise<unknown> | null = null;
  private readonly batchSize: number;
  private readonly timers: Timers;

  constructor(
    private readonly options: {
      registry: SessionRegistry;
      leases: LeaseManager;
      clock: Clock;
      holder: string;
      batchSize?: number;
      timers?: Timers;
      onError?: (error: unknown) => void;
      /** Told of every sweep that ended, whether it ran or found the lease taken. */
      onSweep?: (result: SweepResult) => void;
      /** Told of each batch of sessions a sweep expired or purged, before the next batch. */
      onSwept?: (action: 'expired' | 'purged', sessions: SweptSession[]) => Promise<void>;
    },
  ) {
    assertCount(options.batchSize, 'sweep batchSize');
    this.batchSize = options.batchSize ?? DEFAULT_BATCH;
    this.timers = options.timers ?? realTimers;
  }

  async sweep(options: SweepOptions = {}): Promise<SweepResult> {
    assertCount(options.batchSize, 'batchSize');
    assertCount(options.maxBatches, 'maxBatches');
    const { registry, leases, clock, holder } = this.options;
    const batchSize = options.batchSize ?? this.batchSize;
    const maxBatches = options.maxBatches ?? Number.POSITIVE_INFINITY;
    const now = clock.now();
    let lease: Lease | null = null;
    if (options.exclusive !== false) {
      lease = await leases.acquire(SWEEP_LEASE, { holder, ttlMs: SWEEP_LEASE_MS });
      if (!lease) {
        const skipped = { ran: false, expired: 0, purged: 0, now };
        this.options.onSweep?.(skipped);
        return skipped;
      }
    }
    const result: SweepResult = { ran: true, expired: 0, purged: 0, now };
    try {
      // Each batch is its own atomic step; the lease is renewed between them so that a long sweep
      // keeps it, and a sweeper that lost it (it stalled past the TTL) stops instead of overlapping.
      // Purging first deletes the sessions already past their retention without updating them
      // first; expiring then marks the rest, and a last purge takes those whose retention is
      // already over too (on backends that only purge what is marked expired).
      const batches = async (action: 'expired' | 'purged') => {
        let done = 0;
        for (let batch = 0; batch < maxBatches; batch++) {
          const swept =
            action === 'expired'
              ? await registry.expireDue(now, batchSize)
              : await registry.purgeDue(now, batchSize);
          done += swept.length;
          if (swept.length > 0) await this.options.onSwept?.(action, swept);
          if (swept.length < batchSize) break;
          if (lease) lease = await leases.renew(lease);
        }
        return done;
      };
      result.purged += await batches('purged');
      result.expired += await batches('expired');
      if (result.expired > 0) result.purged += await batches('purged');
    } finally {
      if (lease) await this.letGo(lease, options.holdMs, now);
    }
    this.options.onSweep?.(result);
    return result;
  }

  /** Releases the sweep lease, or keeps it until `holdMs` after `startedAt`. */
  private async letGo(lease: Lease, holdMs: number | undefined, startedAt: number): Promise<void> {
    const { leases, clock } = this.options;
    const left = holdMs === undefined ? 0 : startedAt + holdMs - clock.now();
    if (left > 0) {
      // Less a little, so this hub's own next tick (one interval later) finds it free.
      const keepMs = Math.floor(left * 0.9);
      if (
        keepMs > 0 &&
        (await leases.renew(lease, keepMs).then(
          () => true,
          () => false,
        ))
      )
        return;
    }
    await leases.release(lease).catch(() => false);
  }

  /**
   * Sweeps every `intervalMs`; a tick while the previous sweep still runs is skipped. Across hubs
   * on one backend, at most one sweep runs per interval: the one that sweeps holds the lease for
   * most of the interval, and the others' ticks find it taken.
   */
  start(intervalMs: number): void {
    assertCount(intervalMs, 'the sweep interval (ms)');
    this.stop();
    this.handle = this.timers.setInterval(() => {
      if (this.running) return;
      this.running = this.sweep({ holdMs: intervalMs })
        .catch((error: unknown) => this.options.onError?.(error))
        .finally(() => {
          this.running = null;
        });
    }, intervalMs);
  }

  stop(): void {
    if (this.handle !== null) this.timers.clearInterval(this.handle);
    this.handle = null;
  }

  async stopAndWait(): Promise<void> {
    this.stop();
    await this.running;
  }
}

function assertCount(value: number | undefined, what: string): void {
  if (value === undefined || (Number.isInteger(value) && value > 0)) return;
  throw new SessionHubError('INVALID_OPTION', `${what} must be a positive whole number.`, {
    [what]: value,
  });
}
