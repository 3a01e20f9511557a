/** Where sessionhub gets the time. Injected everywhere so tests never sleep. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that only moves when told to; for tests. */
export class ManualClock implements Clock {
  private current: number;
  constructor(start = Date.UTC(2026, 0, 1)) {
    this.current = start;
  }
  now(): number {
    return this.current;
  }
  advance(ms: number): void {
    this.current += ms;
  }
  set(ms: number): void {
    this.current = ms;
  }
}

/**
 * The next modification time for a session: integer milliseconds, strictly after `previous`.
 * Strictly increasing so that the SDK's staleness check (summary mtime < listSessions mtime)
 * never mistakes two appends in the same millisecond for one.
 */
export function nextMtime(now: number, previous: number | undefined): number {
  const floor = Math.floor(now);
  return previous !== undefined && previous >= floor ? previous + 1 : floor;
}
