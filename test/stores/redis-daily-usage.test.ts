/**
 * Redis daily usage (see src/backends/redis/charges.ts): each registration's running charge of
 * its current day lives in the session's meta and is published as a total to its owner's spend
 * HASH of that day, newest stamp winning; a past day's total waits in `charges` until published.
 * Daily reads must give what the memory registry gives across day boundaries, dead writers,
 * late publishes and deletes, and still count what earlier versions stored or left pending.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import type { Backend } from '../../src/backends/backend.js';
import { createMemoryBackend } from '../../src/backends/memory/index.js';
import { openBackend } from '../../src/backends/open.js';
import {
  DayFigures,
  nextRunning,
  parsePending,
  spendOfRunning,
} from '../../src/backends/redis/charges.js';
import { projectKeys, sessionKeys } from '../../src/backends/redis/keys.js';
import type { RedisTranscriptStore } from '../../src/backends/redis/transcript-store.js';
import { tenantProjectKey } from '../../src/backends/registry.js';
import { ManualClock } from '../../src/core/clock.js';
import type { TranscriptEntry } from '../../src/core/entries.js';
import type { UsageDelta } from '../../src/core/usage.js';
import { freshRedisUrl, redisAvailable } from '../helpers/backends.js';
import { sessionBuilder } from '../helpers/registry.js';
import { REDIS_URL } from '../helpers/services.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 2, 1, 12);
const D1 = '2026-03-01';
const D2 = '2026-03-02';
const MODEL = 'claude-test';
const session = sessionBuilder(T0);
const key = (sessionId: string) => ({ projectKey: tenantProjectKey('acme'), sessionId });

/** Turn `n` of a session: a prompt, a reply and the counter's cost-state (0.01 USD a turn). */
function turn(sessionId: string, n: number): TranscriptEntry[] {
  const cost = Math.round(0.01 * n * 1e9) / 1e9;
  return [
    { type: 'user', uuid: `${sessionId}-u${n}`, message: { role: 'user', content: `hi ${n}` } },
    {
      type: 'assistant',
      uuid: `${sessionId}-a${n}`,
      message: {
        id: `${sessionId}-m${n}`,
        model: MODEL,
        role: 'assistant',
        content: [{ type: 'text', text: 'hello' }],
        usage: { input_tokens: 10, output_tokens: 5 },
      },
    },
    {
      type: 'cost-state',
      totalCostUSD: cost,
      totalDuration: 100 * n,
      totalAPIDuration: 50 * n,
      startTime: T0,
      modelUsage: { [MODEL]: { inputTokens: 10 * n, outputTokens: 5 * n, costUSD: cost } },
    },
  ];
}

function delta(costUsd: number, turns: number, input: number): UsageDelta {
  return {
    costUsd,
    turns,
    durationMs: 0,
    apiDurationMs: 0,
    byModel: {},
    tokens: {
      inputTokens: input,
      outputTokens: 1,
      cacheReadInputTokens: 2,
      cacheCreationInputTokens: 3,
    },
  };
}

describe('redis daily usage: the figures of a charge', () => {
  test('a running charge grows on its day and starts over on another', () => {
    expect(nextRunning(null, D1, delta(0.01, 1, 10))).toBe(`${D1} 10000000 1 10 1 2 3`);
    const stored = `1700 ${D1} 10000000 1 10 1 2 3`;
    expect(nextRunning(stored, D1, delta(0.5, 1, 5))).toBe(`${D1} 510000000 2 15 2 4 6`);
    expect(nextRunning(stored, D2, delta(0.5, 1, 5))).toBe(`${D2} 500000000 1 5 1 2 3`);
    // A day that merely starts like the stored one is another day.
    expect(nextRunning(`1700 ${D1}x 1 1 1 1 1 1`, D1, delta(0, 1, 0))).toBe(`${D1} 0 1 0 1 2 3`);
    expect(spendOfRunning(stored, 'r1')).toEqual({
      day: D1,
      rid: 'r1',
      value: '1700 10000000 1 10 1 2 3',
    });
  });

  test('pending records: past days of a running charge, and increments of earlier versions', () => {
    const pending = parsePending([
      '20',
      `${D1} 5 1 0 0 0 0`,
      '1900',
      `s "r1" ${D1} 7 1 2 3 4 5`,
      '10',
      `${D1} 3 1 0 0 0 0`,
    ]);
    expect(pending.stamps).toEqual(['20', '1900', '10']);
    expect(pending.charges.map((c) => c.stamp)).toEqual(['10', '20']);
    expect(pending.spends).toEqual([{ day: D1, rid: 'r1', value: '1900 7 1 2 3 4 5' }]);
  });

  test("a day's rows add an earlier version's fields and the spend totals, as integers", () => {
    const day = new DayFigures(D1);
    day.addLegacyDay(['c:alice', '100000000', 't:alice', '1', 'i:bob', '4', 'x:ignored', '9']);
    day.addLegacyOwner('carol', [null, null, null, null, null, null]);
    day.addSpends('alice', ['5 200000001 2 10 0 0 0', '9 1 1 1 1 1 1']);
    const rows = day.rows();
    expect(rows.map((r) => [r.owner, r.costUsd, r.turns, r.tokens.inputTokens])).toEqual([
      ['alice', 0.300000002, 4, 11],
      ['bob', 0, 0, 4],
    ]);
  });
});

