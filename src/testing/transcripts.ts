import { randomUUID } from 'node:crypto';
import type { TranscriptEntry } from '../core/entries.js';

/**
 * Transcript entries shaped as CLI 2.1.329 writes them (a user prompt, the assistant's reply and
 * the turn's cost-state), for tests that need a realistic transcript without running the CLI. The
 * SDK's helpers (forkSession, getSessionMessages) accept them.
 */
export interface SyntheticTurnOptions {
  sessionId: string;
  prompt?: string;
  reply?: string;
  model?: string;
  /** The previous turn's last entry uuid; null for the first turn. */
  parentUuid?: string | null;
  /** The tokens this turn used. */
  tokens?: { input?: number; output?: number; cacheRead?: number; cacheCreation?: number };
  /**
   * The session's cumulative cost after this turn, as the SDK's counter reports it. Omit to
   * write no cost-state (a turn that died before it could).
   */
  cumulativeCostUsd?: number;
  /** Cumulative tokens of the counter after this turn; default: this turn's tokens. */
  cumulativeTokens?: {
    input?: number;
    output?: number;
    cacheRead?: number;
    cacheCreation?: number;
  };
  /** The counter's start time; one per SDK counter. */
  counterStartTime?: number;
  timestamp?: number;
}

export interface SyntheticTurn {
  entries: TranscriptEntry[];
  userUuid: string;
  assistantUuid: string;
  messageId: string;
}

export function syntheticTurn(options: SyntheticTurnOptions): SyntheticTurn {
  const model = options.model ?? 'claude-test';
  const at = new Date(options.timestamp ?? Date.UTC(2026, 0, 1)).toISOString();
  const userUuid = randomUUID();
  const assistantUuid = randomUUID();
  const messageId = `msg_${randomUUID().replaceAll('-', '')}`;
  const tokens = options.tokens ?? { input: 100, output: 20 };
  const common = {
    sessionId: options.sessionId,
    cwd: '/work',
    isSidechain: false,
    userType: 'external',
    version: '2.1.329',
  };
  const entries: TranscriptEntry[] = [
    {
      type: 'user',
      uuid: userUuid,
      parentUuid: options.parentUuid ?? null,
      timestamp: at,
      ...common,
      message: { role: 'user', content: options.prompt ?? 'Hello' },
    },
    {
      type: 'assistant',
      uuid: assistantUuid,
      parentUuid: userUuid,
      timestamp: at,
      ...common,
      message: {
        id: messageId,
        type: 'message',
        role: 'assistant',
        model,
        content: [{ type: 'text', text: options.reply ?? 'Hi there' }],
        stop_reason: 'end_turn',
        usage: {
          input_tokens: tokens.input ?? 0,
          output_tokens: tokens.output ?? 0,
          cache_read_input_tokens: tokens.cacheRead ?? 0,
          cache_creation_input_tokens: tokens.cacheCreation ?? 0,
        },
      },
    },
  ];
  if (options.cumulativeCostUsd !== undefined) {
    const total = options.cumulativeTokens ?? tokens;
    entries.push({
      type: 'cost-state',
      sessionId: options.sessionId,
      totalCostUSD: options.cumulativeCostUsd,
      totalAPIDuration: 100,
      totalAPIDurationWithoutRetries: 100,
      totalToolDuration: 0,
      totalDuration: 200,
      startTime: options.counterStartTime ?? Date.UTC(2026, 0, 1),
      modelUsage: {
        [model]: {
          inputTokens: total.input ?? 0,
          outputTokens: total.output ?? 0,
          thinkingTokens: 0,
          cacheReadInputTokens: total.cacheRead ?? 0,
          cacheCreationInputTokens: total.cacheCreation ?? 0,
          webSearchRequests: 0,
          costUSD: options.cumulativeCostUsd,
        },
      },
      hasUnknownModelCost: false,
    });
  }
  return { entries, userUuid, assistantUuid, messageId };
}
