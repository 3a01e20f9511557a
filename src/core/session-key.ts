import { SessionHubError } from './errors.js';

/** The SDK's SessionKey, restated so core/ depends on nothing. */
export interface SessionKey {
  projectKey: string;
  sessionId: string;
  subpath?: string;
}

export interface SessionRef {
  projectKey: string;
  sessionId: string;
}

function checkPart(field: string, value: unknown, key: unknown): asserts value is string {
  if (typeof value !== 'string') {
    throw new SessionHubError(
      'INVALID_SESSION_KEY',
      `SessionKey.${field} must be a string, got ${value === null ? 'null' : typeof value}.`,
      { field, key },
    );
  }
  if (value.length === 0) {
    const hint =
      field === 'subpath'
        ? ' Omit subpath (leave it undefined) to address the main transcript.'
        : ' Pass the non-empty value the SDK gave you.';
    throw new SessionHubError(
      'INVALID_SESSION_KEY',
      `SessionKey.${field} must not be empty.${hint}`,
      { field, key },
    );
  }
  // Lone surrogates cannot be encoded to UTF-8 without loss, so two different keys could map
  // to the same stored name. Refuse them rather than risk a collision.
  if (!value.isWellFormed()) {
    throw new SessionHubError(
      'INVALID_SESSION_KEY',
      `SessionKey.${field} contains an unpaired UTF-16 surrogate; use well-formed Unicode.`,
      { field, key },
    );
  }
}

/** Throws INVALID_SESSION_KEY unless `key` is a usable SessionKey. */
export function assertSessionKey(key: unknown): asserts key is SessionKey {
  if (typeof key !== 'object' || key === null) {
    throw new SessionHubError(
      'INVALID_SESSION_KEY',
      'A SessionKey must be an object { projectKey, sessionId, subpath? }.',
      { key },
    );
  }
  const k = key as Record<string, unknown>;
  checkPart('projectKey', k.projectKey, key);
  checkPart('sessionId', k.sessionId, key);
  if (k.subpath !== undefined) checkPart('subpath', k.subpath, key);
}

/** Throws INVALID_SESSION_KEY unless `ref` names a session (no subpath). */
export function assertSessionRef(ref: unknown): asserts ref is SessionRef {
  assertSessionKey(ref);
}

export function assertProjectKey(projectKey: unknown): asserts projectKey is string {
  checkPart('projectKey', projectKey, { projectKey });
}
