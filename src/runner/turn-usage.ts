import { randomUUID } from 'node:crypto';
import type { SDKResultMessage } from '@anthropic-ai/claude-agent-sdk';
import type { TranscriptEntry } from '../core/entries.js';
import { type ModelUsage, TURN_USAGE_ENTRY } from '../core/usage.js';

/**
 * What a live SDK process has spent so far, as the SDK counts it: cumulative over the process
 * and, after a resume, including the counter restored from the transcript's last cost-state.
 */
export interface ProcessCounter {
  costUsd: number;
  apiDurationMs: number;
  byModel: Record<string, ModelUsage>;
}

export function zeroCounter(): ProcessCounter {
  return { costUsd: 0, apiDurationMs: 0, byModel: {} };
}

function num(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : 0;
}

function readModels(raw: unknown, costField: string): Record<string, ModelUsage> {
  const byModel: Record<string, ModelUsage> = {};
  if (!raw || typeof raw !== 'object') return byModel;
  for (const [model, usage] of Object.entries(raw as Record<string, Record<string, unknown>>)) {
    if (!usage || typeof usage !== 'object') continue;
    byModel[model] = {
      inputTokens: num(usage.inputTokens),
      outputTokens: num(usage.outputTokens),
      cacheReadInputTokens: num(usage.cacheReadInputTokens),
      cacheCreationInputTokens: num(usage.cacheCreationInputTokens),
      costUsd: num(usage[costField]),
    };
  }
  return byModel;
}

/** The counter a result message reports (cumulative for its process). */
export function counterOfResult(result: SDKResultMessage): ProcessCounter {
  return {
    costUsd: num(result.total_cost_usd),
    apiDurationMs: num(result.duration_api_ms),
    byModel: readModels(result.modelUsage, 'costUSD'),
  };
}

/**
 * The counter a resumed process starts from: the CLI restores the last cost-state it wrote in
 * the transcript (it ignores sessionhub's own entries). Zero when there is none.
 */
export function restoredCounter(entries: readonly TranscriptEntry[] | null): ProcessCounter {
  if (!entries) return zeroCounter();
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i] as Record<string, unknown>;
    if (entry.type !== 'cost-state') continue;
    return {
      costUsd: num(entry.totalCostUSD),
      apiDurationMs: num(entry.totalAPIDuration),
      byModel: readModels(entry.modelUsage, 'costUSD'),
    };
  }
  return zeroCounter();
}

/**
 * The transcript entry that records one turn of a process that stays alive. The SDK writes its
 * cost-state only when a process exits; a warm process never exits normally (the runner stops
 * it without a flush), so without this entry its turns would never be counted. Carries the
 * turn's own figures (the difference of two counters), a uuid so a retried append adds nothing,
 * and is ignored by the CLI on resume.
 */
export function turnUsageEntry(
  sessionId: string,
  before: ProcessCounter,
  after: ProcessCounter,
  durationMs: number,
  at: number,
): TranscriptEntry {
  const byModel: Record<string, ModelUsage> = {};
  for (const [model, now] of Object.entries(after.byModel)) {
    const was = before.byModel[model];
    byModel[model] = {
      inputTokens: Math.max(0, now.inputTokens - (was?.inputTokens ?? 0)),
      outputTokens: Math.max(0, now.outputTokens - (was?.outputTokens ?? 0)),
      cacheReadInputTokens: Math.max(
        0,
        now.cacheReadInputTokens - (was?.cacheReadInputTokens ?? 0),
      ),
      cacheCreationInputTokens: Math.max(
        0,
        now.cacheCreationInputTokens - (was?.cacheCreationInputTokens ?? 0),
      ),
      costUsd: Math.max(0, now.costUsd - (was?.costUsd ?? 0)),
    };
  }
  return {
    type: TURN_USAGE_ENTRY,
    uuid: randomUUID(),
    sessionId,
    timestamp: new Date(at).toISOString(),
    costUsd: Math.max(0, after.costUsd - before.costUsd),
    durationMs: Math.max(0, durationMs),
    apiDurationMs: Math.max(0, after.apiDurationMs - before.apiDurationMs),
    byModel,
  };
}
