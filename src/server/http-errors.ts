import type { FastifyError } from 'fastify';
import { type ErrorCode, isSessionHubError, SessionHubError } from '../core/errors.js';

/** The one error shape of the HTTP API. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; details: Record<string, unknown> };
}

/** The HTTP status of each error code. */
const STATUS: Record<ErrorCode, number> = {
  INVALID_SESSION_KEY: 422,
  INVALID_ENTRY: 422,
  INVALID_BACKEND_URL: 500,
  INVALID_OPTION: 422,
  BACKEND_UNAVAILABLE: 503,
  SCHEMA_TOO_NEW: 500,
  CLOSED: 503,
  LEASE_LOST: 409,
  SESSION_NOT_FOUND: 404,
  SESSION_EXPIRED: 410,
  SESSION_BUSY: 409,
  // A spending limit is 402; a count limit (sessions, turns) is 429. See statusOf.
  LIMIT_EXCEEDED: 429,
  INVALID_INPUT: 422,
  SESSION_ARCHIVED: 409,
  SESSION_EXISTS: 409,
  FORBIDDEN: 403,
  CONFLICT: 409,
  TURN_FAILED: 502,
  UNAUTHORIZED: 401,
  RATE_LIMITED: 429,
  BODY_TOO_LARGE: 413,
  ROUTE_NOT_FOUND: 404,
  NOT_FOUND: 404,
  UNAVAILABLE: 503,
  INTERNAL: 500,
};

export function statusOf(error: SessionHubError): number {
  if (error.code === 'LIMIT_EXCEEDED' && String(error.details.limit ?? '').startsWith('maxCost')) {
    return 402;
  }
  return STATUS[error.code];
}

/**
 * Any error a route or Fastify raised, as the API's error: our own as they are, Fastify's
 * (bodies too large, JSON that does not parse, a wrong content type) under our codes, anything
 * else as a 500 whose message hides the internals (they go to the log).
 */
export function toApiError(error: unknown): SessionHubError | null {
  if (isSessionHubError(error)) return error;
  const fastify = error as Partial<FastifyError>;
  switch (fastify.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new SessionHubError(
        'BODY_TOO_LARGE',
        'The request body is larger than this service accepts; send less (the limit is in details).',
        { limitBytes: (error as { bodyLimit?: number }).bodyLimit ?? null },
      );
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new SessionHubError(
        'INVALID_INPUT',
        'Send the request body as JSON with Content-Type: application/json.',
        {},
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new SessionHubError(
        'INVALID_INPUT',
        `The request body is not valid JSON: ${fastify.message ?? 'parse error'}.`,
        {},
      );
  }
  if (fastify.statusCode === 429) {
    return new SessionHubError('RATE_LIMITED', fastify.message ?? 'Too many requests.', {});
  }
  if (typeof fastify.statusCode === 'number' && fastify.statusCode < 500) {
    return new SessionHubError('INVALID_INPUT', fastify.message ?? 'Bad request.', {});
  }
  return null;
}

export function errorBody(error: SessionHubError): ErrorBody {
  return { error: { code: error.code, message: error.message, details: error.details } };
}

/** The error for a 500: nothing of the internals, a pointer to the log. */
export function internalError(requestId: string): SessionHubError {
  return new SessionHubError(
    'INTERNAL',
    `Something went wrong inside the service; its log has the details under request id ${requestId}.`,
    { requestId },
  );
}
