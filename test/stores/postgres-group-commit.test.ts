import { describe, expect, test } from 'vitest';
import {
  GroupCommit,
  type GroupOutcome,
  type GroupPart,
} from '../../src/backends/postgres/group-commit.js';

// The queueing rules of group commit, without a database: every write is a promise the test
// settles by hand, so nothing depends on timing.

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const part = (sessionId: string, id: string | null = null, line = '{}'): GroupPart => ({
  ref: { projectKey: 'p', sessionId },
  version: '0',
  id,
  summary: '{}',
  usage: null,
  charge: null,
  rows: [{ uuid: null, line }],
});

/** Lets every queued callback run: a few turns of the event loop, no timers. */
async function turn(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

function harness(options: { maxInFlight?: number; maxParts?: number; maxChars?: number } = {}) {
  const groups: Array<{ parts: string[]; done: Deferred<GroupOutcome[]> }> = [];
  const singles: Array<{ part: string; done: Deferred<GroupOutcome> }> = [];
  const commit = new GroupCommit({
    writeGroup(parts) {
      const done = deferred<GroupOutcome[]>();
      groups.push({ parts: parts.map((p) => p.ref.sessionId), done });
      return done.promise;
    },
    writeOne(p) {
      const done = deferred<GroupOutcome>();
      singles.push({ part: p.ref.sessionId, done });
      return done.promise;
    },
    maxInFlight: options.maxInFlight ?? 1,
    maxParts: options.maxParts ?? 64,
    maxChars: options.maxChars ?? 1 << 20,
  });
  return { commit, groups, singles };
}

const written = (id: string): GroupOutcome => ({ id, version: '1' });

describe('postgres group commit queue', () => {
  test('a lone part goes out at once, on its own', async () => {
    const { commit, groups, singles } = harness();
    const result = commit.submit(part('a'));
    expect(singles.map((s) => s.part)).toEqual(['a']);
    singles[0]?.done.resolve(written('1'));
    expect(await result).toEqual(written('1'));
    expect(groups).toHaveLength(0);
  });

  test('parts submitted while a write is in flight go out together once it ends', async () => {
    const { commit, groups, singles } = harness();
    const first = commit.submit(part('a'));
    const rest = ['b', 'c', 'd'].map((s) => commit.submit(part(s)));
    await turn();
    expect(groups).toHaveLength(0);
    singles[0]?.done.resolve(written('1'));
    await first;
    await turn();
    expect(groups.map((g) => g.parts)).toEqual([['b', 'c', 'd']]);
    groups[0]?.done.resolve([written('2'), undefined, written('4')]);
    expect(await Promise.all(rest)).toEqual([written('2'), undefined, written('4')]);
  });

  test('a group is sent in row-id order, outcomes still reach their own callers', async () => {
    const { commit, groups, singles } = harness();
    const first = commit.submit(part('a'));
    const results = [
      commit.submit(part('x', '30')),
      commit.submit(part('y', null)),
      commit.submit(part('z', '4')),
    ];
    singles[0]?.done.resolve(written('1'));
    await first;
    await turn();
    expect(groups[0]?.parts).toEqual(['z', 'x', 'y']);
    groups[0]?.done.resolve([written('4'), written('30'), undefined]);
    expect(await Promise.all(results)).toEqual([written('30'), undefined, written('4')]);
  });

  test('two statements in flight share the waiting parts evenly; size limits split groups', async () => {
    const { commit, groups, singles } = harness({ maxInFlight: 2, maxChars: 10 });
    void commit.submit(part('a'));
    for (const s of ['b', 'c', 'd', 'e', 'f']) void commit.submit(part(s, null, 'xxxx'));
    await turn();
    // Six parts waiting or in flight over two statements: three each, and 12 characters of
    // entries are over the limit of 10, so the share is cut to two.
    expect(singles.map((s) => s.part)).toEqual(['a']);
    expect(groups.map((g) => g.parts)).toEqual([['b', 'c']]);
    groups[0]?.done.resolve([undefined, undefined]);
    await turn();
    expect(groups.map((g) => g.parts)).toEqual([
      ['b', 'c'],
      ['d', 'e'],
    ]);
  });

  test('a group refused for one part is retried part by part: only that part fails', async () => {
    const { commit, groups, singles } = harness();
    void commit.submit(part('a'));
    const results = ['b', 'c', 'd'].map((s) => commit.submit(part(s)));
    singles[0]?.done.resolve(written('1'));
    await turn();
    groups[0]?.done.reject(Object.assign(new Error('boom refused'), { code: 'P0001' }));
    await turn();
    expect(singles.map((s) => s.part)).toEqual(['a', 'b', 'c', 'd']);
    singles[1]?.done.resolve(written('2'));
    singles[2]?.done.reject(Object.assign(new Error('boom refused'), { code: 'P0001' }));
    singles[3]?.done.resolve(undefined);
    const settled = await Promise.allSettled(results);
    expect(settled.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  });

  test.each([
    ['a connection that ended', new Error('Connection terminated unexpectedly')],
    ['a terminated backend', Object.assign(new Error('terminating'), { code: '57P01' })],
    ['a connection failure', Object.assign(new Error('broken'), { code: '08006' })],
  ])('%s rejects every part of the group and retries none', async (_name, error) => {
    const { commit, groups, singles } = harness();
    void commit.submit(part('a'));
    const results = ['b', 'c', 'd'].map((s) => commit.submit(part(s)));
    singles[0]?.done.resolve(written('1'));
    await turn();
    groups[0]?.done.reject(error);
    const settled = await Promise.allSettled(results);
    expect(settled).toEqual(Array(3).fill({ status: 'rejected', reason: error }));
    expect(singles).toHaveLength(1);
    // The queue keeps working afterwards.
    const later = commit.submit(part('e'));
    expect(singles.map((s) => s.part)).toEqual(['a', 'e']);
    singles[1]?.done.resolve(written('5'));
    expect(await later).toEqual(written('5'));
  });
});
