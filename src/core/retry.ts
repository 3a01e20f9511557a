/**
 * When a failed turn is worth running again, and how long to wait first. Pure: the runner
 * supplies the randomness and does the waiting.
 */

export interface RetryPolicy {
  /** Attempts in all, the first included (1 = never retry). */
  attempts: number;
  /** The first retry waits up to this long; each further one doubles it. */
  baseDelayMs: number;
  /** No wait is longer than this. */
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  attempts: 3,
  baseDelayMs: 500,
  maxDelayMs: 10_000,
};

/**
 * Why a turn failed, as far as deciding on a retry goes:
 * - `rate_limit` (HTTP 429), `overloaded` (529), `server_error` (other 5xx), `connection` (the
 *   request never got an answer): the same turn may well succeed a little later;
 * - `aborted`: someone stopped it on purpose; `client_error`: another 4xx, which a retry would
 *   only repeat; `budget`, `max_turns`: a limit said stop; `unknown`: nothing to go on.
 */
export type FailureKind =
  | 'rate_limit'
  | 'overloaded'
  | 'server_error'
  | 'connection'
  | 'aborted'
  | 'client_error'
  | 'budget'
  | 'max_turns'
  | 'unknown';

const RETRYABLE: ReadonlySet<FailureKind> = new Set([
  'rate_limit',
  'overloaded',
  'server_error',
  'connection',
]);

export function isRetryable(kind: FailureKind): boolean {
  return RETRYABLE.has(kind);
}

/**
 * The wait before retry number `retry` (1 for the first retry): "full jitter", a uniform draw
 * from zero to the exponential ceiling, so that many turns failing together do not all come
 * back at the same moment. `random` returns a number in [0, 1).
 */
export function retryDelayMs(policy: RetryPolicy, retry: number, random: () => number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, retry - 1));
  return Math.floor(random() * ceiling);
}

/** The SDK's error names on an assistant message (`SDKAssistantMessage.error`), classified. */
export function failureKindOfAssistantError(error: string): FailureKind {
  switch (error) {
    case 'rate_limit':
      return 'rate_limit';
    case 'overloaded':
      return 'overloaded';
    case 'server_error':
      return 'server_error';
    case 'unknown':
      return 'unknown';
    default:
      // authentication, billing, invalid request, model not found, max output tokens, ...
      return 'client_error';
  }
}

const STATUS_IN_TEXT = /\b(?:API Error|status)\W{0,3}(\d{3})\b/i;
const CONNECTION_IN_TEXT =
  /\b(?:ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|socket hang up|fetch failed|Connection error|network)\b/i;

/**
 * Classifies an error text (a result's `errors`, a thrown message) the SDK gave no structured
 * reason for: a status code in it, or the marks of a connection failure.
 */
export function failureKindOfText(text: string): FailureKind {
  const status = STATUS_IN_TEXT.exec(text)?.[1];
  if (status !== undefined) return failureKindOfStatus(Number(status));
  if (/overloaded/i.test(text)) return 'overloaded';
  if (/rate.?limit/i.test(text)) return 'rate_limit';
  if (CONNECTION_IN_TEXT.test(text)) return 'connection';
  if (/abort/i.test(text)) return 'aborted';
  return 'unknown';
}

export function failureKindOfStatus(status: number): FailureKind {
  if (status === 429) return 'rate_limit';
  if (status === 529) return 'overloaded';
  if (status >= 500) return 'server_error';
  if (status >= 400) return 'client_error';
  return 'unknown';
}
