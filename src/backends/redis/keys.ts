/**
 * The Redis key scheme. Every name is `<prefix>:{<tag>}:<suffix>`:
 *
 *   per session   tag = enc(projectKey) ':' enc(sessionId)
 *     meta             HASH   mtime, born, floor, sw, sm, sum (see docs/redis.md)
 *     main             LIST   main transcript, one JSON entry per element
 *     main:ids         SET    uuids stored in the main transcript
 *     subkeys          HASH   subpath -> name of its LIST key
 *     sub:enc(subpath)      LIST  one subagent transcript
 *     sub:enc(subpath):ids  SET   uuids stored in that transcript
 *   per project   tag = enc(projectKey)
 *     sessions         ZSET   sessionId scored by mtime (what listSessions returns)
 *     summaries        HASH   sessionId -> SessionSummaryEntry JSON
 *     gone:enc(sessionId)   STRING  deletion stamp, expires (see DELETE_FENCE_MS)
 *   per lease     tag = '#' enc(resource)
 *     lease            HASH    holder, token, fence, exp (absent when free; see lease-manager.ts)
 *     fence            STRING  the resource's fence counter, never expires
 *
 * `enc` keeps [A-Za-z0-9._-] and percent-encodes every other UTF-8 byte, `%` included. So an
 * encoded component never holds ':', '{', '}' or a glob character, which makes every name
 * parse back to exactly one (prefix, tag, suffix): no two keys collide, and the hash tag is
 * always the braces this module wrote (the prefix is refused if it holds braces). The two tag
 * shapes differ by their ':' so a project tag never equals a session tag, and a lease tag starts
 * with '#', which `enc` never writes, so it equals neither.
 */

const SAFE = /^[A-Za-z0-9._-]*$/;
const HEX = '0123456789ABCDEF';

/** Injective, hash-tag-safe encoding of one key component. */
export function encodeComponent(value: string): string {
  // Most ids (UUIDs, sanitized paths without separators) need no encoding at all.
  if (SAFE.test(value)) return value;
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const char = String.fromCharCode(byte);
    out += byte < 0x80 && SAFE.test(char) ? char : `%${HEX[byte >> 4]}${HEX[byte & 15]}`;
  }
  return out;
}

/** The prefix goes before the hash tag, so braces in it would move the tag. */
export function isValidPrefix(prefix: unknown): prefix is string {
  return typeof prefix === 'string' && prefix !== '' && !/[{}\s]/.test(prefix);
}

/** Suffix that names the dedup SET of a transcript LIST; the delete script relies on it too. */
export const IDS_SUFFIX = ':ids';

export interface TranscriptKeys {
  /** LIST of JSON entries. */
  list: string;
  /** SET of the uuids already in `list`. */
  ids: string;
}

export interface SessionKeys {
  meta: string;
  main: TranscriptKeys;
  subkeys: string;
  sub(subpath: string): TranscriptKeys;
}

export interface ProjectKeys {
  sessions: string;
  summaries: string;
  gone(sessionId: string): string;
}

function transcript(list: string): TranscriptKeys {
  return { list, ids: list + IDS_SUFFIX };
}

/** Keys of one session; all share the session's hash tag, so one script may touch them all. */
export function sessionKeys(prefix: string, projectKey: string, sessionId: string): SessionKeys {
  const base = `${prefix}:{${encodeComponent(projectKey)}:${encodeComponent(sessionId)}}:`;
  return {
    meta: `${base}meta`,
    main: transcript(`${base}main`),
    subkeys: `${base}subkeys`,
    sub: (subpath) => transcript(`${base}sub:${encodeComponent(subpath)}`),
  };
}

/** Keys of one project's indexes; all share the project's hash tag. */
export function projectKeys(prefix: string, projectKey: string): ProjectKeys {
  const base = `${prefix}:{${encodeComponent(projectKey)}}:`;
  return {
    sessions: `${base}sessions`,
    summaries: `${base}summaries`,
    gone: (sessionId) => `${base}gone:${encodeComponent(sessionId)}`,
  };
}

export interface LeaseKeys {
  /** HASH of the current lease, absent when free. */
  lease: string;
  /** STRING counter of the resource's fences; outlives every lease. */
  fence: string;
}

/** Keys of one lease resource; both share its hash tag, so each lease script stays on one slot. */
export function leaseKeys(prefix: string, resource: string): LeaseKeys {
  const base = `${prefix}:{#${encodeComponent(resource)}}:`;
  return { lease: `${base}lease`, fence: `${base}fence` };
}
