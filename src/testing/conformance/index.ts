import {
  foldSessionSummary,
  type SessionKey,
  type SessionStore,
  type SessionStoreEntry,
  type SessionSummaryEntry,
} from '@anthropic-ai/claude-agent-sdk';
import { afterEach, describe, expect, test } from 'vitest';

/** A store opened for one test. */
export interface StoreUnderTest {
  store: SessionStore;
  /** Releases the store (connections, handles). */
  close(): Promise<void>;
  /**
   * Closes this store and opens a new one over the same data. Give it for durable stores; the
   * suite then checks that everything acknowledged survives a restart.
   */
  reopen?(): Promise<StoreUnderTest>;
}

export interface ConformanceOptions {
  /** Per-test timeout in milliseconds for the heavier tests (5 MB entries, concurrency). */
  timeoutMs?: number;
  /**
   * The store keeps its data across close(): every opened store must then offer reopen(), and
   * the suite checks that what was acknowledged survives.
   */
  durable?: boolean;
}

/** Opens a fresh, empty, isolated store on every call (a new schema, key prefix or folder). */
export type OpenStore = () => Promise<StoreUnderTest>;

type FullStore = SessionStore & Required<SessionStore>;

const KEY: SessionKey = { projectKey: 'proj', sessionId: 'sess' };
const E = (type: string, extra: Record<string, unknown> = {}): SessionStoreEntry => ({
  type,
  ...extra,
});

/** Key-order-insensitive canonical JSON, so JSONB-style key reordering still compares equal. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)),
        )
      : v,
  );
}

function expectEntries(actual: unknown, expected: SessionStoreEntry[]): void {
  expect(actual).not.toBeNull();
  expect(canonical(actual)).toBe(canonical(expected));
}

function full(store: SessionStore): FullStore {
  for (const method of ['listSessions', 'listSessionSummaries', 'delete', 'listSubkeys'] as const) {
    expect(typeof store[method], `store.${method} must be implemented`).toBe('function');
  }
  return store as FullStore;
}

/** The summary a correct store holds after `entries` (in stored order) were appended. */
function expectedSummary(key: SessionKey, entries: SessionStoreEntry[], mtime: number) {
  return foldSessionSummary(undefined, key, entries, { mtime });
}

function summaryOf(summaries: SessionSummaryEntry[], sessionId: string) {
  const found = summaries.filter((s) => s.sessionId === sessionId);
  expect(found, `exactly one summary for ${sessionId}`).toHaveLength(1);
  return found[0] as SessionSummaryEntry;
}

const userEntry = (uuid: string, text: string, extra: Record<string, unknown> = {}) =>
  E('user', {
    uuid,
    timestamp: '2026-01-01T00:00:00.000Z',
    message: { role: 'user', content: text },
    lastPrompt: text,
    ...extra,
  });

/**
 * Registers the SessionStore conformance suite with vitest: the SDK's documented contract and
 * sessionhub's stronger guarantees (idempotent appends, summaries maintained inside append,
 * concurrency, large and unusual entries, hostile keys, durability).
 */
