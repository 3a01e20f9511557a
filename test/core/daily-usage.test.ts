import { describe, expect, test } from 'vitest';
import {
  addToDailyUsage,
  emptyDailyUsage,
  isChargeable,
  utcDay,
} from '../../src/core/daily-usage.js';
import { effectiveStatus } from '../../src/core/session-record.js';
import { emptyUsageState, foldUsage } from '../../src/core/usage.js';

describe('daily usage', () => {
  test('days are UTC calendar days', () => {
    expect(utcDay(Date.UTC(2026, 2, 1, 0, 0, 0))).toBe('2026-03-01');
    expect(utcDay(Date.UTC(2026, 2, 1, 23, 59, 59, 999))).toBe('2026-03-01');
    expect(utcDay(Date.UTC(2026, 2, 2))).toBe('2026-03-02');
  });

  test('adding many small costs does not drift', () => {
    const day = emptyDailyUsage('alice', '2026-03-01');
    for (let i = 0; i < 1000; i++) {
      addToDailyUsage(day, {
        costUsd: 0.000_123_457,
        turns: 1,
        tokens: {
          inputTokens: 3,
          outputTokens: 1,
          cacheReadInputTokens: 0,
          cacheCreationInputTokens: 2,
        },
      });
    }
    expect(day.costUsd).toBe(0.123457);
    expect(day.turns).toBe(1000);
    expect(day.tokens).toEqual({
      inputTokens: 3000,
      outputTokens: 1000,
      cacheReadInputTokens: 0,
      cacheCreationInputTokens: 2000,
    });
  });

  test('only a fold that counts a turn is chargeable: pending tokens are never charged', () => {
    const { delta } = foldUsage(emptyUsageState(), [{ type: 'user', uuid: 'u1' }]);
    expect(isChargeable(delta)).toBe(false);
    const assistant = {
      type: 'assistant',
      uuid: 'a1',
      message: { id: 'm1', model: 'x', usage: { input_tokens: 5, output_tokens: 1 } },
    };
    // A turn in progress (or one that died before its cost-state): tokens pending, no charge.
    const inProgress = foldUsage(emptyUsageState(), [assistant]);
    expect(isChargeable(inProgress.delta)).toBe(false);
    const costState = {
      type: 'cost-state',
      totalCostUSD: 0.25,
      totalDuration: 900,
      startTime: 1,
      modelUsage: { x: { inputTokens: 6, outputTokens: 1, costUSD: 0.25 } },
    };
    const done = foldUsage(inProgress.state, [costState]);
    expect(isChargeable(done.delta)).toBe(true);
    // The day is charged what the SDK counted for the turn, not the pending estimate.
    expect(done.delta).toMatchObject({ costUsd: 0.25, turns: 1 });
    expect(done.delta.tokens).toMatchObject({ inputTokens: 6, outputTokens: 1 });
    // Delivered again (a retried append): nothing more to charge.
    expect(isChargeable(foldUsage(done.state, [costState]).delta)).toBe(false);
  });
});

describe('effective status', () => {
  test('a live (active or failed) session past its deadline is expired; other states keep theirs', () => {
    expect(effectiveStatus({ status: 'active', expiresAt: 100 }, 99)).toBe('active');
    expect(effectiveStatus({ status: 'active', expiresAt: 100 }, 100)).toBe('expired');
    expect(effectiveStatus({ status: 'active', expiresAt: null }, 1e15)).toBe('active');
    expect(effectiveStatus({ status: 'failed', expiresAt: 100 }, 99)).toBe('failed');
    expect(effectiveStatus({ status: 'failed', expiresAt: 100 }, 200)).toBe('expired');
    expect(effectiveStatus({ status: 'archived', expiresAt: null }, 200)).toBe('archived');
  });
});
