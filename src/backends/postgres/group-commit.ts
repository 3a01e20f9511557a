import type { SessionRef } from '../../core/session-key.js';
import type { BatchRow, UsageCharge } from './statements.js';

/** One session's part of a group: a main-transcript append already folded by its caller. */
export interface GroupPart {
  ref: SessionRef;
  /** The version the summary was folded from ('0' = no main transcript). */
  version: string;
  /** The session row, or null when not known. */
  id: string | null;
  /** JSON text of the folded summary data. */
  summary: string;
  /** JSON text of the folded usage state, folded from the same version; null = unchanged. */
  usage: string | null;
  /** What to add to the owner's day if the session is registered; null = nothing. */
  charge: UsageCharge | null;
  rows: BatchRow[];
}

/** The session row as a part wrote it; undefined when the part lost its race and wrote nothing. */
export type GroupOutcome = { id: string; version: string } | undefined;

export interface GroupCommitOptions {
  /** Writes every part in one statement; outcomes in the order of `parts`. */
  writeGroup(parts: GroupPart[]): Promise<GroupOutcome[]>;
  /** Writes one part on its own, as it would be written without grouping. */
  writeOne(part: GroupPart): Promise<GroupOutcome>;
  /** Group statements in flight at once. */
  maxInFlight: number;
  /** Parts in one group at most. */
  maxParts: number;
  /** Entry characters in one group at most (a single larger part still goes, alone). */
  maxChars: number;
}

interface Job {
  part: GroupPart;
  chars: number;
  resolve(outcome: GroupOutcome): void;
  reject(error: unknown): void;
}

/**
 * True when a failed group statement certainly rolled back for a reason that may lie in one part
 * only (a constraint, a trigger, a deadlock, bad data): each part is then worth retrying on its
 * own. Lost or broken connections (no SQLSTATE, class 08) and operator intervention (class 57:
 * shutdown, termination, cancel) fail every part instead: a retry could repeat a write that did
 * commit before the connection went, and the single-part path would not retry either.
 */
function isolatable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return (
    typeof code === 'string' &&
    code.length === 5 &&
    !code.startsWith('08') &&
    !code.startsWith('57')
  );
}

function compareIds(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return 1;
  if (b === null) return -1;
  return a.length - b.length || (a < b ? -1 : 1);
}

/**
 * Group commit for main-transcript appends. A part submitted when nothing is in flight goes out at
 * once, on its own, in the single-session statement. Parts submitted while statements are in
 * flight wait for the end of the current turn of the event loop (setImmediate, never a timer) if a
 * statement slot is free, or else for a statement to end; then the waiting parts go out together,
 * one round trip and one commit for all of them.
 *
 * The caller keeps at most one part per session in flight, so a group never holds a session
 * twice and each session's parts are written in call order. When a group statement fails on
 * something one part may have caused, nothing of the group was written (one statement, one
 * transaction) and each part is retried on its own, so only the part at fault fails.
 */
export class GroupCommit {
  private readonly options: GroupCommitOptions;
  private queue: Job[] = [];
  private inFlight = 0;
  /** Parts in the group statements in flight. */
  private inFlightParts = 0;
  private scheduled = false;

  constructor(options: GroupCommitOptions) {
    this.options = options;
  }

  submit(part: GroupPart): Promise<GroupOutcome> {
    return new Promise<GroupOutcome>((resolve, reject) => {
      let chars = 0;
      for (const row of part.rows) chars += row.line.length;
      this.queue.push({ part, chars, resolve, reject });
      // Nothing in flight: nothing to wait for either.
      if (this.inFlight === 0 && !this.scheduled) this.flush();
      else this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.queue.length === 0 || this.inFlight >= this.options.maxInFlight) {
      return;
    }
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const { maxInFlight, maxParts, maxChars } = this.options;
    while (this.inFlight < maxInFlight && this.queue.length > 0) {
      // An even share of the parts waiting or in flight, so that the statements in flight carry
      // groups of about the same size and the database works on them side by side, instead of
      // one large group and a trickle of small ones.
      const share = Math.ceil((this.queue.length + this.inFlightParts) / maxInFlight);
      const most = Math.min(maxParts, share);
      let take = 0;
      let chars = 0;
      while (take < this.queue.length && take < most) {
        const next = (this.queue[take] as Job).chars;
        if (take > 0 && chars + next > maxChars) break;
        chars += next;
        take++;
      }
      const group = this.queue.splice(0, take);
      this.inFlight++;
      this.inFlightParts += take;
      void this.send(group).finally(() => {
        this.inFlight--;
        this.inFlightParts -= take;
        this.schedule();
      });
    }
  }

  private async send(group: Job[]): Promise<void> {
    if (group.length === 1) {
      const job = group[0] as Job;
      await this.options.writeOne(job.part).then(job.resolve, job.reject);
      return;
    }
    // Rows shared with another group (from another process) are then locked in the same order.
    group.sort((a, b) => compareIds(a.part.id, b.part.id));
    let outcomes: GroupOutcome[];
    try {
      outcomes = await this.options.writeGroup(group.map((job) => job.part));
    } catch (error) {
      if (!isolatable(error)) {
        for (const job of group) job.reject(error);
        return;
      }
      await Promise.all(
        group.map((job) => this.options.writeOne(job.part).then(job.resolve, job.reject)),
      );
      return;
    }
    group.forEach((job, i) => {
      job.resolve(outcomes[i]);
    });
  }
}
