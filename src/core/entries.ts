import { SessionHubError } from './errors.js';

/** One transcript line; opaque to sessionhub except for `uuid`, the idempotency key. */
export interface TranscriptEntry {
  type: string;
  uuid?: string;
  timestamp?: string;
  [field: string]: unknown;
}

/** Throws INVALID_ENTRY unless `entries` is an array of JSON objects. */
export function assertEntries(entries: unknown): asserts entries is TranscriptEntry[] {
  if (!Array.isArray(entries)) {
    throw new SessionHubError(
      'INVALID_ENTRY',
      `append() takes an array of transcript entries, got ${entries === null ? 'null' : typeof entries}.`,
    );
  }
  for (let i = 0; i < entries.length; i++) {
    const entry: unknown = entries[i];
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw new SessionHubError(
        'INVALID_ENTRY',
        `Entry ${i} is not a JSON object; every transcript entry is an object with a string "type".`,
        { index: i },
      );
    }
  }
}

/** The entry's idempotency key, if it has a usable one. */
export function entryUuid(entry: TranscriptEntry): string | undefined {
  const uuid = entry.uuid;
  return typeof uuid === 'string' && uuid.length > 0 ? uuid : undefined;
}

/**
 * Picks the entries of a batch that are not stored yet: an entry whose uuid is in `seen`, or
 * repeats an earlier entry of the same batch, is dropped; entries without a uuid always stay.
 * `seen` is updated with the uuids kept.
 */
export function selectNewEntries(entries: TranscriptEntry[], seen: Set<string>): TranscriptEntry[] {
  const fresh: TranscriptEntry[] = [];
  for (const entry of entries) {
    const uuid = entryUuid(entry);
    if (uuid !== undefined) {
      if (seen.has(uuid)) continue;
      seen.add(uuid);
    }
    fresh.push(entry);
  }
  return fresh;
}

/**
 * Serialises an entry for storage. JSON.stringify escapes U+0000 as \u0000, so the result is safe
 * for text columns that refuse NUL bytes.
 */
export function serializeEntry(entry: TranscriptEntry, index = 0): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(entry);
  } catch (error) {
    throw new SessionHubError(
      'INVALID_ENTRY',
      `Entry ${index} cannot be serialised as JSON (${(error as Error).message}); entries must be plain JSON data.`,
      { index },
      { cause: error },
    );
  }
  if (text === undefined) {
    throw new SessionHubError('INVALID_ENTRY', `Entry ${index} serialises to nothing.`, { index });
  }
  return text;
}

/** Parses stored entry lines back into entries. */
export function parseEntries(lines: string[]): TranscriptEntry[] {
  // A parse per line measured faster than one parse of the lines joined into an array.
  return lines.map((line) => JSON.parse(line) as TranscriptEntry);
}
