import { z } from 'zod';
import { SessionHubError } from '../../core/errors.js';
import type {
  MessagesRequestBody,
  MockClock,
  MockFailure,
  MockReply,
  MockReplyFunction,
  MockRequestKind,
  MockStep,
} from './types.js';

export interface MockAnthropicOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1: the mock is for tests and never listens on other interfaces. */
  host?: string;
  /** Delay before the first byte of every `/v1/messages` answer, in ms. Default 0. */
  latencyMs?: number;
  /** Delay between SSE events, in ms. Default 0. */
  chunkDelayMs?: number;
  /** Characters per `text_delta` / `thinking_delta` / `input_json_delta`. Default 24. */
  chunkSize?: number;
  /** Steps that conversation requests consume in order; more can be added with `enqueue()`. */
  script?: MockStep[];
  /**
   * Answers a conversation request when the script is empty, and every `auxiliary` request.
   * Default: one text block `Mock reply to: <last user text>`, so tests can see what the model got.
   */
  defaultReply?: MockReplyFunction;
  /** The title the CLI's title-generation request receives. Default `Mock session`. */
  title?: string | ((request: { body: MessagesRequestBody }) => string);
  /**
   * Decides what a request is for; return undefined to fall back to the built-in rule (see
   * `MockRequestKind`). For a future CLI whose side requests the built-in rule misses.
   */
  classify?: (request: {
    body: MessagesRequestBody;
    headers: Record<string, string | string[] | undefined>;
  }) => MockRequestKind | undefined;
  /**
   * Simulate prompt caching from the request's `cache_control` breakpoints: a prefix seen before
   * is reported as `cache_read_input_tokens`, a new one as `cache_creation_input_tokens`.
   * Default true. With false both are always 0.
   */
  promptCaching?: boolean;
  /** When set, requests must carry this `x-api-key` (or `Authorization: Bearer`), else 401. */
  apiKey?: string;
  /** Where the mock reads time and sleeps. Default: the system clock and real timers. */
  clock?: MockClock;
}

const nonNegativeMs = z.number().finite().min(0).max(600_000);

const fn = <T>(what: string) =>
  z.custom<T>((value) => typeof value === 'function', { message: `must be ${what}` });

const errorType = z.enum([
  'invalid_request_error',
  'authentication_error',
  'billing_error',
  'permission_error',
  'not_found_error',
  'request_too_large',
  'rate_limit_error',
  'timeout_error',
  'api_error',
  'overloaded_error',
]);

const contentBlock = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('text'), text: z.string() }),
  z.strictObject({
    type: z.literal('tool_use'),
    id: z.string().min(1).optional(),
    name: z.string().min(1),
    input: z.record(z.string(), z.unknown()).optional(),
  }),
  z.strictObject({
    type: z.literal('thinking'),
    thinking: z.string(),
    signature: z.string().optional(),
  }),
]);

const tokenCount = z.number().int().min(0);

const replySchema = z.strictObject({
  content: z.union([z.string(), z.array(contentBlock).min(1, 'must have at least one block')]),
  stopReason: z
    .enum(['end_turn', 'max_tokens', 'stop_sequence', 'tool_use', 'pause_turn', 'refusal'])
    .optional(),
  stopSequence: z.string().nullable().optional(),
  model: z.string().min(1).optional(),
  id: z.string().min(1).optional(),
  usage: z
    .strictObject({
      input_tokens: tokenCount.optional(),
      output_tokens: tokenCount.optional(),
      cache_creation_input_tokens: tokenCount.optional(),
      cache_read_input_tokens: tokenCount.optional(),
    })
    .optional(),
  latencyMs: nonNegativeMs.optional(),
  chunkDelayMs: nonNegativeMs.optional(),
});

const httpFailureSchema = z.strictObject({
  status: z.number().int().min(400, 'must be an HTTP error status (400-599)').max(599),
  type: errorType.optional(),
  message: z.string().optional(),
  retryAfterSeconds: z.number().int().min(0).optional(),
  shouldRetry: z.boolean().optional(),
});

const dropFailureSchema = z.strictObject({
  drop: z.enum(['mid-stream', 'before-response']),
  afterEvents: z.number().int().min(0).optional(),
});

const streamErrorFailureSchema = z.strictObject({
  streamError: errorType,
  message: z.string().optional(),
  afterEvents: z.number().int().min(0).optional(),
});

