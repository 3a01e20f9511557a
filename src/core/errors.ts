/**
 * The one error type sessionhub throws. `code` is stable and meant for programs; `message` is
 * meant for people and says what to do about it.
 */
export const ERROR_CODES = [
  /** A SessionKey (projectKey, sessionId, subpath) is empty, malformed or not a string. */
  'INVALID_SESSION_KEY',
  /** Entries handed to append() are not an array of JSON objects. */
  'INVALID_ENTRY',
  /** A backend URL names no known backend or carries options that do not parse. */
  'INVALID_BACKEND_URL',
  /** A configuration value is out of range or of the wrong type. */
  'INVALID_OPTION',
  /** The backend could not be reached or refused the operation. */
  'BACKEND_UNAVAILABLE',
  /** The database holds a schema newer than this version of sessionhub understands. */
  'SCHEMA_TOO_NEW',
  /** A store or backend was used after close(). */
  'CLOSED',
  /** A lease was renewed or used after it expired or passed to another holder. */
  'LEASE_LOST',
  /** No session with that id is visible to the caller (missing, or another tenant's/owner's). */
  'SESSION_NOT_FOUND',
  /** The session expired; details say when and how to extend it. */
  'SESSION_EXPIRED',
  /** Another turn holds the session's lease. */
  'SESSION_BUSY',
  /** A configured limit (sessions, turns, cost) would be exceeded; details name it. */
  'LIMIT_EXCEEDED',
  /** Input to a session operation (title, tags, metadata, a list query, a cursor) is invalid. */
  'INVALID_INPUT',
  /** The session is archived: unarchive it before running turns on it. */
  'SESSION_ARCHIVED',
  /** A session with that id already exists in the tenant. */
  'SESSION_EXISTS',
  /** The caller may see the session but not do this to it (e.g. a user changing its limits). */
  'FORBIDDEN',
  /** A session changed under a read-modify-write too many times in a row; retry the call. */
  'CONFLICT',
  /** A turn could not complete: the model API kept failing, or the SDK process died. */
  'TURN_FAILED',
  /** The request carries no API key, or one that is malformed, unknown or revoked. */
  'UNAUTHORIZED',
  /** The API key made more requests than its rate limit allows; retry after the given time. */
  'RATE_LIMITED',
  /** The request body is larger than the service accepts. */
  'BODY_TOO_LARGE',
  /** Something named that is not a session (an API key, a file to import) does not exist. */
  'NOT_FOUND',
  /** No such route (method and path) in the HTTP API. */
  'ROUTE_NOT_FOUND',
  /** The service is shutting down or not ready; try another instance or try again shortly. */
  'UNAVAILABLE',
  /** Something unexpected went wrong inside the service; its log has the details. */
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class SessionHubError extends Error {
  override readonly name = 'SessionHubError';
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;

  constructor(
    code: ErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.code = code;
    this.details = details;
  }

  toJSON(): { code: ErrorCode; message: string; details: Record<string, unknown> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export function isSessionHubError(error: unknown, code?: ErrorCode): error is SessionHubError {
  return error instanceof SessionHubError && (code === undefined || error.code === code);
}

/** The error for any call on a store or lease manager after its backend was closed. */
export function closedError(what: string): SessionHubError {
  return new SessionHubError(
    'CLOSED',
    `This ${what} is closed: backend.close() was called. Open the backend again to keep using it.`,
    { component: what },
  );
}
