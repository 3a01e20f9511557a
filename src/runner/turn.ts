import type { SDKMessage, SDKResultMessage } from '@anthropic-ai/claude-agent-sdk';
import type { UsageFigures } from '../core/daily-usage.js';
import type { FailureKind } from '../core/retry.js';
import type { SessionRecord } from '../core/session-record.js';

/** sessionhub's own events in a turn's stream, beside the SDK's messages. */
export interface TurnRetryEvent {
  type: 'sessionhub_retry';
  /** The attempt that failed (1 = the first). */
  attempt: number;
  /** How long the runner waits before the next attempt. */
  delayMs: number;
  reason: FailureKind;
  error: string;
  session_id: string;
}

export interface TurnRepairEvent {
  type: 'sessionhub_mirror_repair';
  /** Entries copied from the local transcript into the store, per transcript. */
  repaired: Array<{ subpath: string | null; copied: number }>;
  session_id: string;
}

export type TurnEvent = SDKMessage | TurnRetryEvent | TurnRepairEvent;

/**
 * How a turn ended:
 * - `completed`: the model answered;
 * - `stopped`: a limit the SDK enforces ended it early (the budget, maxTurns); the session is fine;
 * - `interrupted`: `turn.interrupt()` stopped it;
 * - `failed`: the model API kept failing or the SDK process died; the session is marked
 *   `failed` and its transcript stays resumable.
 */
export type TurnStatus = 'completed' | 'stopped' | 'interrupted' | 'failed';

export interface TurnOutcome {
  sessionId: string;
  status: TurnStatus;
  /** The SDK's result message of the last attempt, if it got that far. */
  result: SDKResultMessage | null;
  /** The answer's text on success; '' otherwise. */
  text: string;
  /** Why it failed or stopped. */
  error: { kind: FailureKind; message: string } | null;
  /** Attempts made, retries included. */
  attempts: number;
  /** Whether the (last) attempt ran on a warm process instead of starting one. */
  warm: boolean;
  /** The session's record after the turn: usage, cost, status. */
  session: SessionRecord;
  /** What this turn added to the session's counted figures (its cost, tokens and turns). */
  spent: UsageFigures;
}

/**
 * A running turn: iterate it for the SDK's messages as they come (plus sessionhub's retry and
 * repair events), and await `done()` for the outcome and the updated record. It runs whether or
 * not anyone iterates; the messages wait in memory until read. A refusal before the turn starts
 * (not found, expired, busy, over a limit) rejects both.
 */
export class Turn implements AsyncIterable<TurnEvent> {
  private readonly events: TurnEvent[] = [];
  private wake: (() => void) | null = null;
  private finished = false;
  private failure: unknown = null;
  private readonly outcome: Promise<TurnOutcome>;
  private id: string | undefined;
  private interruptHandler: (() => Promise<void>) | null = null;
  private interruptRequested = false;
  private iterated = false;

  constructor(sessionId: string | undefined, run: (turn: TurnControl) => Promise<TurnOutcome>) {
    this.id = sessionId;
    const control: TurnControl = {
      emit: (event) => {
        this.events.push(event);
        this.signal();
      },
      setSessionId: (id) => {
        this.id = id;
      },
      onInterrupt: (handler) => {
        this.interruptHandler = handler;
        if (handler && this.interruptRequested) void handler().catch(() => {});
      },
      get interruptRequested() {
        return turnInterrupted();
      },
      interrupt: () => this.interrupt(),
    };
    const turnInterrupted = () => this.interruptRequested;
    this.outcome = run(control).then(
      (outcome) => {
        this.finish(null);
        return outcome;
      },
      (error: unknown) => {
        this.finish(error);
        throw error;
      },
    );
    // The outcome is also reported through iteration; an unobserved rejection is not a crash.
    this.outcome.catch(() => {});
  }

  /** The session the turn runs on; undefined for a fork until the fork exists. */
  get sessionId(): string | undefined {
    return this.id;
  }

  /** Resolves when the turn is over, with its outcome. */
  done(): Promise<TurnOutcome> {
    return this.outcome;
  }

  /** Stops the running turn; it ends as `interrupted`, and its transcript stays resumable. */
  async interrupt(): Promise<void> {
    this.interruptRequested = true;
    await this.interruptHandler?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<TurnEvent> {
    if (this.iterated) throw new Error('A turn can be iterated once.');
    this.iterated = true;
    for (;;) {
      const event = this.events.shift();
      if (event !== undefined) {
        yield event;
        continue;
      }
      if (this.finished) {
        if (this.failure !== null) throw this.failure;
        return;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  private finish(error: unknown): void {
    this.finished = true;
    this.failure = error;
    this.signal();
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}

/** What the runner drives a Turn with. */
export interface TurnControl {
  emit(event: TurnEvent): void;
  setSessionId(sessionId: string): void;
  /** The handler `turn.interrupt()` calls while an attempt runs (null between attempts). */
  onInterrupt(handler: (() => Promise<void>) | null): void;
  readonly interruptRequested: boolean;
  /** What `turn.interrupt()` does, for whoever holds only the control. */
  interrupt(): Promise<void>;
}
