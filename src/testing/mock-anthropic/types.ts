import type { IncomingHttpHeaders } from 'node:http';

/** Stop reasons the Messages API reports. */
export type MockStopReason =
  | 'end_turn'
  | 'max_tokens'
  | 'stop_sequence'
  | 'tool_use'
  | 'pause_turn'
  | 'refusal';

/** Error `type` values of the Anthropic error JSON. */
export type MockErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'billing_error'
  | 'permission_error'
  | 'not_found_error'
  | 'request_too_large'
  | 'rate_limit_error'
  | 'timeout_error'
  | 'api_error'
  | 'overloaded_error';

/** One content block of a scripted reply. */
export type MockContentBlock =
  | { type: 'text'; text: string }
  /** `id` defaults to a deterministic `toolu_mock_<n>`; `input` to `{}`. */
  | { type: 'tool_use'; id?: string; name: string; input?: Record<string, unknown> }
  /** `signature` defaults to a deterministic placeholder. */
  | { type: 'thinking'; thinking: string; signature?: string };

/** Token counts a reply reports instead of the mock's estimates. */
export interface MockUsageOverride {
  input_tokens?: number;
  output_tokens?: number;
  cache_creation_input_tokens?: number;
  cache_read_input_tokens?: number;
}

/** A scripted assistant message. A plain string is shorthand for `{ content: string }`. */
export interface MockReply {
  /** A string is one text block. */
  content: string | MockContentBlock[];
  /** Defaults to `tool_use` when the reply has a tool_use block, else `end_turn`. */
  stopReason?: MockStopReason;
  stopSequence?: string | null;
  /** Defaults to the model the request named. */
  model?: string;
  /** Defaults to a deterministic `msg_mock_<n>`. */
  id?: string;
  usage?: MockUsageOverride;
  /** Overrides the server's `latencyMs` for this reply. */
  latencyMs?: number;
  /** Overrides the server's `chunkDelayMs` for this reply. */
  chunkDelayMs?: number;
}

/**
 * A failed request, in the shape the real API fails:
 * - `{ status }`: an HTTP error with the Anthropic error JSON (`type` follows from the status:
 *   429 rate_limit_error, 529 overloaded_error, 500 api_error, ...). `retryAfterSeconds` sets the
 *   `retry-after` header; `shouldRetry` sets `x-should-retry`.
 * - `'drop'` or `{ drop: 'mid-stream' }`: a 200 response whose connection is destroyed after
 *   `afterEvents` SSE events (default 3: message_start, content_block_start, ping); for a JSON
 *   request, after half the body.
 * - `{ drop: 'before-response' }`: the socket is destroyed before any byte is sent.
 * - `{ streamError }`: a 200 SSE stream that sends an `error` event after `afterEvents` events
 *   (default 1), as the API does when it overloads mid-stream. A JSON request gets a 529/500.
 */
export type MockFailure =
  | {
      status: number;
      type?: MockErrorType;
      message?: string;
      retryAfterSeconds?: number;
      shouldRetry?: boolean;
    }
  | 'drop'
  | { drop: 'mid-stream' | 'before-response'; afterEvents?: number }
  | { streamError: MockErrorType; message?: string; afterEvents?: number };

/**
 * Computes a reply from the request when it arrives. It may return a promise: the answer then
 * waits for it (before `latencyMs`), which lets a test hold a turn open until it says so.
 */
export type MockReplyFunction = (
  request: MockMessagesRequest,
) => string | MockReply | Promise<string | MockReply>;

/** One entry of the script that conversation requests consume in order. */
export type MockStep = string | MockReply | MockReplyFunction | { fail: MockFailure };

/**
 * What a `/v1/messages` request is for. Only `conversation` requests consume the script:
 * - `conversation`: a turn of the agent loop (the model answering the user or a tool result).
 * - `title`: the CLI naming the session (a structured-output request whose JSON schema has the
 *   single property `title`); answered with `{"title": ...}` from the `title` option.
 * - `auxiliary`: anything a custom `classify` marks as a side request; answered by `defaultReply`.
 */
export type MockRequestKind = 'conversation' | 'title' | 'auxiliary';

/** The JSON body of a Messages API request, as far as the mock reads it. */
export interface MessagesRequestBody {
  model: string;
  max_tokens: number;
  messages: Array<{ role: string; content: string | Array<Record<string, unknown>> }>;
  system?: string | Array<Record<string, unknown>>;
  tools?: Array<Record<string, unknown>>;
  stream?: boolean;
  [field: string]: unknown;
}

/** What the mock did with a request. */
export type MockOutcome =
  | { type: 'reply'; message: WireMessage; source: 'script' | 'default' | 'title' }
  | { type: 'failure'; failure: MockFailure }
  /** A reply function threw or returned something invalid; answered with a 500 api_error. */
  | { type: 'mock-error'; message: string };

/** A `POST /v1/messages` request the mock received. */
export interface MockMessagesRequest {
  /** 1-based arrival order among the `/v1/messages` requests of this mock. */
  seq: number;
  kind: MockRequestKind;
  /** Path and query, e.g. `/v1/messages?beta=true`. */
  url: string;
  headers: IncomingHttpHeaders;
  body: MessagesRequestBody;
  stream: boolean;
  /** The CLI's `x-claude-code-session-id` header, when it sent one. */
  sessionId: string | undefined;
  /** The mock clock's `now()` when the body had arrived. */
  receivedAt: number;
  /** Text of the last user message: its text blocks (minus `<system-reminder>`s) and tool results. */
  lastUserText: string;
  /** Every text, tool input and tool result of `messages`, one per line: for "contains" checks. */
  transcriptText: string;
  /**
   * How the mock answered; set once it knows (on arrival, or when an async reply function
   * resolves), always before `latencyMs` runs.
   */
  outcome?: MockOutcome;
}

/** Any other request: `HEAD /api/hello`, `count_tokens`, malformed bodies, unknown paths. */
export interface MockOtherRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body, the raw text if it was not JSON, or undefined if empty. */
  body: unknown;
  status: number;
  receivedAt: number;
}

/** Time as the mock sees it. Inject one to observe or control latency without real waiting. */
export interface MockClock {
  now(): number;
  /** Resolves after `ms`; rejects (or resolves early) once `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

/** The assistant message the mock sends, in the API's JSON shape. */
export interface WireMessage {
  id: string;
  type: 'message';
  role: 'assistant';
  model: string;
  content: WireContentBlock[];
  stop_reason: MockStopReason | null;
  stop_sequence: string | null;
  usage: WireUsage;
}

export type WireContentBlock =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id: string; name: string; input: Record<string, unknown> }
  | { type: 'thinking'; thinking: string; signature: string };

export interface WireUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  cache_creation: { ephemeral_5m_input_tokens: number; ephemeral_1h_input_tokens: number };
  service_tier: 'standard';
}
