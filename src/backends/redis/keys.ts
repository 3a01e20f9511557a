/**
 * The Redis key scheme. Every name is `<prefix>:{<tag>}:<suffix>`:
 *
 *   per session   tag = enc(projectKey) ':' enc(sessionId)
 *     meta             HASH   mtime, born, floor, sw, sm, sum; usage, ut; once registered the
 *                             record r:<field> (see docs/redis.md)
 *     main             LIST   main transcript, one JSON entry per element
 *     main:ids         SET    uuids stored in the main transcript
 *     subkeys          HASH   subpath -> name of its LIST key
 *     sub:enc(subpath)      LIST  one subagent transcript
 *     sub:enc(subpath):ids  SET   uuids stored in that transcript
 *     charges          HASH   daily-usage records not yet known to be applied: stamp -> record
 *   per project   tag = enc(projectKey)
 *     sessions         ZSET   sessionId scored by mtime (what listSessions returns)
 *     summaries        HASH   sessionId -> SessionSummaryEntry JSON
 *     gone:enc(sessionId)   STRING  deletion stamp, expires (see DELETE_FENCE_MS)
 *   per tenant    tag = enc(tenantProjectKey(tenant)): the project of the tenant's transcripts
 *     reg:ids          HASH   sessionId -> what the list indexes hold for it (see registry.ts)
 *     reg:all          ZSET   listing members (see listMember) of every registered session
 *     reg:owner:enc(owner)   ZSET  the same, for one owner
 *     reg:forks:enc(parent)  ZSET  the same, for the direct forks of one session
 *     usage:charged    HASH   sessionId -> stamp of the newest charge applied to daily usage
 *     usage:days       ZSET   UTC days with daily usage (score 0, member YYYY-MM-DD)
 *     usage:day:enc(day)     HASH  one day's figures, six fields per owner (earlier versions)
 *     usage:spend:enc(owner):enc(day)  HASH  rid -> that registration's total of the day
 *     usage:owners:enc(day)  SET   owners with a spend HASH that day (see charges.ts)
 *   sweep index   tag = '!sweep' (one for the prefix)
 *     expiring         ZSET   sweep member scored at or before the session's expiresAt
 *     purging          ZSET   sweep member scored at or before the session's purgeAt
 *     claims           HASH   kind + sweep member -> token of the sweeper that claimed it
 *   per lease     tag = '#' enc(resource)
 *     lease            HASH    holder, token, fence, exp (absent when free; see lease-manager.ts)
 *     fence            STRING  the resource's fence counter, never expires
 *   API keys      tag = '$api-keys' (one for the prefix; see api-keys.ts)
 *     key:enc(id)      HASH    one key's fields; a field that is null is absent
 *     all              ZSET    every key id, scored by createdAt
 *     tenant:enc(tenant)     ZSET  the same, for one tenant
 *
 * `enc` keeps [A-Za-z0-9._-] and percent-encodes every other UTF-8 byte, `%` included. So an
 * encoded component never holds ':', '{', '}' or a glob character, which makes every name
 * parse back to exactly one (prefix, tag, suffix): no two keys collide, and the hash tag is
 * always the braces this module wrote (the prefix is refused if it holds braces). The two tag
 * shapes differ by their ':' so a project tag never equals a session tag, and a lease tag starts
 * with '#', the sweep tag with '!', the API-key tag with '$', which `enc` never writes, so they
 * equal neither.
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
  /** HASH of daily-usage charges this session made that are not known to be applied yet. */
  charges: string;
}

export interface ProjectKeys {
  sessions: string;
  summaries: string;
  gone(sessionId: string): string;
  /** HASH: sessionId -> what the registry's list indexes hold for it. */
  registered: string;
  /** ZSET of listing members of every registered session of the tenant. */
  listAll: string;
  /** ZSET of listing members of one owner's sessions. */
  listOwner(owner: string): string;
  /** ZSET of listing members of the direct forks of one session. */
  forks(parentId: string): string;
  /** HASH: sessionId -> stamp of the newest charge applied to daily usage. */
  charged: string;
  /** ZSET of the days that have daily usage. */
  days: string;
  /** HASH of one day's figures per owner, as earlier versions charged them. */
  day(day: string): string;
  /** HASH: rid -> the total of that registration of one of the owner's sessions on `day`. */
  spend(owner: string, day: string): string;
  /** SET of the owners that have a spend HASH on `day`. */
  owners(day: string): string;
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
    charges: `${base}charges`,
  };
}

