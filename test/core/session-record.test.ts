import { describe, expect, test } from 'vitest';
import { isSessionHubError } from '../../src/core/errors.js';
import {
  compareForListing,
  decodeCursor,
  encodeCursor,
  type ListableSession,
  type ListCursor,
  matchesQuery,
  metadataSchema,
  parseInput,
  parseSessionQuery,
  type SessionQuery,
  tagsSchema,
  titleSchema,
} from '../../src/core/session-record.js';
import { thrown } from '../helpers/thrown.js';

const T0 = Date.UTC(2026, 0, 1);

function record(id: string, overrides: Partial<ListableSession> = {}): ListableSession {
  return {
    id,
    tenant: 'acme',
    owner: 'alice',
    title: null,
    tags: [],
    status: 'active',
    createdAt: T0,
    lastActiveAt: T0,
    expiresAt: null,
    ...overrides,
  };
}

/** One page the way every backend must produce it: filter, order, cut, cursor. */
function page(
  records: ListableSession[],
  scope: { tenant: string; owner?: string },
  query: SessionQuery,
) {
  const rows = records
    .filter((r) => matchesQuery(r, scope, query, T0))
    .sort(compareForListing)
    .slice(0, query.limit);
  const last = rows.at(-1);
  return {
    rows,
    nextCursor: rows.length === query.limit && last ? encodeCursor(last) : undefined,
  };
}

describe('session input', () => {
  test('titles, tags and metadata are validated with messages that name the field', () => {
    expect(parseInput(titleSchema, 'Trip to Lisbon', 'title')).toBe('Trip to Lisbon');
    expect(parseInput(tagsSchema, ['support', 'vip'], 'tags')).toEqual(['support', 'vip']);
    for (const [schema, input, what, reason] of [
      [titleSchema, 'x'.repeat(201), 'title', /title must be at most 200/],
      [tagsSchema, ['has space'], 'tags', /tags\.0 must not contain spaces/],
      [tagsSchema, Array.from({ length: 33 }, (_, i) => `t${i}`), 'tags', /at most 32 tags/],
      [metadataSchema, { blob: 'x'.repeat(20_000) }, 'metadata', /at most 16384 bytes/],
      [metadataSchema, ['not', 'an', 'object'], 'metadata', /metadata/],
    ] as const) {
      const error = thrown(() => parseInput(schema as never, input, what));
      expect(isSessionHubError(error, 'INVALID_INPUT')).toBe(true);
      expect((error as Error).message).toMatch(reason);
    }
  });
});

describe('list queries and cursors', () => {
  test('a query is validated and its status normalised to a list', () => {
    expect(parseSessionQuery({ status: 'active' })).toEqual({ status: ['active'], limit: 50 });
    expect(parseSessionQuery(undefined)).toEqual({ limit: 50 });
    for (const [input, reason] of [
      [{ limit: 0 }, /limit/],
      [{ limit: 201 }, /limit/],
      [{ status: 'gone' }, /status/],
      [{ sort: 'title' }, /Unrecognized|sort/],
      [{ createdFrom: -1 }, /createdFrom/],
    ] as const) {
      const error = thrown(() => parseSessionQuery(input));
      expect(isSessionHubError(error, 'INVALID_INPUT')).toBe(true);
      expect((error as Error).message).toMatch(reason);
    }
  });

  test('cursors round-trip, and a foreign cursor gets a clear error', () => {
    const cursor: ListCursor = { createdAt: T0, id: 'a/b:c é' };
    expect(decodeCursor(encodeCursor(cursor))).toEqual(cursor);
    expect(encodeCursor(cursor)).toMatch(/^[A-Za-z0-9_-]+$/);
    for (const bad of ['nope', encodeCursor({ createdAt: T0, id: '' }), 'W1siYSJdXQ']) {
      const error = thrown(() => decodeCursor(bad));
      expect(isSessionHubError(error, 'INVALID_INPUT')).toBe(true);
      expect((error as Error).message).toMatch(/nextCursor/);
    }
  });

  test('filters narrow within the caller’s scope', () => {
    const records = [
      record('1', { title: 'Lisbon trip', tags: ['travel'] }),
      record('2', { owner: 'bob', status: 'archived' }),
      record('3', { tenant: 'other' }),
      record('4', { createdAt: T0 + 10, lastActiveAt: T0 + 100, status: 'expired' }),
    ];
    const ids = (scope: { tenant: string; owner?: string }, query: Partial<SessionQuery>) =>
      records.filter((r) => matchesQuery(r, scope, { limit: 50, ...query }, T0)).map((r) => r.id);
    expect(ids({ tenant: 'acme', owner: 'alice' }, {})).toEqual(['1', '4']);
    expect(ids({ tenant: 'acme' }, {})).toEqual(['1', '2', '4']);
    expect(ids({ tenant: 'acme' }, { owner: 'bob' })).toEqual(['2']);
    expect(ids({ tenant: 'acme' }, { status: ['archived', 'expired'] })).toEqual(['2', '4']);
    expect(ids({ tenant: 'acme' }, { tag: 'travel' })).toEqual(['1']);
    expect(ids({ tenant: 'acme' }, { titleContains: 'LISBON' })).toEqual(['1']);
    expect(ids({ tenant: 'acme' }, { createdFrom: T0 + 1 })).toEqual(['4']);
    expect(ids({ tenant: 'acme' }, { createdTo: T0 + 1 })).toEqual(['1', '2']);
    expect(ids({ tenant: 'acme' }, { activeFrom: T0 + 50, activeTo: T0 + 101 })).toEqual(['4']);
  });

  test('paging sees every session that exists throughout exactly once, while others come and go', () => {
    // A seeded generator keeps the run deterministic; 40 rounds of random pages and churn.
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let round = 0; round < 40; round++) {
      const stable = Array.from({ length: 30 + Math.floor(random() * 40) }, (_, i) =>
        // Many share a createdAt, so the id tie-break matters.
        record(`s${round}-${i}`, { createdAt: T0 + Math.floor(random() * 10) }),
      );
      let churn: ListableSession[] = [];
      const seen: string[] = [];
      const limit = 1 + Math.floor(random() * 9);
      let cursor: string | undefined;
      do {
        const current = [...stable, ...churn];
        const result = page(current, { tenant: 'acme' }, parseSessionQuery({ limit, cursor }));
        seen.push(...result.rows.map((r) => r.id));
        cursor = result.nextCursor;
        // Between pages: new sessions appear at any time, some churned ones are deleted.
        churn = churn.filter(() => random() > 0.5);
        for (let n = Math.floor(random() * 4); n > 0; n--) {
          churn.push(
            record(`c${round}-${random()}`, { createdAt: T0 + Math.floor(random() * 12) }),
          );
        }
      } while (cursor !== undefined);
      const stableSeen = seen.filter((id) => id.startsWith('s'));
      expect(new Set(seen).size).toBe(seen.length);
      expect(stableSeen.sort()).toEqual(stable.map((r) => r.id).sort());
    }
  });
});
