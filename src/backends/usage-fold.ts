import { isChargeable } from '../core/daily-usage.js';
import type { TranscriptEntry } from '../core/entries.js';
import {
  emptyUsageState,
  foldUsageInPlace,
  TURN_USAGE_ENTRY,
  type UsageDelta,
  type UsageState,
} from '../core/usage.js';

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
  /** Whether the delta changes a figure the owner's daily usage holds. */
  chargeable: boolean;
}

/**
 * Folds `inserted` onto `previous`: a state, its stored JSON text (cheapest: parsed here and
 * folded in place), or null for a session with nothing folded yet. `previous` itself is never
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
        ? (JSON.parse(previous) as UsageState)
        : (JSON.parse(JSON.stringify(previous)) as UsageState);
  const delta = foldUsageInPlace(state, inserted);
  return { state, delta, chargeable: isChargeable(delta) };
}
