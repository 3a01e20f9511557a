import { describe, expect, test } from 'vitest';
import {
  failureKindOfAssistantError,
  failureKindOfStatus,
  failureKindOfText,
  isRetryable,
  retryDelayMs,
} from '../../src/core/retry.js';

describe('retry policy', () => {
  test('what is worth a retry: 429, 529, 5xx and connection failures; not aborts or other 4xx', () => {
    expect([429, 529, 500, 503, 400, 401, 404].map(failureKindOfStatus)).toEqual([
      'rate_limit',
      'overloaded',
      'server_error',
      'server_error',
      'client_error',
      'client_error',
      'client_error',
    ]);
    expect(failureKindOfText('API Error: 529 Overloaded. This is a server-side issue')).toBe(
      'overloaded',
    );
    expect(failureKindOfText('API Error: 400 {"type":"invalid_request_error"}')).toBe(
      'client_error',
    );
    expect(failureKindOfText('request failed: ECONNRESET')).toBe('connection');
    expect(failureKindOfText('The operation was aborted')).toBe('aborted');
    expect(failureKindOfText('something odd')).toBe('unknown');
    expect(failureKindOfAssistantError('rate_limit')).toBe('rate_limit');
    expect(failureKindOfAssistantError('authentication_failed')).toBe('client_error');
    const retryable = ['rate_limit', 'overloaded', 'server_error', 'connection'] as const;
    for (const kind of retryable) expect(isRetryable(kind)).toBe(true);
    for (const kind of ['aborted', 'client_error', 'budget', 'max_turns', 'unknown'] as const) {
      expect(isRetryable(kind)).toBe(false);
    }
  });

  test('delays double up to the ceiling, with full jitter', () => {
    const policy = { attempts: 5, baseDelayMs: 100, maxDelayMs: 1000 };
    expect([1, 2, 3, 4, 5].map((n) => retryDelayMs(policy, n, () => 0.999999))).toEqual([
      99, 199, 399, 799, 999,
    ]);
    expect(retryDelayMs(policy, 3, () => 0)).toBe(0);
    expect(retryDelayMs(policy, 3, () => 0.5)).toBe(200);
  });
});
