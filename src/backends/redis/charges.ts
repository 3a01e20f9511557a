import {
  type DailyUsage,
  emptyDailyUsage,
  fromCostNanos,
  toCostNanos,
} from '../../core/daily-usage.js';
import type { UsageDelta } from '../../core/usage.js';

/**
 * Daily usage on Redis, charged exactly once although the session (where the append folds usage)
 * and the tenant's daily figures live on different slots.
 *
 * - The append script records each chargeable fold of a registered session (one that counted a
 *   turn: pending tokens are never charged, see usage.ts) as a pending charge in the session's
 *   `charges` HASH, under the append's mtime (its stamp: unique and increasing per session,
 *   across re-creations too, see `floor`). Same script as the entries, so a crash never
 *   separates them.
 * - The second step (the publish, on the tenant's slot) adds a charge to the day's figures only
 *   if its stamp is above the session's mark in `charged` (the newest stamp applied) and its
 *   gone marker, then raises the mark. Every publisher sends all the charges still pending,
 *   oldest first, so a charge is added once however many callers, retries or crashes bring it;
 *   whoever appends next, or deletes the session, applies what a writer that died left behind.
 * - Applied charges are forgotten lazily: the next append of the process that applied them
 *   deletes them from `charges` in its own script.
 *
 * Figures are six integers, kept by Redis itself (HINCRBY: no arithmetic in Lua, where number
 * formatting is slow): cost in nano-dollars, turns, input, output, cache read and cache creation
 * tokens. Cost in nano-dollars because the fold rounds costs to 1e-9, so integer sums are exact
 * where float sums would drift. A day's figures are one HASH per tenant and day, with one field
 * per owner and figure: `c:`, `t:`, `i:`, `o:`, `r:`, `w:` followed by the owner.
 */

/** Field prefixes of a day's HASH, in the order of a charge's figures. */
const FIGURES = ['c', 't', 'i', 'o', 'r', 'w'] as const;

/** A pending charge, as the session's `charges` HASH holds it. */
export interface Charge {
  stamp: string;
  day: string;
  /** Cost in nano-dollars, turns, input, output, cache read, cache creation tokens. */
  figures: string[];
}

/** The stored form of a charge: the day, then the six figures. */
export function chargePayload(day: string, delta: UsageDelta): string {
  return [
    day,
    toCostNanos(delta.costUsd),
    delta.turns,
    delta.tokens.inputTokens,
    delta.tokens.outputTokens,
    delta.tokens.cacheReadInputTokens,
    delta.tokens.cacheCreationInputTokens,
  ].join(' ');
}

/** Pending charges from a flat [stamp, payload, ...] reply, oldest first. */
export function parseCharges(flat: readonly string[]): Charge[] {
  const charges: Charge[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const [day, ...figures] = (flat[i + 1] as string).split(' ');
    charges.push({ stamp: flat[i] as string, day: day as string, figures });
  }
  return charges.sort((a, b) => Number(a.stamp) - Number(b.stamp));
}

/** The fields of one owner's figures in a day's HASH, in Charge.figures order. */
export function figureFields(owner: string): string[] {
  return FIGURES.map((figure) => `${figure}:${owner}`);
}

/** The rows of a day's HASH, from HGETALL as a flat field, value list. */
export function parseDay(day: string, flat: readonly string[]): DailyUsage[] {
  const byOwner = new Map<string, DailyUsage>();
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const field = flat[i] as string;
    const owner = field.slice(2);
    let row = byOwner.get(owner);
    if (!row) {
      row = emptyDailyUsage(owner, day);
      byOwner.set(owner, row);
    }
    setFigure(row, field[0] as string, Number(flat[i + 1]));
  }
  return [...byOwner.values()];
}

/** One owner's row from HMGET of figureFields(owner); null when the owner has none that day. */
export function parseOwnerDay(
  owner: string,
  day: string,
  values: ReadonlyArray<string | null>,
): DailyUsage | null {
  if (values.every((value) => value === null)) return null;
  const row = emptyDailyUsage(owner, day);
  for (const [i, figure] of FIGURES.entries()) setFigure(row, figure, Number(values[i] ?? 0));
  return row;
}

function setFigure(row: DailyUsage, figure: string, value: number): void {
  switch (figure) {
    case 'c':
      row.costUsd = fromCostNanos(value);
      break;
    case 't':
      row.turns = value;
      break;
    case 'i':
      row.tokens.inputTokens = value;
      break;
    case 'o':
      row.tokens.outputTokens = value;
      break;
    case 'r':
      row.tokens.cacheReadInputTokens = value;
      break;
    case 'w':
      row.tokens.cacheCreationInputTokens = value;
      break;
  }
}