export function describeSessionStoreConformance(
  name: string,
  open: OpenStore,
  options: ConformanceOptions = {},
): void {
  const heavy = options.timeoutMs ?? 60_000;

  describe(name, () => {
    const opened: StoreUnderTest[] = [];
    async function fresh(): Promise<FullStore> {
      const handle = await open();
      opened.push(handle);
      return full(handle.store);
    }
    afterEach(async () => {
      const handles = opened.splice(0);
      for (const handle of handles) await handle.close();
    });

    describe('SDK contract', () => {
      test('append then load returns the same entries in the same order', async () => {
        const store = await fresh();
        const entries = [E('a', { n: 1, nested: { x: [1, 2] } }), E('b', { n: 2 })];
        await store.append(KEY, entries);
        expectEntries(await store.load(KEY), entries);
      });

      test('load of a key never written returns null', async () => {
        const store = await fresh();
        expect(await store.load(KEY)).toBeNull();
        expect(await store.load({ ...KEY, subpath: 'subagents/a' })).toBeNull();
      });

      test('several append calls keep call order', async () => {
        const store = await fresh();
        await store.append(KEY, [E('a')]);
        await store.append(KEY, [E('b'), E('c')]);
        await store.append(KEY, [E('d')]);
        expectEntries(await store.load(KEY), [E('a'), E('b'), E('c'), E('d')]);
      });

      test('append([]) is a no-op', async () => {
        const store = await fresh();
        await store.append(KEY, []);
        expect(await store.load(KEY)).toBeNull();
        expect(await store.listSessions(KEY.projectKey)).toEqual([]);
        await store.append(KEY, [E('a')]);
        await store.append(KEY, []);
        expectEntries(await store.load(KEY), [E('a')]);
      });

      test('subpath transcripts are independent of the main transcript', async () => {
        const store = await fresh();
        await store.append(KEY, [E('main')]);
        await store.append({ ...KEY, subpath: 'subagents/x' }, [E('sub')]);
        expectEntries(await store.load(KEY), [E('main')]);
        expectEntries(await store.load({ ...KEY, subpath: 'subagents/x' }), [E('sub')]);
      });

      test('projectKeys are isolated', async () => {
        const store = await fresh();
        await store.append({ projectKey: 'A', sessionId: 's' }, [E('a')]);
        await store.append({ projectKey: 'B', sessionId: 's' }, [E('b')]);
        expectEntries(await store.load({ projectKey: 'A', sessionId: 's' }), [E('a')]);
        expectEntries(await store.load({ projectKey: 'B', sessionId: 's' }), [E('b')]);
        expect((await store.listSessions('A')).map((s) => s.sessionId)).toEqual(['s']);
      });

      test('listSessions returns the ids of a project with integer epoch-ms mtimes', async () => {
        const store = await fresh();
        const before = Date.now();
        await store.append({ projectKey: 'P', sessionId: 's1' }, [E('a')]);
        await store.append({ projectKey: 'P', sessionId: 's2' }, [E('b')]);
        await store.append({ projectKey: 'Q', sessionId: 's3' }, [E('c')]);
        const listed = await store.listSessions('P');
        expect(listed.map((s) => s.sessionId).sort()).toEqual(['s1', 's2']);
        for (const { mtime } of listed) {
          expect(Number.isInteger(mtime)).toBe(true);
          // Server clocks may differ a little from ours; a minute either way is plenty.
          expect(mtime).toBeGreaterThan(before - 60_000);
          expect(mtime).toBeLessThan(Date.now() + 60_000);
        }
        expect(await store.listSessions('never-seen')).toEqual([]);
      });

      test('listSessions leaves out sessions that only have subagent transcripts', async () => {
        const store = await fresh();
        await store.append({ projectKey: 'P', sessionId: 's1', subpath: 'subagents/x' }, [
          E('sub'),
        ]);
        await store.append({ projectKey: 'P', sessionId: 's2' }, [E('main')]);
        const ids = (await store.listSessions('P')).map((s) => s.sessionId);
        expect(ids).toEqual(['s2']);
      });

      test('mtime moves forward with every append', async () => {
        const store = await fresh();
        await store.append(KEY, [E('a')]);
        const [first] = await store.listSessions(KEY.projectKey);
        await store.append(KEY, [E('b')]);
        const [second] = await store.listSessions(KEY.projectKey);
        expect(second?.mtime).toBeGreaterThan(first?.mtime ?? Number.POSITIVE_INFINITY);
      });

      test('delete of the main key, then load returns null; deleting the unknown is fine', async () => {
        const store = await fresh();
        await store.append(KEY, [E('a')]);
        await store.delete(KEY);
        expect(await store.load(KEY)).toBeNull();
        expect(await store.listSessions(KEY.projectKey)).toEqual([]);
        expect(await store.listSessionSummaries(KEY.projectKey)).toEqual([]);
        await store.delete({ projectKey: 'x', sessionId: 'never' });
        await store.delete({ projectKey: 'x', sessionId: 'never', subpath: 'subagents/n' });
      });

      test('delete of the main key cascades to its subpaths and nothing else', async () => {
        const store = await fresh();
        await store.append(KEY, [E('main')]);
        await store.append({ ...KEY, subpath: 'subagents/a' }, [E('sa')]);
        await store.append({ ...KEY, subpath: 'subagents/b' }, [E('sb')]);
        await store.append({ projectKey: 'proj', sessionId: 'other' }, [E('o')]);
        await store.append({ projectKey: 'proj2', sessionId: 'sess' }, [E('p2')]);
        await store.delete(KEY);
        expect(await store.load(KEY)).toBeNull();
        expect(await store.load({ ...KEY, subpath: 'subagents/a' })).toBeNull();
        expect(await store.load({ ...KEY, subpath: 'subagents/b' })).toBeNull();
        expect(await store.listSubkeys(KEY)).toEqual([]);
        expectEntries(await store.load({ projectKey: 'proj', sessionId: 'other' }), [E('o')]);
        expectEntries(await store.load({ projectKey: 'proj2', sessionId: 'sess' }), [E('p2')]);
        expect((await store.listSessions('proj')).map((s) => s.sessionId)).toEqual(['other']);
      });

      test('delete of a subpath key removes only that subpath', async () => {
        const store = await fresh();
        await store.append(KEY, [E('main')]);
        await store.append({ ...KEY, subpath: 'subagents/a' }, [E('sa')]);
        await store.append({ ...KEY, subpath: 'subagents/b' }, [E('sb')]);
        await store.delete({ ...KEY, subpath: 'subagents/a' });
        expectEntries(await store.load(KEY), [E('main')]);
        expect(await store.load({ ...KEY, subpath: 'subagents/a' })).toBeNull();
        expectEntries(await store.load({ ...KEY, subpath: 'subagents/b' }), [E('sb')]);
        expect(await store.listSubkeys(KEY)).toEqual(['subagents/b']);
        expect((await store.listSessions(KEY.projectKey)).map((s) => s.sessionId)).toEqual([
          'sess',
        ]);
      });

      test('listSubkeys returns the subpaths of one session', async () => {
        const store = await fresh();
        await store.append({ ...KEY, subpath: 'subagents/a' }, [E('sa')]);
        await store.append({ ...KEY, subpath: 'subagents/b' }, [E('sb')]);
        await store.append({ ...KEY, subpath: 'subagents/b' }, [E('sb2')]);
        await store.append({ projectKey: 'proj', sessionId: 'other', subpath: 'subagents/c' }, [
          E('sc'),
        ]);
        expect((await store.listSubkeys(KEY)).sort()).toEqual(['subagents/a', 'subagents/b']);
      });

      test('listSubkeys leaves out the main transcript', async () => {
        const store = await fresh();
        await store.append(KEY, [E('main')]);
        expect(await store.listSubkeys(KEY)).toEqual([]);
        expect(await store.listSubkeys({ projectKey: 'x', sessionId: 'never' })).toEqual([]);
      });
    });

    describe('idempotent appends', () => {
      test('a retried append stores nothing twice', async () => {
        const store = await fresh();
        const batch = [E('user', { uuid: 'u1' }), E('assistant', { uuid: 'u2' })];
        await store.append(KEY, batch);
        await store.append(KEY, batch);
        await store.append(KEY, [E('assistant', { uuid: 'u2' }), E('user', { uuid: 'u3' })]);
        expectEntries(await store.load(KEY), [...batch, E('user', { uuid: 'u3' })]);
      });

      test('a uuid repeated inside one batch is stored once, the first time', async () => {
        const store = await fresh();
        await store.append(KEY, [E('a', { uuid: 'x', n: 1 }), E('b', { uuid: 'x', n: 2 })]);
        expectEntries(await store.load(KEY), [E('a', { uuid: 'x', n: 1 })]);
      });

      test('entries without a uuid are appended every time', async () => {
        const store = await fresh();
        await store.append(KEY, [E('custom-title', { customTitle: 't' })]);
        await store.append(KEY, [E('custom-title', { customTitle: 't' })]);
        expectEntries(await store.load(KEY), [
          E('custom-title', { customTitle: 't' }),
          E('custom-title', { customTitle: 't' }),
        ]);
      });

      test('the same uuid under another key is a different entry', async () => {
        const store = await fresh();
        const entry = E('user', { uuid: 'same' });
        await store.append(KEY, [entry]);
        await store.append({ ...KEY, subpath: 'subagents/a' }, [entry]);
        await store.append({ ...KEY, sessionId: 'other' }, [entry]);
        await store.append({ ...KEY, projectKey: 'other' }, [entry]);
        for (const key of [
          KEY,
          { ...KEY, subpath: 'subagents/a' },
          { ...KEY, sessionId: 'other' },
          { ...KEY, projectKey: 'other' },
        ]) {
          expectEntries(await store.load(key), [entry]);
        }
      });

      test('after a delete, the same uuids can be written again', async () => {
        const store = await fresh();
        await store.append(KEY, [E('a', { uuid: 'u1' })]);
        await store.delete(KEY);
        await store.append(KEY, [E('a', { uuid: 'u1' })]);
        expectEntries(await store.load(KEY), [E('a', { uuid: 'u1' })]);
      });
    });

    describe('summaries', () => {
      test('listSessionSummaries holds the SDK fold of every stored main entry', async () => {
        const store = await fresh();
        const batches = [
          [userEntry('u1', 'first question', { cwd: '/work' })],
          [E('assistant', { uuid: 'a1' }), E('custom-title', { customTitle: 'My title' })],
          [userEntry('u2', 'second question', { gitBranch: 'main' })],
        ];
        for (const batch of batches) await store.append(KEY, batch);
        await store.append({ ...KEY, subpath: 'subagents/a' }, [userEntry('s1', 'subagent')]);
        const [listed] = await store.listSessions(KEY.projectKey);
        const summary = summaryOf(await store.listSessionSummaries(KEY.projectKey), 'sess');
        expect(summary.mtime).toBe(listed?.mtime);
        expect(canonical(summary)).toBe(
          canonical(expectedSummary(KEY, batches.flat(), listed?.mtime ?? 0)),
        );
        expect(summary.data.lastPrompt).toBe('second question');
        expect(summary.data.customTitle).toBe('My title');
      });

      test('a retried old batch does not roll the summary back', async () => {
        const store = await fresh();
        const first = [userEntry('u1', 'one')];
        await store.append(KEY, first);
        await store.append(KEY, [userEntry('u2', 'two')]);
        await store.append(KEY, first);
        const summary = summaryOf(await store.listSessionSummaries(KEY.projectKey), 'sess');
        expect(summary.data.lastPrompt).toBe('two');
      });

      test('summaries are per project and per session', async () => {
        const store = await fresh();
        await store.append({ projectKey: 'P', sessionId: 'a' }, [userEntry('1', 'pa')]);
        await store.append({ projectKey: 'P', sessionId: 'b' }, [userEntry('2', 'pb')]);
        await store.append({ projectKey: 'Q', sessionId: 'a' }, [userEntry('3', 'qa')]);
        const p = await store.listSessionSummaries('P');
        expect(p.map((s) => s.sessionId).sort()).toEqual(['a', 'b']);
        expect(summaryOf(p, 'a').data.lastPrompt).toBe('pa');
        expect(summaryOf(await store.listSessionSummaries('Q'), 'a').data.lastPrompt).toBe('qa');
        expect(await store.listSessionSummaries('never-seen')).toEqual([]);
      });

      test(
        'concurrent appends to one session lose no summary update',
        async () => {
          const store = await fresh();
          await Promise.all(
            Array.from({ length: 32 }, (_, i) =>
              store.append(KEY, [
                userEntry(`c${i}`, `prompt ${i}`),
                E('custom-title', { customTitle: `title ${i}` }),
              ]),
            ),
          );
          const stored = (await store.load(KEY)) ?? [];
          expect(stored).toHaveLength(64);
          const [listed] = await store.listSessions(KEY.projectKey);
          const summary = summaryOf(await store.listSessionSummaries(KEY.projectKey), 'sess');
          // The summary must equal a fold of the transcript in its stored order: no lost update
          // and no fold applied out of order.
          expect(canonical(summary.data)).toBe(
            canonical(expectedSummary(KEY, stored, listed?.mtime ?? 0).data),
          );
          expect(summary.mtime).toBe(listed?.mtime);
        },
        heavy,
      );
    });

    describe('concurrency', () => {
      test(
        '32 concurrent appends within and across sessions lose nothing and keep each call’s order',
        async () => {
          const store = await fresh();
          const sessions = ['s0', 's1', 's2', 's3'];
          const calls = Array.from({ length: 32 }, (_, call) => {
            const sessionId = sessions[call % sessions.length] as string;
            const subpath = call % 8 === 7 ? 'subagents/w' : undefined;
            const key: SessionKey = { projectKey: 'conc', sessionId, subpath };
            const entries = Array.from({ length: 5 }, (_, i) =>
              E('line', { uuid: `${call}-${i}`, call, i }),
            );
            return { key, entries };
          });
          await Promise.all(calls.map(({ key, entries }) => store.append(key, entries)));
          for (const sessionId of sessions) {
            for (const subpath of [undefined, 'subagents/w']) {
              const key: SessionKey = { projectKey: 'conc', sessionId, subpath };
              const mine = calls.filter(
                (c) => c.key.sessionId === sessionId && c.key.subpath === subpath,
              );
              const loaded = ((await store.load(key)) ?? []) as unknown as Array<{
                call: number;
                i: number;
              }>;
              expect(loaded).toHaveLength(mine.length * 5);
              // Each call's five entries sit together and in order.
              for (let at = 0; at < loaded.length; at += 5) {
                const call = loaded[at]?.call;
                expect(loaded.slice(at, at + 5).map((e) => [e.call, e.i])).toEqual(
                  [0, 1, 2, 3, 4].map((i) => [call, i]),
                );
              }
              expect(new Set(loaded.map((e) => e.call)).size).toBe(mine.length);
            }
          }
          expect((await store.listSessions('conc')).map((s) => s.sessionId).sort()).toEqual(
            sessions,
          );
        },
        heavy,
      );
    });

    describe('unusual entries', () => {
      test(
        'an entry of 5 MB round-trips',
        async () => {
          const store = await fresh();
          const big = 'x'.repeat(5 * 1024 * 1024);
          const entries = [E('big', { uuid: 'big', body: big }), E('after', { uuid: 'after' })];
          await store.append(KEY, entries);
          const loaded = await store.load(KEY);
          expect(loaded).toHaveLength(2);
          const body = (loaded?.[0] as { body?: unknown } | undefined)?.body;
          expect(typeof body === 'string' && body.length).toBe(big.length);
          // Compared directly: a 5 MB diff in a failure message helps nobody.
          expect(body === big).toBe(true);
        },
        heavy,
      );

      test('unicode survives: emoji, right-to-left, NUL and other control characters', async () => {
        const store = await fresh();
        const entries = [
          E('text', {
            uuid: 'uni',
            emoji: '👩‍👩‍👧‍👦 🚀 é ñ ü',
            rtl: 'مرحبا بالعالم שלום',
            nul: 'before\u0000after',
            controls: '\u0001\u001f\t\n\r\u2028\u2029',
            quotes: `"'\\\``,
            astral: '𝄞𐍈',
            'key with spaces and ünïcödé': true,
          }),
        ];
        await store.append(KEY, entries);
        expectEntries(await store.load(KEY), entries);
      });

      test('deeply nested entries and every JSON value type round-trip', async () => {
        const store = await fresh();
        let nested: Record<string, unknown> = { leaf: true };
        for (let depth = 0; depth < 100; depth++) nested = { depth, child: nested, list: [depth] };
        const entries = [
          E('deep', {
            uuid: 'deep',
            nested,
            values: [null, true, false, 0, -1.5, 1e21, 'text', [], {}],
          }),
        ];
        await store.append(KEY, entries);
        expectEntries(await store.load(KEY), entries);
      });

      test('appending a non-array, or entries that are not objects, is refused and stores nothing', async () => {
        const store = await fresh();
        await expect(store.append(KEY, 'nope' as unknown as SessionStoreEntry[])).rejects.toThrow();
        await expect(
          store.append(KEY, [E('ok'), 42 as unknown as SessionStoreEntry]),
        ).rejects.toThrow();
        expect(await store.load(KEY)).toBeNull();
      });
    });

    describe('keys', () => {
      const hostile = [
        '/',
        '..',
        '../..',
        '../../etc/passwd',
        '.',
        ':',
        '%',
        '%2F',
        'a/b',
        'a:b',
        'a b',
        ' ',
        '\\',
        '{tag}',
        '}{',
        '*',
        '?',
        '#',
        'x'.repeat(300),
        'é😀',
        '__sessions',
        '__subkeys',
        'sessions',
        'summaries',
        'subagents',
        'main',
        'null',
        '.jsonl',
        'a.jsonl',
      ];

      test(
        'hostile projectKeys and sessionIds neither collide nor escape',
        async () => {
          const store = await fresh();
          const idsFor = (projectKey: string) => [
            ...new Set(['/', '..', 'x'.repeat(300), '__sessions', projectKey]),
          ];
          for (const projectKey of hostile) {
            for (const sessionId of idsFor(projectKey)) {
              await store.append({ projectKey, sessionId }, [E('k', { projectKey, sessionId })]);
            }
          }
          for (const projectKey of hostile) {
            const ids = idsFor(projectKey);
            for (const sessionId of ids) {
              expectEntries(await store.load({ projectKey, sessionId }), [
                E('k', { projectKey, sessionId }),
              ]);
            }
            expect((await store.listSessions(projectKey)).map((s) => s.sessionId).sort()).toEqual(
              [...ids].sort(),
            );
            expect(
              (await store.listSessionSummaries(projectKey)).map((s) => s.sessionId).sort(),
            ).toEqual([...ids].sort());
          }
        },
        heavy,
      );

      test(
        'hostile subpaths neither collide with each other nor with the main transcript',
        async () => {
          const store = await fresh();
          await store.append(KEY, [E('main')]);
          for (const subpath of hostile) {
            await store.append({ ...KEY, subpath }, [E('sub', { subpath })]);
          }
          expectEntries(await store.load(KEY), [E('main')]);
          for (const subpath of hostile) {
            expectEntries(await store.load({ ...KEY, subpath }), [E('sub', { subpath })]);
          }
          expect((await store.listSubkeys(KEY)).sort()).toEqual([...hostile].sort());
          expect((await store.listSessions(KEY.projectKey)).map((s) => s.sessionId)).toEqual([
            'sess',
          ]);
          await store.delete({ ...KEY, subpath: '..' });
          expect(await store.load({ ...KEY, subpath: '..' })).toBeNull();
          expectEntries(await store.load(KEY), [E('main')]);
          expect(await store.listSubkeys(KEY)).toHaveLength(hostile.length - 1);
        },
        heavy,
      );

      test('an empty sessionId, projectKey or subpath is refused with a clear error', async () => {
        const store = await fresh();
        await expect(store.append({ projectKey: 'p', sessionId: '' }, [E('a')])).rejects.toThrow(
          /sessionId/,
        );
        await expect(store.append({ projectKey: '', sessionId: 's' }, [E('a')])).rejects.toThrow(
          /projectKey/,
        );
        await expect(
          store.append({ projectKey: 'p', sessionId: 's', subpath: '' }, [E('a')]),
        ).rejects.toThrow(/subpath/);
        await expect(store.load({ projectKey: 'p', sessionId: '' })).rejects.toThrow(/sessionId/);
        await expect(store.delete({ projectKey: 'p', sessionId: '' })).rejects.toThrow(/sessionId/);
        expect(await store.listSessions('p')).toEqual([]);
      });
    });
  });

  if (!options.durable) return;
  describe(`${name}: durability`, () => {
    const opened: StoreUnderTest[] = [];
    afterEach(async () => {
      for (const handle of opened.splice(0)) await handle.close();
    });

    test('close() lets appends already under way finish, summaries included', async () => {
      const first = await open();
      opened.push(first);
      if (!first.reopen) throw new Error('a durable store must offer reopen()');
      const store = full(first.store);
      const batches = Array.from({ length: 8 }, (_, i) => [userEntry(`w${i}`, `prompt ${i}`)]);
      const keyOf = (i: number): SessionKey => ({ ...KEY, sessionId: `s${i % 4}` });
      const pending = batches.map((batch, i) => store.append(keyOf(i), batch));
      // reopen() closes this store first, while the appends above are still in flight.
      opened.pop();
      const reopening = first.reopen();
      await Promise.all(pending);
      const second = await reopening;
      opened.push(second);
      const again = full(second.store);
      const summaries = await again.listSessionSummaries(KEY.projectKey);
      for (let s = 0; s < 4; s++) {
        const stored = (await again.load(keyOf(s))) ?? [];
        expect(stored).toHaveLength(2);
        const summary = summaryOf(summaries, `s${s}`);
        expect(summary.data.lastPrompt).toBe(stored.at(-1)?.lastPrompt);
      }
    });

    test('everything acknowledged is still there after close() and reopening', async () => {
      const first = await open();
      opened.push(first);
      if (!first.reopen) throw new Error('a durable store must offer reopen()');
      const store = full(first.store);
      const main = [userEntry('d1', 'durable'), E('assistant', { uuid: 'd2' })];
      const sub = [E('sub', { uuid: 's1' })];
      await store.append(KEY, main);
      await store.append({ ...KEY, subpath: 'subagents/a' }, sub);
      const sessionsBefore = await store.listSessions(KEY.projectKey);
      const summariesBefore = await store.listSessionSummaries(KEY.projectKey);

      opened.pop();
      const second = await first.reopen();
      opened.push(second);
      const again = full(second.store);
      expectEntries(await again.load(KEY), main);
      expectEntries(await again.load({ ...KEY, subpath: 'subagents/a' }), sub);
      expect(await again.listSessions(KEY.projectKey)).toEqual(sessionsBefore);
      expect(canonical(await again.listSessionSummaries(KEY.projectKey))).toBe(
        canonical(summariesBefore),
      );
      expect(await again.listSubkeys(KEY)).toEqual(['subagents/a']);
      // Deduplication survives the restart too.
      await again.append(KEY, main);
      expectEntries(await again.load(KEY), main);
      // And the mtime keeps moving forward after a restart.
      await again.append(KEY, [E('later', { uuid: 'd3' })]);
      const [after] = await again.listSessions(KEY.projectKey);
      expect(after?.mtime).toBeGreaterThan(sessionsBefore[0]?.mtime ?? Number.POSITIVE_INFINITY);
    });
  });
}