describe.skipIf(!redisAvailable)('redis daily usage', () => {
  const cleanups: Array<() => Promise<void>> = [];
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
  });
  afterAll(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  async function fresh(clock = new ManualClock(T0)) {
    const { url, drop } = await freshRedisUrl();
    cleanups.push(drop);
    const prefix = new URL(url).searchParams.get('prefix') as string;
    const redis = new Redis(REDIS_URL);
    closers.push(async () => {
      redis.disconnect();
    });
    return {
      clock,
      redis,
      project: projectKeys(prefix, tenantProjectKey('acme')),
      sessionKeys: (id: string) => sessionKeys(prefix, tenantProjectKey('acme'), id),
      async open(): Promise<Backend> {
        const backend = await openBackend(url, { clock });
        closers.push(() => backend.close());
        return backend;
      },
    };
  }

  /** Daily figures of every scope, on both backends: they must be equal. */
  async function expectSameDays(redis: Backend, memory: Backend) {
    for (const owner of [undefined, 'alice', 'bob', 'nobody']) {
      const scope = { tenant: 'acme', owner };
      expect(await redis.registry.dailyUsage(scope, D1, D2), `owner ${owner}`).toEqual(
        await memory.registry.dailyUsage(scope, D1, D2),
      );
    }
  }

  test('across a day boundary, each day gets its turns, as on the memory backend', async () => {
    const { clock, open, redis, sessionKeys } = await fresh();
    const backend = await open();
    const memory = createMemoryBackend({ clock });
    closers.push(() => memory.close());
    const both = [backend, memory];
    const register = async (id: string, owner: string) => {
      for (const b of both) await b.registry.insert(session(id, { owner }));
    };
    const append = async (id: string, n: number) => {
      for (const b of both) await b.store.append(key(id), turn(id, n));
    };
    await register('s1', 'alice');
    await register('s2', 'alice');
    await register('s3', 'bob');
    await append('s1', 1);
    await append('s1', 2);
    await append('s2', 1);
    await append('s3', 1);
    await expectSameDays(backend, memory);
    expect((await backend.registry.dailyUsage({ tenant: 'acme' }, D1, D1))[0]).toMatchObject({
      owner: 'alice',
      turns: 3,
      costUsd: 0.03,
    });

    clock.advance(DAY);
    await append('s1', 3);
    await append('s1', 3); // a retried batch counts nothing
    await append('s3', 2);
    await expectSameDays(backend, memory);
    // The first day's total of s1 waited in its charges HASH until published, then went.
    await backend.store.append(key('s1'), [{ type: 'custom-title', customTitle: 'x' }]);
    expect(await redis.hlen(sessionKeys('s1').charges)).toBe(0);
    await expectSameDays(backend, memory);
  });

  test('a writer that died between its steps: its charge is published once, by whoever comes next', async () => {
    const { clock, open } = await fresh();
    const a = await open();
    const b = await open();
    const store = a.store as RedisTranscriptStore;
    await a.registry.insert(session('s'));
    const alice = async () =>
      (await b.registry.dailyUsage({ tenant: 'acme', owner: 'alice' }, D1, D2)).map((d) => [
        d.day,
        d.turns,
        d.costUsd,
      ]);

    // Turn 1 stops after step 1; b's turn 2, the same day, publishes the total of both.
    const stalledOne = await store.writeMain(key('s'), turn('s', 1));
    expect(await alice()).toEqual([]);
    await b.store.append(key('s'), turn('s', 2));
    expect(await alice()).toEqual([[D1, 2, 0.02]]);
    // The stalled writer's late publish brings an older total: it changes nothing.
    await store.syncSummary(key('s'), stalledOne);
    expect(await alice()).toEqual([[D1, 2, 0.02]]);

    // Turn 3 stops after step 1, then the day changes: b's next counted turn sets the first
    // day's total aside and publishes it with the new day's.
    const stalledThree = await store.writeMain(key('s'), turn('s', 3));
    clock.advance(DAY);
    await b.store.append(key('s'), turn('s', 4));
    expect(await alice()).toEqual([
      [D1, 3, 0.03],
      [D2, 1, 0.01],
    ]);
    await store.syncSummary(key('s'), stalledThree);
    expect(await alice()).toEqual([
      [D1, 3, 0.03],
      [D2, 1, 0.01],
    ]);

    // A turn that stops after step 1 before a delete: the delete publishes it first.
    await store.writeMain(key('s'), turn('s', 5));
    expect(await b.registry.remove('acme', 's')).toBe(true);
    expect(await alice()).toEqual([
      [D1, 3, 0.03],
      [D2, 2, 0.02],
    ]);
  });

  test('remove, the store delete and a purge publish what was not published yet', async () => {
    const { open } = await fresh();
    const a = await open();
    const b = await open();
    const due = { expiresAt: T0 + 10, purgeAt: T0 + 20 };
    for (const id of ['removed', 'deleted', 'purged']) {
      await a.registry.insert(session(id, id === 'purged' ? due : {}));
      await a.store.append(key(id), turn(id, 1));
      // The second turn of each stops after step 1, so only the session knows of it.
      await (a.store as RedisTranscriptStore).writeMain(key(id), turn(id, 2));
    }
    expect(await b.registry.remove('acme', 'removed')).toBe(true);
    await b.store.delete(key('deleted'));
    expect(await b.registry.expireDue(T0 + 10, 10)).toHaveLength(1);
    expect(await b.registry.purgeDue(T0 + 20, 10)).toHaveLength(1);
    const [day] = await a.registry.dailyUsage({ tenant: 'acme' }, D1, D2);
    expect(day).toMatchObject({ owner: 'alice', turns: 6, costUsd: 0.06 });
  });

  test('what earlier versions stored and left pending still counts, once', async () => {
    const { open, redis, project, sessionKeys } = await fresh();
    const backend = await open();
    // An earlier version's day: six fields per owner, and the day in the days index.
    await redis.hset(project.day(D1), {
      'c:alice': '500000000',
      't:alice': '4',
      'i:alice': '7',
      'o:alice': '3',
      'r:alice': '2',
      'w:alice': '1',
      'c:bob': '1000',
      't:bob': '1',
    });
    await redis.zadd(project.days, 0, D1);
    expect(await backend.registry.dailyUsage({ tenant: 'acme', owner: 'alice' }, D1, D1)).toEqual([
      {
        owner: 'alice',
        day: D1,
        costUsd: 0.5,
        turns: 4,
        tokens: {
          inputTokens: 7,
          outputTokens: 3,
          cacheReadInputTokens: 2,
          cacheCreationInputTokens: 1,
        },
      },
    ]);

    // New turns add to it.
    await backend.registry.insert(session('s'));
    await backend.store.append(key('s'), turn('s', 1));
    // An increment an earlier writer left pending (it died after its step 1).
    await backend.registry.insert(session('old'));
    await redis.hset(sessionKeys('old').charges, '5', `${D1} 20000000 1 100 0 0 0`);
    const rows = async () =>
      (await backend.registry.dailyUsage({ tenant: 'acme' }, D1, D1)).map((d) => [
        d.owner,
        d.turns,
        d.costUsd,
        d.tokens.inputTokens,
      ]);
    expect(await rows()).toEqual([
      ['alice', 5, 0.51, 17],
      ['bob', 1, 0.000001, 0],
    ]);
    // The next append to that session applies it, and a retry of the same batch not again.
    await backend.store.append(key('old'), [
      { type: 'custom-title', uuid: 't1', customTitle: 'x' },
    ]);
    await backend.store.append(key('old'), [
      { type: 'custom-title', uuid: 't1', customTitle: 'x' },
    ]);
    expect(await rows()).toEqual([
      ['alice', 6, 0.53, 117],
      ['bob', 1, 0.000001, 0],
    ]);
    expect(await redis.hlen(sessionKeys('old').charges)).toBe(0);

    // One left pending on a session that is then deleted: the delete applies it.
    await redis.hset(sessionKeys('s').charges, '6', `${D1} 30000000 1 0 0 0 0`);
    expect(await backend.registry.remove('acme', 's')).toBe(true);
    expect((await rows())[0]).toEqual(['alice', 7, 0.56, 117]);
  });
});
