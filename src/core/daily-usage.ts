import type { TokenUsage, UsageDelta } from './usage.js';

/** Spend over some span: what daily usage, stats and their totals report. */
export interface UsageFigures {
  costUsd: number;
  tokens: TokenUsage;
  turns: number;
}

/**
 * What one owner spent on one UTC day, summed over every session's turns. Kept apart from the
 * sessions, so deleting or purging a session never refunds what was spent: the daily cost limit
 * and the stats keep counting it. A turn is charged when it is counted (its cost-state, see
 * usage.ts), on the day of the append that counted it, with the figures the SDK reported for
 * it: the tokens of a turn that died before its cost-state are in the session's figures (as
 * pending tokens) but never in a day's, just as its unknown cost is in neither.
 */
export interface DailyUsage extends UsageFigures {
  owner: string;
  /** UTC calendar day, `YYYY-MM-DD`. */
  day: string;
}

/**
 * Costs as whole nano-dollars, how the backends store daily sums: integer sums are exact, and
 * equal what addToDailyUsage's rounding to 1e-9 USD gives.
 */
export function toCostNanos(usd: number): number {
  return Math.round(usd * 1e9);
}

export function fromCostNanos(nanos: number): number {
  return nanos / 1e9;
}

const DAY_MS = 86_400_000;
/** The last day utcDay() formatted: appends charge the same day over and over. */
let lastDay = { start: Number.NaN, text: '' };

/** The UTC day an epoch-ms instant falls on, as `YYYY-MM-DD`. */
export function utcDay(epochMs: number): string {
  const start = Math.floor(epochMs / DAY_MS) * DAY_MS;
  if (start !== lastDay.start) {
    lastDay = { start, text: new Date(epochMs).toISOString().slice(0, 10) };
  }
  return lastDay.text;
}

/**
 * Whether a fold's delta changes any figure worth charging to the owner. A delta holds counted
 * figures only (see usage.ts), so this is true exactly when the fold counted a turn.
 */
export function isChargeable(delta: UsageDelta): boolean {
  return (
    delta.costUsd !== 0 ||
    delta.turns !== 0 ||
    delta.tokens.inputTokens !== 0 ||
    delta.tokens.outputTokens !== 0 ||
    delta.tokens.cacheReadInputTokens !== 0 ||
    delta.tokens.cacheCreationInputTokens !== 0
  );
}

export function emptyUsageFigures(): UsageFigures {
  return {
    costUsd: 0,
    tokens: {
      inputTokens: 0,
      outputTokens: 0,
      cacheReadInputTokens: 0,
      cacheCreationInputTokens: 0,
    },
    turns: 0,
  };
}

export function emptyDailyUsage(owner: string, day: string): DailyUsage {
  return { owner, day, ...emptyUsageFigures() };
}

/**
 * Adds figures (a fold's delta, another day's usage) into `into`, in place, with costs rounded as
 * the fold rounds them.
 */
export function addToDailyUsage<T extends UsageFigures>(into: T, delta: UsageFigures): T {
  into.costUsd = Math.round((into.costUsd + delta.costUsd) * 1e9) / 1e9;
  into.turns += delta.turns;
  into.tokens.inputTokens += delta.tokens.inputTokens;
  into.tokens.outputTokens += delta.tokens.outputTokens;
  into.tokens.cacheReadInputTokens += delta.tokens.cacheReadInputTokens;
  into.tokens.cacheCreationInputTokens += delta.tokens.cacheCreationInputTokens;
  return into;
}
