import type { TokenUsage, UsageDelta } from './usage.js';

/**
 * What one owner spent on one UTC day, summed over every session's turns. Kept apart from the
 * sessions, so deleting or purging a session never refunds what was spent: the daily cost limit
 * and the stats keep counting it.
 */
export interface DailyUsage {
  owner: string;
  /** UTC calendar day, `YYYY-MM-DD`. */
  day: string;
  costUsd: number;
  tokens: TokenUsage;
  turns: number;
}

/** The UTC day an epoch-ms instant falls on, as `YYYY-MM-DD`. */
export function utcDay(epochMs: number): string {
  return new Date(epochMs).toISOString().slice(0, 10);
}

/** Whether a fold's delta changes any figure worth charging to the owner. */
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

export function emptyDailyUsage(owner: string, day: string): DailyUsage {
  return {
    owner,
    day,
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

/** Adds a fold's delta into a day's figures (in place), with costs rounded as the fold rounds. */
export function addToDailyUsage(into: DailyUsage, delta: UsageDelta): DailyUsage {
  into.costUsd = Math.round((into.costUsd + delta.costUsd) * 1e9) / 1e9;
  into.turns += delta.turns;
  into.tokens.inputTokens += delta.tokens.inputTokens;
  into.tokens.outputTokens += delta.tokens.outputTokens;
  into.tokens.cacheReadInputTokens += delta.tokens.cacheReadInputTokens;
  into.tokens.cacheCreationInputTokens += delta.tokens.cacheCreationInputTokens;
  return into;
}
