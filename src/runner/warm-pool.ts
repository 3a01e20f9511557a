import type { LiveSession } from './live-session.js';
import type { ProcessCounter } from './turn-usage.js';

/** The timers the pool's idle timeouts use; tests pass their own to fire them by hand. */
export interface PoolTimers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realPoolTimers: PoolTimers = {
  setTimeout: (callback, ms) => {
    const handle = setTimeout(callback, ms);
    // An idle warm session alone should not keep the process alive.
    handle.unref();
    return handle;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** A live process parked between turns, with what is needed to tell whether it is still good. */
export interface WarmSession {
  live: LiveSession;
  tenant: string;
  /** Fingerprint of the options it was started with. */
  optionsKey: string;
  /** The lease fence of its last turn: the next turn's fence must be exactly one more. */
  fence: number;
  /** The session's turn count after its last turn; another writer's turn would change it. */
  turns: number;
  /** The process's counter after its last turn. */
  counter: ProcessCounter;
  /** What the process was started with as its budget, and its counter then. */
  budgetUsd: number | undefined;
  counterAtStart: ProcessCounter;
}

export interface WarmPoolOptions {
  maxSessions: number;
  idleMs: number;
  timers?: PoolTimers;
  /** Called for every session the pool lets go (idle, evicted, closed); it must stop the process. */
  onEvict: (sessionId: string, warm: WarmSession, reason: 'idle' | 'evicted' | 'closed') => void;
}

/**
 * Warm sessions by session id, least recently used first. A session is taken out while a turn
 * runs on it and put back afterwards; the pool stops the oldest when it is full and any that
 * stayed idle too long.
 */
export class WarmPool {
  private readonly sessions = new Map<string, { warm: WarmSession; timer: unknown }>();
  private readonly timers: PoolTimers;

  constructor(private readonly options: WarmPoolOptions) {
    this.timers = options.timers ?? realPoolTimers;
  }

  get size(): number {
    return this.sessions.size;
  }

  has(sessionId: string): boolean {
    return this.sessions.has(sessionId);
  }

  /** Takes a session out of the pool for a turn; undefined if it is not warm. */
  take(sessionId: string): WarmSession | undefined {
    const slot = this.sessions.get(sessionId);
    if (!slot) return undefined;
    this.sessions.delete(sessionId);
    this.timers.clearTimeout(slot.timer);
    return slot.warm;
  }

  /** Parks a session after a turn, as the most recently used; evicts the oldest beyond the limit. */
  put(sessionId: string, warm: WarmSession): void {
    if (this.options.maxSessions <= 0 || warm.live.isFinished) {
      this.options.onEvict(sessionId, warm, 'evicted');
      return;
    }
    const previous = this.take(sessionId);
    if (previous && previous !== warm) this.options.onEvict(sessionId, previous, 'evicted');
    const timer = this.timers.setTimeout(() => this.expire(sessionId, warm), this.options.idleMs);
    this.sessions.set(sessionId, { warm, timer });
    while (this.sessions.size > this.options.maxSessions) {
      const oldest = this.sessions.keys().next().value as string;
      const slot = this.take(oldest);
      if (slot) this.options.onEvict(oldest, slot, 'evicted');
    }
  }

  /** Stops every warm session (on hub close). */
  clear(): void {
    for (const sessionId of [...this.sessions.keys()]) {
      const warm = this.take(sessionId);
      if (warm) this.options.onEvict(sessionId, warm, 'closed');
    }
  }

  /** Stops one session if it is warm (deleted, expired, archived). */
  drop(sessionId: string): void {
    const warm = this.take(sessionId);
    if (warm) this.options.onEvict(sessionId, warm, 'closed');
  }

  private expire(sessionId: string, warm: WarmSession): void {
    const slot = this.sessions.get(sessionId);
    if (slot?.warm !== warm) return;
    this.take(sessionId);
    this.options.onEvict(sessionId, warm, 'idle');
  }
}
