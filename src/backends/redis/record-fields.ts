import { emptyUsageState, type UsageState } from '../../core/usage.js';
import { decodeUsageState } from '../../core/usage-codec.js';
import type { NewSession, SessionPatch, StoredSession } from '../registry.js';

/**
 * How a session's record sits in its meta HASH, beside the transcript's own fields (mtime, born,
 * floor, sw, sm, sum): one field per record field, `r:<name>`, holding that field's JSON, so an
 * update writes only the fields its patch names and a script can read the few it needs
 * (`r:status`, `r:expiresAt` ...) without parsing the rest. `r:version` is the record's CAS
 * version, apart from the usage token (`ut`) appends compare, so neither invalidates the other.
 * `r:rid` is a random id per registration, which tells one incarnation of an id from the next.
 */

/** Record fields stored as `r:<name>`, in the order scripts return them. */
export const RECORD_NAMES = [
  'tenant',
  'owner',
  'title',
  'tags',
  'metadata',
  'status',
  'createdAt',
  'lastActiveAt',
  'expiresAt',
  'expiredAt',
  'purgeAt',
  'extendedUntil',
  'forkedFrom',
  'expiry',
  'limits',
  'version',
  'rid',
] as const;

type RecordName = (typeof RECORD_NAMES)[number];

/** The meta fields a full read returns: the record's, then the usage state. */
export const READ_FIELDS: readonly string[] = [...RECORD_NAMES.map((name) => `r:${name}`), 'usage'];

/** Lua list of READ_FIELDS, for scripts that return the record they wrote. */
export const READ_FIELDS_LUA = `{ ${READ_FIELDS.map((field) => `'${field}'`).join(', ')} }`;

const PATCHABLE: ReadonlySet<string> = new Set<keyof SessionPatch>([
  'title',
  'tags',
  'metadata',
  'status',
  'lastActiveAt',
  'expiresAt',
  'expiredAt',
  'purgeAt',
  'extendedUntil',
  'expiry',
  'limits',
]);

/** HSET arguments for a new record at version 1. */
export function newRecordArgs(session: NewSession, rid: string): string[] {
  const args: string[] = [];
  for (const name of RECORD_NAMES) {
    if (name === 'version' || name === 'rid') continue;
    args.push(`r:${name}`, JSON.stringify(session[name]));
  }
  args.push('r:version', '1', 'r:rid', JSON.stringify(rid));
  return args;
}

/** HSET arguments for the fields a patch names; anything else in it is ignored. */
export function patchArgs(patch: SessionPatch): string[] {
  const args: string[] = [];
  for (const [name, value] of Object.entries(patch)) {
    if (!PATCHABLE.has(name) || value === undefined) continue;
    args.push(`r:${name}`, JSON.stringify(value));
  }
  return args;
}

/** A stored session from the values of READ_FIELDS; null when the hash holds no record. */
export function decodeRecord(
  id: string,
  values: ReadonlyArray<string | null>,
): (StoredSession & { rid: string }) | null {
  const raw = {} as Record<RecordName, unknown>;
  for (let i = 0; i < RECORD_NAMES.length; i++) {
    const text = values[i];
    if (text === null || text === undefined) return null;
    raw[RECORD_NAMES[i] as RecordName] = JSON.parse(text);
  }
  const usageText = values[RECORD_NAMES.length];
  const usage: UsageState = usageText ? decodeUsageState(usageText) : emptyUsageState();
  return { ...(raw as unknown as StoredSession & { rid: string }), id, usage };
}

/** The record without the bookkeeping the registry interface does not expose. */
export function publicRecord(record: StoredSession & { rid: string }): StoredSession {
  const { rid: _rid, ...session } = record;
  return session;
}
