import { z } from 'zod';
import { SessionHubError } from '../core/errors.js';
import { parseInput, SESSION_STATUSES } from '../core/session-record.js';
import { createSchema, extendSchema, forkSchema, updateSchema } from '../hub/inputs.js';

/**
 * Request bodies and query strings of the HTTP API. The session fields are the hub's own
 * schemas; the HTTP layer adds what a turn needs and rejects anything it does not know.
 */

const MAX_WAIT_MS = 10 * 60_000;

/** The fields of a request that also runs a turn. */
const turnFields = {
  prompt: z.string().min(1, 'must not be empty'),
  /** Per-turn SDK options, within what the service lets callers set (the runner checks). */
  options: z.record(z.string(), z.unknown()).optional(),
  /** Wait up to this long for a turn running elsewhere on the session (default 0: 409 at once). */
  waitMs: z.number().int().min(0).max(MAX_WAIT_MS).optional(),
};

export const createBody = createSchema.extend({
  prompt: turnFields.prompt.optional(),
  options: turnFields.options,
  waitMs: turnFields.waitMs,
});

export const messageBody = z.strictObject(turnFields);

export const forkBody = forkSchema.extend({
  prompt: turnFields.prompt.optional(),
  options: turnFields.options,
  waitMs: turnFields.waitMs,
});

export const patchBody = updateSchema;
export const extendBody = extendSchema;

export function parseBody<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  return parseInput(schema, body ?? {}, what);
}

const numberText = z
  .string()
  .regex(/^\d+$/, 'must be a whole number')
  .transform((text) => Number(text));

/** A time in a query string: epoch milliseconds, or an ISO 8601 date-time. */
const timeText = z.string().transform((text, context) => {
  const value = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isFinite(value)) {
    context.addIssue({ code: 'custom', message: 'must be epoch milliseconds or an ISO 8601 time' });
    return z.NEVER;
  }
  return value;
});

export const listQuery = z.strictObject({
  owner: z.string().optional(),
  /** One status or several, comma-separated. */
  status: z
    .string()
    .transform((text) => text.split(',').map((s) => s.trim()))
    .pipe(z.array(z.enum(SESSION_STATUSES as [string, ...string[]])).min(1))
    .optional(),
  tag: z.string().optional(),
  titleContains: z.string().optional(),
  createdFrom: timeText.optional(),
  createdTo: timeText.optional(),
  activeFrom: timeText.optional(),
  activeTo: timeText.optional(),
  limit: numberText.optional(),
  cursor: z.string().optional(),
});

export const transcriptQuery = z.strictObject({
  limit: numberText.pipe(z.number().int().min(1).max(1000)).default(100),
  /** Where the previous page ended (its `nextCursor`). */
  cursor: z.string().regex(/^\d+$/, 'must be a cursor this API returned').optional(),
});

export const statsQuery = z.strictObject({
  fromDay: z.string().optional(),
  toDay: z.string().optional(),
});

/** The session id in a path, as the hub checks it; here only its presence. */
export function pathId(params: unknown): string {
  const id = (params as { id?: unknown } | undefined)?.id;
  if (typeof id !== 'string') {
    throw new SessionHubError('INVALID_INPUT', 'The path names no session id.', {});
  }
  return id;
}