const clockSchema = z.custom<MockClock>(
  (value) =>
    typeof value === 'object' &&
    value !== null &&
    typeof (value as MockClock).now === 'function' &&
    typeof (value as MockClock).sleep === 'function',
  { message: 'must be an object with now() and sleep(ms, signal)' },
);

const optionsSchema = z.strictObject({
  port: z.number().int().min(0).max(65_535).optional(),
  host: z.string().min(1).optional(),
  latencyMs: nonNegativeMs.optional(),
  chunkDelayMs: nonNegativeMs.optional(),
  chunkSize: z.number().int().min(1).optional(),
  script: z.array(z.unknown()).optional(),
  defaultReply: fn<MockReplyFunction>('a function (request) => string | MockReply').optional(),
  title: z
    .union([
      z.string(),
      fn<(request: { body: MessagesRequestBody }) => string>('a string or a function'),
    ])
    .optional(),
  classify: fn<NonNullable<MockAnthropicOptions['classify']>>('a function').optional(),
  promptCaching: z.boolean().optional(),
  apiKey: z.string().min(1).optional(),
  clock: clockSchema.optional(),
});

function describeIssues(error: z.ZodError, where: string): string {
  return error.issues
    .map((issue) => {
      const path = issue.path
        .map((part) => (typeof part === 'number' ? `[${part}]` : `.${String(part)}`))
        .join('');
      return `${where}${path}: ${issue.message}`;
    })
    .join('; ');
}

/** `where` names the value as the caller wrote it, e.g. `options` or `script[2]`. */
function parse<T>(schema: z.ZodType<T>, value: unknown, where: string, hint: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new SessionHubError(
    'INVALID_OPTION',
    `Invalid mock Anthropic ${where}: ${describeIssues(result.error, where)}. ${hint}`,
    { issues: result.error.issues },
  );
}

export function parseOptions(options: unknown): MockAnthropicOptions {
  const parsed = parse(
    optionsSchema,
    options ?? {},
    'options',
    'See MockAnthropicOptions for the accepted fields.',
  ) as MockAnthropicOptions;
  parsed.script = (parsed.script ?? []).map((step, i) => parseStep(step, `script[${i}]`));
  return parsed;
}

const STEP_HINT =
  'A step is a string, a reply { content, stopReason?, ... }, a function (request) => reply, or { fail: { status } | "drop" | { drop } | { streamError } }.';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// Dispatching on a distinguishing key, rather than a zod union, keeps the error about the
// variant the caller meant instead of listing why every variant failed.
export function parseFailure(failure: unknown, where: string): MockFailure {
  if (failure === 'drop') return failure;
  if (isObject(failure)) {
    if ('status' in failure) return parse(httpFailureSchema, failure, where, STEP_HINT);
    if ('drop' in failure) return parse(dropFailureSchema, failure, where, STEP_HINT);
    if ('streamError' in failure) return parse(streamErrorFailureSchema, failure, where, STEP_HINT);
  }
  throw new SessionHubError(
    'INVALID_OPTION',
    `Invalid mock Anthropic ${where}: a failure is { status: 429 | 500 | 529 | ... }, 'drop', { drop: 'mid-stream' | 'before-response' } or { streamError: 'overloaded_error' | ... }.`,
    { failure },
  );
}

export function parseStep(step: unknown, where: string): MockStep {
  if (typeof step === 'string' || typeof step === 'function') return step as MockStep;
  if (isObject(step) && 'fail' in step) {
    const keys = Object.keys(step);
    if (keys.length !== 1) {
      throw new SessionHubError(
        'INVALID_OPTION',
        `Invalid mock Anthropic ${where}: a failure step has only the key "fail", got ${keys.join(', ')}.`,
        { step },
      );
    }
    return { fail: parseFailure(step.fail, `${where}.fail`) };
  }
  if (isObject(step)) return parse(replySchema, step, where, STEP_HINT) as MockReply;
  throw new SessionHubError(
    'INVALID_OPTION',
    `Invalid mock Anthropic ${where}: got ${step === null ? 'null' : typeof step}. ${STEP_HINT}`,
    {
      step,
    },
  );
}

/** Normalises what a reply function produced into a reply. */
export function parseReply(reply: unknown, where: string): MockReply {
  if (typeof reply === 'string') return { content: reply };
  return parse(
    replySchema,
    reply,
    where,
    'Return a string or { content, stopReason?, ... }.',
  ) as MockReply;
}
