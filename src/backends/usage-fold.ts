import { isChargeable } from '../core/daily-usage.js';
import type { TranscriptEntry } from '../core/entries.js';
import {
  cloneUsageState,
  emptyUsageState,
  foldUsageInPlace,
  TURN_USAGE_ENTRY,
  type UsageDelta,
  type UsageState,
} from '../core/usage.js';
import { decodeUsageState, encodeUsageState } from '../core/usage-codec.js';

/**
 * Usage folding as every store does it inside a main-transcript append: the entries the append
 * actually inserted (duplicates dropped, so a retried append adds nothing) folded onto the state
 * stored with the session, written back in the same transaction, statement or script.
 */

/** Only these entries move usage; an append of anything else skips the fold and its write. */
export function touchesUsage(entries: readonly TranscriptEntry[]): boolean {
  for (const entry of entries) {
    if (
      entry.type === 'assistant' ||
      entry.type === 'cost-state' ||
      entry.type === TURN_USAGE_ENTRY
    ) {
      return true;
    }
  }
  return false;
}

export interface FoldedUsage {
  state: UsageState;
  delta: UsageDelta;
  /** Whether the delta changes a figure the owner's daily usage holds (a turn was counted). */
  chargeable: boolean;
}

/**
 * Folds `inserted` onto `previous`: a state, its stored text (see usage-codec.ts; decoded here
 * and folded in place), or null for a session with nothing folded yet. `previous` itself is never
 * changed. Returns null when the entries cannot change usage, so the caller writes nothing.
 */
export function foldAppended(
  previous: UsageState | string | null,
  inserted: readonly TranscriptEntry[],
): FoldedUsage | null {
  if (!touchesUsage(inserted)) return null;
  const state: UsageState =
    previous === null
      ? emptyUsageState()
      : typeof previous === 'string'
        ? decodeUsageState(previous)
        : cloneUsageState(previous);
  return foldOwned(state, inserted);
}

function foldOwned(state: UsageState, inserted: readonly TranscriptEntry[]): FoldedUsage {
  const delta = foldUsageInPlace(state, inserted);
  return { state, delta, chargeable: isChargeable(delta) };
}

/** A fold of a stored state, with the text to store (encodeUsageState). */
export interface StoredFold extends FoldedUsage {
  json: string;
}

/**
 * The decoded usage states of the sessions this process appended to last, each beside the exact
 * text it was decoded from or encoded to, so the next append to a session can fold without
 * decoding the stored text again. An entry counts only for exactly the text the append read in
 * its own transaction (or statement, or script), so another process's append in between is a
 * miss, never a stale state. Folding takes the entry out, and only a write that went through
 * puts the folded state back: a rolled-back write cannot leave a changed object behind. (Each
 * entry is a text and the state that text decodes to, so even a kept entry whose write was
 * later undone is only a miss.)
 */
export class UsageStateCache {
  private readonly states = new Map<string, { json: string; state: UsageState }>();

  constructor(private readonly max = 1_000) {}

  /**
   * Folds `inserted` onto the state stored as `json` (null: none yet) for the session `key`.
   * Null when the entries cannot change usage. Hand the result to keep() once it is stored.
   */
  fold(key: string, json: string | null, inserted: readonly TranscriptEntry[]): StoredFold | null {
    if (!touchesUsage(inserted)) return null;
    const state = this.take(key, json);
    const delta = foldUsageInPlace(state, inserted);
    return { state, delta, chargeable: isChargeable(delta), json: encodeUsageState(state) };
  }

  /** The session's state is now stored as `fold.json`. */
  keep(key: string, fold: StoredFold): void {
    this.states.delete(key);
    if (this.states.size >= this.max) {
      const oldest = this.states.keys().next().value;
      if (oldest !== undefined) this.states.delete(oldest);
    }
    this.states.set(key, { json: fold.json, state: fold.state });
  }

  forget(key: string): void {
    this.states.delete(key);
  }

  /** A state of the caller's own, equal to `json` decoded. */
  private take(key: string, json: string | null): UsageState {
    const cached = this.states.get(key);
    if (cached !== undefined) {
      this.states.delete(key);
      if (cached.json === json) return cached.state;
    }
    return json === null ? emptyUsageState() : decodeUsageState(json);
  }
}