/** Keys of one project's indexes; all share the project's hash tag. */
export function projectKeys(prefix: string, projectKey: string): ProjectKeys {
  const base = `${prefix}:{${encodeComponent(projectKey)}}:`;
  return {
    sessions: `${base}sessions`,
    summaries: `${base}summaries`,
    gone: (sessionId) => `${base}gone:${encodeComponent(sessionId)}`,
    registered: `${base}reg:ids`,
    listAll: `${base}reg:all`,
    listOwner: (owner) => `${base}reg:owner:${encodeComponent(owner)}`,
    forks: (parentId) => `${base}reg:forks:${encodeComponent(parentId)}`,
    charged: `${base}usage:charged`,
    days: `${base}usage:days`,
    day: (day) => `${base}usage:day:${encodeComponent(day)}`,
    spend: (owner, day) => `${base}usage:spend:${encodeComponent(owner)}:${encodeComponent(day)}`,
    owners: (day) => `${base}usage:owners:${encodeComponent(day)}`,
  };
}

export interface SweepKeys {
  expiring: string;
  purging: string;
  claims: string;
}

/**
 * The sweep index of every tenant: one slot for the prefix, so a sweeper finds due sessions
 * with one command whatever their tenant. '!' never comes out of `enc`, so no project, session
 * or lease tag equals it.
 */
export function sweepKeys(prefix: string): SweepKeys {
  const base = `${prefix}:{!sweep}:`;
  return { expiring: `${base}expiring`, purging: `${base}purging`, claims: `${base}claims` };
}

/** Width of the zero-padded creation time at the front of a listing member. */
export const LIST_TIME_DIGITS = 16;

/**
 * A session's member in the listing ZSETs, which hold every member at score 0 so that they sort
 * by bytes: the creation time, zero-padded so that byte order is time order, then the id. Read
 * in reverse this is the listing order (newest first, ties by id descending), and a cursor is
 * an exclusive bound, so a page starts with one O(log n) seek.
 */
export function listMember(createdAt: number, id: string): string {
  return `${listTime(createdAt)}${id}`;
}

export function listTime(ms: number): string {
  return String(ms).padStart(LIST_TIME_DIGITS, '0');
}

export function parseListMember(member: string): { createdAt: number; id: string } {
  return {
    createdAt: Number(member.slice(0, LIST_TIME_DIGITS)),
    id: member.slice(LIST_TIME_DIGITS),
  };
}

/** A session's member in the sweep index: its tenant and id, unambiguously. */
export function sweepMember(tenant: string, id: string): string {
  return JSON.stringify([tenant, id]);
}

export function parseSweepMember(member: string): { tenant: string; id: string } {
  const [tenant, id] = JSON.parse(member) as [string, string];
  return { tenant, id };
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

export interface ApiKeyKeys {
  /** HASH of one key's fields. */
  key(id: string): string;
  /** ZSET of every key id, scored by createdAt. */
  all: string;
  /** ZSET of one tenant's key ids, scored by createdAt. */
  tenant(tenant: string): string;
}

/**
 * The API keys of every tenant: one slot for the prefix, so one script writes a key and both of
 * its listings. '$' never comes out of `enc`, so no other tag equals this one.
 */
export function apiKeyKeys(prefix: string): ApiKeyKeys {
  const base = `${prefix}:{$api-keys}:`;
  return {
    key: (id) => `${base}key:${encodeComponent(id)}`,
    all: `${base}all`,
    tenant: (tenant) => `${base}tenant:${encodeComponent(tenant)}`,
  };
}
