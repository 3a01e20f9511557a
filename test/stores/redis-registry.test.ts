/**
 * The Redis registry beyond the hub suite: usage folded in the append script, daily usage
 * charged once across crashes and retries, several backends racing on one Redis, removal that
 * leaves nothing behind, listing identical to the memory registry's, and every script on one
 * Cluster slot.
 */
import calculateSlot from 'cluster-key-slot';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import type { Backend } from '../../src/backends/backend.js';
import { createMemoryBackend } from '../../src/backends/memory/index.js';
import { openBackend } from '../../src/backends/open.js';
import {
  encodeComponent,
  projectKeys,
  sessionKeys,
  sweepKeys,
  sweepMember,
} from '../../src/backends/redis/keys.js';
import { INDEX_SESSION } from '../../src/backends/redis/registry-scripts.js';
import { runScript } from '../../src/backends/redis/scripts.js';
import { SweepIndex } from '../../src/backends/redis/sweep-index.js';
import type { RedisTranscriptStore } from '../../src/backends/redis/transcript-store.js';
import {
  type NewSession,
  type SessionRegistry,
  type StoredSession,
  tenantProjectKey,
} from '../../src/backends/registry.js';
import { ManualClock } from '../../src/core/clock.js';
import { isSessionHubError } from '../../src/core/errors.js';
import {
  SESSION_STATUSES,
  type SessionQuery,
  type SessionStatus,
} from '../../src/core/session-record.js';
import { emptyUsageState, foldUsage, usageTotals } from '../../src/core/usage.js';
import { syntheticTurn } from '../../src/testing/transcripts.js';
import { freshRedisUrl, redisAvailable } from '../helpers/backends.js';
import { seededRandom } from '../helpers/random.js';
import { keysOf, recordCommands } from '../helpers/redis-commands.js';
import { REDIS_URL } from '../helpers/services.js';

const START = Date.UTC(2026, 2, 1, 12);
const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;

const cleanups: Array<() => Promise<void>> = [];
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});
afterAll(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

/** A fresh key prefix; open() gives another backend (its own connection) on it each time. */
async function freshPrefix(clock = new ManualClock(START)) {
  const { url, drop } = await freshRedisUrl();
  cleanups.push(drop);
  return {
    clock,
    prefix: new URL(url).searchParams.get('prefix') as string,
    async open(options: { foldUsage?: boolean } = {}): Promise<Backend> {
      const backend = await openBackend(url, { clock, ...options });
      closers.push(() => backend.close());
      return backend;
    },
  };
}

function client(): Redis {
  const redis = new Redis(REDIS_URL);
  closers.push(async () => {
    redis.disconnect();
  });
  return redis;
}

function session(overrides: Partial<NewSession> & { id: string }): NewSession {
  return {
    tenant: 'acme',
    owner: 'alice',
    title: null,
    tags: [],
    metadata: {},
    status: 'active',
    createdAt: START,
    lastActiveAt: START,
    expiresAt: null,
    expiredAt: null,
    purgeAt: null,
    extendedUntil: null,
    forkedFrom: null,
    expiry: {},
    limits: {},
    ...overrides,
  };
}

const keyOf = (id: string, tenant = 'acme') => ({
  projectKey: tenantProjectKey(tenant),
  sessionId: id,
});

/** What a fold of exactly the stored transcript gives: the usage the record must show. */
async function foldOfStored(backend: Backend, id: string) {
  const stored = (await backend.store.load(keyOf(id))) ?? [];
  return usageTotals(foldUsage(emptyUsageState(), stored).state);
}

async function usageOf(registry: SessionRegistry, id: string) {
  const record = await registry.get('acme', id);
  if (!record) throw new Error(`no record ${id}`);
  return usageTotals(record.usage);
}

async function daily(registry: SessionRegistry, owner?: string) {
  return registry.dailyUsage({ tenant: 'acme', owner }, '2000-01-01', '2100-01-01');
}

/** Every key under the prefix (SCAN: tests only). */
async function allKeys(redis: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys.sort();
}

/**
 * Where `id` still appears under the prefix: in a key name, or as a member or field of a ZSET
 * or HASH. The store's delete fence (meta holding only `floor`, and the gone marker, both with
 * a TTL) is reported apart: it is meant to outlive the session for a day.
 */
async function tracesOf(redis: Redis, prefix: string, id: string) {
  const traces: string[] = [];
  const fences: string[] = [];
  const encoded = encodeComponent(id);
  for (const key of await allKeys(redis, prefix)) {
    if (key.includes(`:${encoded}}`) || key.endsWith(`:${encoded}`)) {
      const type = await redis.type(key);
      const ttl = await redis.pttl(key);
      if (key.endsWith(':meta') && type === 'hash') {
        const fields = await redis.hkeys(key);
        if (fields.length === 1 && fields[0] === 'floor' && ttl > 0) {
          fences.push(key);
          continue;
        }
      }
      if (key.includes(':gone:') && ttl > 0) {
        fences.push(key);
        continue;
      }
      traces.push(`key ${key}`);
      continue;
    }
    const type = await redis.type(key);
    if (type === 'zset') {
      for (const member of await redis.zrange(key, 0, -1)) {
        if (member.includes(id)) traces.push(`${key} member ${member}`);
      }
    } else if (type === 'hash') {
      for (const field of await redis.hkeys(key)) {
        if (field.includes(id)) traces.push(`${key} field ${field}`);
      }
    }
  }
  return { traces, fences };
}

describe.skipIf(!redisAvailable)('redis registry', () => {
  describe('usage folded in the append', () => {
    test('a retried append folds nothing twice, also after a writer died between its steps', async () => {
      const { open } = await freshPrefix();
      const backend = await open();
      const store = backend.store as RedisTranscriptStore;
      await backend.registry.insert(session({ id: 's' }));
      const one = syntheticTurn({ sessionId: 's', cumulativeCostUsd: 0.01 });
      await store.append(keyOf('s'), one.entries);
      await store.append(keyOf('s'), one.entries);
      expect(await usageOf(backend.registry, 's')).toMatchObject({ turns: 1, costUsd: 0.01 });
      expect(await daily(backend.registry)).toEqual([
        expect.objectContaining({ owner: 'alice', day: '2026-03-01', turns: 1, costUsd: 0.01 }),
      ]);

      // Step 1 only, as if the process died right after it: the usage is already in the record
      // (same script as the entries), the daily charge waits in the session's slot.
      const two = syntheticTurn({
        sessionId: 's',
        parentUuid: one.assistantUuid,
        tokens: { input: 50, output: 10 },
        cumulativeTokens: { input: 150, output: 30 },
        cumulativeCostUsd: 0.025,
      });
      await store.writeMain(keyOf('s'), two.entries);
      expect(await usageOf(backend.registry, 's')).toMatchObject({ turns: 2, costUsd: 0.025 });
      expect((await daily(backend.registry))[0]).toMatchObject({ turns: 1 });

      // The SDK retries the batch: nothing is folded again, the pending charge lands once.
      await store.append(keyOf('s'), two.entries);
      expect(await usageOf(backend.registry, 's')).toEqual(await foldOfStored(backend, 's'));
      expect((await daily(backend.registry))[0]).toMatchObject({
        turns: 2,
        costUsd: 0.025,
        tokens: expect.objectContaining({ inputTokens: 150, outputTokens: 30 }),
      });

      // Another process, with nothing cached, appends the next turn.
      const other = await open();
      const three = syntheticTurn({
        sessionId: 's',
        parentUuid: two.assistantUuid,
        cumulativeTokens: { input: 250, output: 50 },
        cumulativeCostUsd: 0.04,
      });
      await other.store.append(keyOf('s'), three.entries);
      await store.append(keyOf('s'), three.entries);
      expect(await usageOf(backend.registry, 's')).toEqual(await foldOfStored(backend, 's'));
      expect((await daily(other.registry))[0]).toMatchObject({ turns: 3, costUsd: 0.04 });
    });

    test("a dead writer's charge is applied once: by the next append, a late publish or the delete", async () => {
      const { open } = await freshPrefix();
      const a = await open();
      const b = await open();
      await a.registry.insert(session({ id: 's' }));
      const one = syntheticTurn({ sessionId: 's', cumulativeCostUsd: 0.5 });
      const stalled = await (a.store as RedisTranscriptStore).writeMain(keyOf('s'), one.entries);
      expect(await daily(a.registry)).toEqual([]);
      // Another writer's append (no usage in it) finds the charge pending and applies it.
      await b.store.append(keyOf('s'), [{ type: 'custom-title', customTitle: 'x' }]);
      expect((await daily(a.registry))[0]).toMatchObject({ turns: 1, costUsd: 0.5 });
      // The stalled writer wakes up and publishes what it had: already applied.
      await (a.store as RedisTranscriptStore).syncSummary(keyOf('s'), stalled);
      expect((await daily(a.registry))[0]).toMatchObject({ turns: 1, costUsd: 0.5 });

      await a.registry.insert(session({ id: 't', owner: 'bob' }));
      const two = syntheticTurn({ sessionId: 't', cumulativeCostUsd: 0.25 });
      await (a.store as RedisTranscriptStore).writeMain(keyOf('t'), two.entries);
      expect(await b.registry.remove('acme', 't')).toBe(true);
      expect(await daily(a.registry, 'bob')).toEqual([
        expect.objectContaining({ owner: 'bob', turns: 1, costUsd: 0.25 }),
      ]);
    });

    test('daily usage is charged for registered sessions only; registering adopts the usage', async () => {
      const { open } = await freshPrefix();
      const backend = await open();
      const one = syntheticTurn({ sessionId: 'plain', cumulativeCostUsd: 0.1 });
      await backend.store.append(keyOf('plain'), one.entries);
      expect(await daily(backend.registry)).toEqual([]);
      expect(await backend.registry.get('acme', 'plain')).toBeNull();

      const adopted = await backend.registry.insert(session({ id: 'plain' }));
      expect(usageTotals(adopted.usage)).toMatchObject({ turns: 1, costUsd: 0.1 });
      expect(await daily(backend.registry)).toEqual([]);
      const two = syntheticTurn({
        sessionId: 'plain',
        parentUuid: one.assistantUuid,
        cumulativeCostUsd: 0.3,
      });
      await backend.store.append(keyOf('plain'), two.entries);
      expect(await usageOf(backend.registry, 'plain')).toMatchObject({ turns: 2, costUsd: 0.3 });
      expect(await daily(backend.registry)).toEqual([
        expect.objectContaining({ turns: 1, costUsd: 0.2 }),
      ]);
      // Subagent transcripts fold nothing.
      await backend.store.append({ ...keyOf('plain'), subpath: 'agent-1' }, two.entries);
      expect(await usageOf(backend.registry, 'plain')).toMatchObject({ turns: 2 });
    });

    test('a usage state given to insert replaces the folded one, also in other processes', async () => {
      const { open } = await freshPrefix();
      const a = await open();
      const b = await open();
      const one = syntheticTurn({ sessionId: 'f', cumulativeCostUsd: 1 });
      // `a` folds (and caches) the state of the transcript written before registration.
      await a.store.append(keyOf('f'), one.entries);
      const given = foldUsage(emptyUsageState(), []).state;
      const record = await b.registry.insert(session({ id: 'f', usage: given }));
      expect(usageTotals(record.usage).turns).toBe(0);
      const two = syntheticTurn({
        sessionId: 'f',
        parentUuid: one.assistantUuid,
        cumulativeCostUsd: 1.5,
      });
      await a.store.append(keyOf('f'), two.entries);
      // Folded onto the given state, not onto what `a` had cached.
      expect(await usageOf(a.registry, 'f')).toMatchObject({ turns: 1, costUsd: 1.5 });
    });

    test('appends from several backends at once fold every entry exactly once', async () => {
      const { open } = await freshPrefix();
      const writers = [await open(), await open(), await open()];
      await (writers[0] as Backend).registry.insert(session({ id: 'busy' }));
      // Assistant entries without cost-states: their pending tokens add up whatever the order.
      const turns = Array.from({ length: 45 }, () =>
        syntheticTurn({ sessionId: 'busy', tokens: { input: 100, output: 7 } }),
      );
      await Promise.all(
        turns.map((turn, i) =>
          (writers[i % writers.length] as Backend).store.append(keyOf('busy'), turn.entries),
        ),
      );
      // And again, as retries: nothing more.
      await Promise.all(
        turns.map((turn, i) =>
          (writers[(i + 1) % writers.length] as Backend).store.append(keyOf('busy'), turn.entries),
        ),
      );
      const usage = await usageOf((writers[1] as Backend).registry, 'busy');
      expect(usage.tokens).toMatchObject({ inputTokens: 4500, outputTokens: 315 });
      expect(usage.pendingTokens).toEqual(usage.tokens);
      // Pending tokens are no turn: nothing is charged to the day for them.
      expect(await daily((writers[2] as Backend).registry)).toEqual([]);

      // Now the turns' cost-states, each from a counter of its own (a new startTime: it counts
      // in full whatever the order) and with a uuid here, so that a late retry is a duplicate.
      const costStates = turns.map((_, i) => {
        const { entries } = syntheticTurn({
          sessionId: 'busy',
          tokens: { input: 100, output: 7 },
          cumulativeCostUsd: 0.01,
          counterStartTime: START + i,
        });
        return entries
          .filter((entry) => entry.type === 'cost-state')
          .map((entry) => ({ ...entry, uuid: `cost-${i}` }));
      });
      for (const round of [0, 1]) {
        await Promise.all(
          costStates.map((entries, i) =>
            (writers[(i + round) % writers.length] as Backend).store.append(keyOf('busy'), entries),
          ),
        );
      }
      const counted = await usageOf((writers[0] as Backend).registry, 'busy');
      expect(counted).toMatchObject({ turns: 45, costUsd: 0.45 });
      expect(counted.tokens).toMatchObject({ inputTokens: 4500, outputTokens: 315 });
      expect(counted.pendingTokens).toMatchObject({ inputTokens: 0, outputTokens: 0 });
      const [day] = await daily((writers[2] as Backend).registry);
      expect(day).toMatchObject({ turns: 45, costUsd: 0.45 });
      expect(day?.tokens).toEqual(counted.tokens);
    });

    test('foldUsage: false folds and charges nothing', async () => {
      const { open } = await freshPrefix();
      const backend = await open({ foldUsage: false });
      await backend.registry.insert(session({ id: 's' }));
      await backend.store.append(
        keyOf('s'),
        syntheticTurn({ sessionId: 's', cumulativeCostUsd: 1 }).entries,
      );
      expect(await usageOf(backend.registry, 's')).toMatchObject({ turns: 0, costUsd: 0 });
      expect(await daily(backend.registry)).toEqual([]);
      expect(await backend.store.load(keyOf('s'))).toHaveLength(3);
    });
  });

  describe('several backends on one Redis', () => {
    test('racing sweepers expire and purge every session exactly once', async () => {
      const { open, prefix } = await freshPrefix();
      const backends = await Promise.all([open(), open(), open(), open()]);
      const first = backends[0] as Backend;
      const ids = Array.from({ length: 120 }, (_, i) => `s${i}`);
      for (const [i, id] of ids.entries()) {
        await first.registry.insert(
          session({
            id,
            owner: i % 2 ? 'alice' : 'bob',
            expiresAt: START + HOUR + (i % 5),
            purgeAt: START + 2 * HOUR,
          }),
        );
        if (i % 3 === 0) {
          await first.store.append(
            keyOf(id),
            syntheticTurn({ sessionId: id, cumulativeCostUsd: 0.01 }).entries,
          );
        }
      }
      // Every session is reported by exactly one sweeper: the ids never repeat.
      const sweepAll = async (
        run: (registry: SessionRegistry) => Promise<Array<{ id: string }>>,
      ) => {
        const seen = new Set<string>();
        const counts = await Promise.all(
          backends.map(async (backend) => {
            let total = 0;
            for (;;) {
              const swept = await run(backend.registry);
              for (const { id } of swept) {
                expect(seen.has(id)).toBe(false);
                seen.add(id);
              }
              const n = swept.length;
              total += n;
              if (n < 7) return total;
            }
          }),
        );
        return counts.reduce((a, b) => a + b, 0);
      };
      expect(await sweepAll((r) => r.expireDue(START + HOUR - 1, 7))).toBe(0);
      expect(await sweepAll((r) => r.expireDue(START + HOUR + 10, 7))).toBe(120);
      expect(await sweepAll((r) => r.expireDue(START + HOUR + 10, 7))).toBe(0);
      const expired = await first.registry.get('acme', 's3');
      expect(expired).toMatchObject({ status: 'expired', expiredAt: START + HOUR + 3, version: 2 });
      expect(await sweepAll((r) => r.purgeDue(START + 2 * HOUR - 1, 7))).toBe(0);
      expect(await sweepAll((r) => r.purgeDue(START + 2 * HOUR, 7))).toBe(120);
      expect(await sweepAll((r) => r.purgeDue(START + 2 * HOUR, 7))).toBe(0);

      const redis = client();
      for (const id of ['s0', 's1', 's119']) {
        expect((await tracesOf(redis, prefix, id)).traces).toEqual([]);
      }
      const sweep = sweepKeys(prefix);
      expect(await redis.zcard(sweep.expiring)).toBe(0);
      expect(await redis.zcard(sweep.purging)).toBe(0);
      expect(await redis.hlen(sweep.claims)).toBe(0);
      // The spend stays.
      const rows = await daily(first.registry);
      expect(rows.map((r) => [r.owner, r.turns])).toEqual([
        ['alice', 20],
        ['bob', 20],
      ]);
    });

    test('racing inserts of one id: one wins, and the indexes hold the winner', async () => {
      const { open } = await freshPrefix();
      const backends = await Promise.all([open(), open(), open(), open()]);
      for (let round = 0; round < 15; round++) {
        const id = `race-${round}`;
        const results = await Promise.allSettled(
          backends.map((backend, i) =>
            backend.registry.insert(
              session({
                id,
                owner: `owner-${i}`,
                createdAt: START + i,
                forkedFrom: { sessionId: `parent-${i}`, messageUuid: null },
              }),
            ),
          ),
        );
        const won = results.filter((r) => r.status === 'fulfilled');
        expect(won).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected')
            expect(isSessionHubError(r.reason, 'SESSION_EXISTS')).toBe(true);
        }
        const winner = (won[0] as PromiseFulfilledResult<StoredSession>).value;
        const registry = (backends[0] as Backend).registry;
        const all = await registry.list({ tenant: 'acme' }, { limit: 200 }, START);
        expect(all.filter((s) => s.id === id)).toEqual([winner]);
        for (let i = 0; i < backends.length; i++) {
          const mine = await registry.list(
            { tenant: 'acme', owner: `owner-${i}` },
            { limit: 200 },
            START,
          );
          expect(mine.filter((s) => s.id === id)).toEqual(
            winner.owner === `owner-${i}` ? [winner] : [],
          );
          const forks = await registry.forksOf('acme', `parent-${i}`);
          expect(forks.filter((s) => s.id === id)).toEqual(
            winner.forkedFrom?.sessionId === `parent-${i}` ? [winner] : [],
          );
        }
      }
    });

    test('racing compare-and-set updates lose nothing, and appends never make one fail', async () => {
      const { open } = await freshPrefix();
      const backends = await Promise.all([open(), open(), open()]);
      await (backends[0] as Backend).registry.insert(session({ id: 's' }));
      const tagOnce = async (backend: Backend, tag: string) => {
        for (;;) {
          const current = (await backend.registry.get('acme', 's')) as StoredSession;
          const written = await backend.registry.update('acme', 's', current.version, {
            tags: [...current.tags, tag],
          });
          if (written) return;
        }
      };
      const appends = Array.from({ length: 10 }, () => syntheticTurn({ sessionId: 's' }));
      await Promise.all([
        ...backends.flatMap((backend, b) =>
          [0, 1, 2, 3].map((t) => tagOnce(backend, `b${b}t${t}`)),
        ),
        ...appends.map((turn, i) =>
          (backends[i % 3] as Backend).store.append(keyOf('s'), turn.entries),
        ),
      ]);
      const record = (await (backends[1] as Backend).registry.get('acme', 's')) as StoredSession;
      expect(record.tags).toHaveLength(12);
      expect(record.version).toBe(13);
      expect(usageTotals(record.usage).tokens.inputTokens).toBe(1000);
      // A stale version is refused and changes nothing.
      expect(
        await (backends[2] as Backend).registry.update('acme', 's', 1, { title: 'late' }),
      ).toBeNull();
      expect((await (backends[2] as Backend).registry.get('acme', 's'))?.title).toBeNull();
    });
  });

  describe('removal', () => {
    test('remove, purge and the store delete leave no key, member or field of the session but the fence', async () => {
      const { open, prefix, clock } = await freshPrefix();
      const backend = await open();
      const redis = client();
      const hostile = ['{x}', 'é😀', 'a b:c', 'plain'];
      for (const [i, suffix] of hostile.entries()) {
        const id = `gone-${i}-${suffix}`;
        await backend.registry.insert(
          session({
            id,
            owner: `own{${i}}`,
            title: 'to go',
            tags: ['t'],
            expiresAt: START + HOUR,
            purgeAt: START + 2 * HOUR,
            forkedFrom: { sessionId: 'root', messageUuid: null },
          }),
        );
        const turn = syntheticTurn({ sessionId: id, cumulativeCostUsd: 0.1 });
        await backend.store.append(keyOf(id), turn.entries);
        // A pending charge too (the writer died after step 1).
        await (backend.store as RedisTranscriptStore).writeMain(
          keyOf(id),
          syntheticTurn({ sessionId: id, parentUuid: turn.assistantUuid, cumulativeCostUsd: 0.2 })
            .entries,
        );
        await backend.store.append({ ...keyOf(id), subpath: `agents/{${i}}` }, turn.entries);
        await backend.store.append({ ...keyOf(id), subpath: 'agents/two' }, [{ type: 'x' }]);
        const encoded = sessionKeys(prefix, tenantProjectKey('acme'), id).meta;
        expect((await allKeys(redis, prefix)).some((key) => key === encoded)).toBe(true);

        if (i === 0) {
          expect(await backend.registry.remove('acme', id)).toBe(true);
          expect(await backend.registry.remove('acme', id)).toBe(false);
        } else if (i === 1) {
          await backend.store.delete(keyOf(id));
        } else {
          clock.set(START + HOUR);
          expect(await backend.registry.expireDue(clock.now(), 10)).toHaveLength(1);
          expect(await backend.registry.purgeDue(START + 2 * HOUR, 10)).toHaveLength(1);
        }
        const { traces, fences } = await tracesOf(redis, prefix, id);
        expect(traces, id).toEqual([]);
        // What may stay after a remove or a delete is the store's delete fence (meta holding
        // only `floor`, and the gone marker, both expiring within a day); a purge leaves nothing.
        expect(fences).toHaveLength(i < 2 ? 2 : 0);
        expect(await backend.registry.get('acme', id)).toBeNull();
        expect(await backend.store.load(keyOf(id))).toBeNull();
      }
      // Deleting never refunds: every charge made it into daily usage, once.
      const rows = await daily(backend.registry);
      expect(rows.reduce((n, r) => n + r.turns, 0)).toBe(8);
      expect(rows.reduce((n, r) => n + r.costUsd, 0)).toBeCloseTo(0.8, 9);
      expect(await backend.registry.list({ tenant: 'acme' }, { limit: 50 }, START)).toEqual([]);
      expect(await backend.registry.forksOf('acme', 'root')).toEqual([]);
    });
  });

  describe('crash repair', () => {
    test('list entries without a record are skipped, and a later insert of the id takes them over', async () => {
      const { open, prefix } = await freshPrefix();
      const backend = await open();
      const redis = client();
      const project = projectKeys(prefix, tenantProjectKey('acme'));
      // An insert that died after its index step: entries for a record that never came.
      await runScript(
        redis,
        INDEX_SESSION,
        [project.registered, project.listAll, project.listOwner('ghost-owner')],
        ['s', 'dead', String(START - 5).padStart(16, '0'), '0'],
      );
      expect(await backend.registry.list({ tenant: 'acme' }, { limit: 10 }, START)).toEqual([]);
      const made = await backend.registry.insert(session({ id: 's' }));
      expect(await backend.registry.list({ tenant: 'acme' }, { limit: 10 }, START)).toEqual([made]);
      expect(
        await backend.registry.list({ tenant: 'acme', owner: 'ghost-owner' }, { limit: 10 }, START),
      ).toEqual([]);
      expect(await redis.zcard(project.listOwner('ghost-owner'))).toBe(0);
    });

    test('a sweeper that read the record before an update cannot push the deadline past it', async () => {
      const { open, prefix } = await freshPrefix();
      const backend = await open();
      const redis = client();
      await backend.registry.insert(session({ id: 's', expiresAt: START + DAY }));
      const sweep = new SweepIndex(redis, prefix);
      // A stale early hint: the sweeper claims it and reads a deadline a day away...
      await sweep.hint([{ tenant: 'acme', id: 's', expiring: START, purging: null }]);
      const { token, claimed } = await sweep.claim('e', START, 10);
      expect(claimed.map((c) => c.id)).toEqual(['s']);
      // ...meanwhile the deadline is brought forward...
      const current = (await backend.registry.get('acme', 's')) as StoredSession;
      await backend.registry.update('acme', 's', current.version, { expiresAt: START + HOUR });
      // ...and the sweeper, late, moves the member to what it read.
      await sweep.finish(
        'e',
        token,
        [{ member: claimed[0]?.member as string, score: START + DAY }],
        [],
      );
      const score = Number(
        await redis.zscore(sweepKeys(prefix).expiring, sweepMember('acme', 's')),
      );
      expect(score).toBeLessThanOrEqual(START + HOUR);
      expect(await backend.registry.expireDue(START + HOUR, 10)).toHaveLength(1);
    });

    test('hints for sessions that are gone or no longer due are cleared by the sweep', async () => {
      const { open, prefix } = await freshPrefix();
      const backend = await open();
      const redis = client();
      await backend.registry.insert(session({ id: 'kept', expiresAt: START + HOUR }));
      const sweep = new SweepIndex(redis, prefix);
      await sweep.hint([
        { tenant: 'acme', id: 'nobody', expiring: START, purging: START },
        { tenant: 'acme', id: 'kept', expiring: START, purging: START },
      ]);
      expect(await backend.registry.expireDue(START, 10)).toEqual([]);
      expect(await backend.registry.purgeDue(START, 10)).toEqual([]);
      const keys = sweepKeys(prefix);
      expect(await redis.zrange(keys.expiring, 0, -1, 'WITHSCORES')).toEqual([
        sweepMember('acme', 'kept'),
        String(START + HOUR),
      ]);
      expect(await redis.zcard(keys.purging)).toBe(0);
      expect(await redis.hlen(keys.claims)).toBe(0);
    });
  });

  test('registry keys of hostile names neither collide nor leave their slot', () => {
    const hostile = ['{', '}', 'a b', ':', '%', 'reg', 'ids', 'all', 'day', 's', 'é😀', ''];
    const names = new Set<string>();
    let count = 0;
    for (const tenant of hostile) {
      const project = projectKeys('pfx', tenantProjectKey(tenant));
      const slot = calculateSlot(project.sessions);
      const all = [project.registered, project.listAll, project.charged, project.days];
      for (const name of hostile) {
        all.push(
          project.listOwner(name),
          project.forks(name),
          project.day(name),
          project.gone(name),
          project.owners(name),
        );
        for (const day of ['2026-03-01', ...hostile]) all.push(project.spend(name, day));
      }
      for (const name of all) {
        count++;
        names.add(name);
        expect(name).toMatch(/^pfx:\{[^{}]+\}:[^{}]+$/);
        expect(calculateSlot(name)).toBe(slot);
      }
      names.add(project.sessions);
      names.add(project.summaries);
      count += 2;
    }
    const sweep = sweepKeys('pfx');
    for (const name of [sweep.expiring, sweep.purging, sweep.claims]) {
      count++;
      names.add(name);
      expect(calculateSlot(name)).toBe(calculateSlot(sweep.expiring));
    }
    expect(names.size).toBe(count);
  });

  test('insert refuses a createdAt the listing order cannot hold', async () => {
    const { open } = await freshPrefix();
    const backend = await open();
    for (const createdAt of [-1, 1.5, Number.NaN]) {
      const error = await backend.registry.insert(session({ id: 'x', createdAt })).catch((e) => e);
      expect(isSessionHubError(error, 'INVALID_INPUT')).toBe(true);
    }
  });

  test('listing, counts, forks and daily usage equal the memory registry on random data', async () => {
    const { open, clock } = await freshPrefix();
    const redisBackend = await open();
    const memoryClock = new ManualClock(START);
    const memory = createMemoryBackend({ clock: memoryClock });
    const rng = seededRandom(20260301);
    const owners = ['alice', 'bob', 'carol', 'd{a}ve'];
    const tags = ['red', 'green', 'blue'];
    const titles = [null, 'Refund request', 'login TROUBLE', 'refunded', '100% done', 'a_b'];
    const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-é';
    const ids: string[] = [];
    const now = START + 50;
    for (let i = 0; i < 260; i++) {
      let id = '';
      const length = 1 + rng.int(8);
      for (let c = 0; c < length; c++) id += rng.pick([...alphabet]);
      if (ids.includes(id)) continue;
      const status = rng.pick(SESSION_STATUSES);
      const createdAt = START + rng.int(60);
      const parent = ids.length > 0 && rng.chance(0.3) ? rng.pick(ids) : null;
      const input = session({
        id,
        owner: rng.pick(owners),
        title: rng.pick(titles),
        tags: tags.filter(() => rng.chance(0.4)),
        status,
        createdAt,
        lastActiveAt: createdAt + rng.int(40),
        expiresAt: rng.chance(0.2) ? null : START + rng.int(100),
        purgeAt: status === 'expired' ? START + rng.int(100) : null,
        forkedFrom: parent ? { sessionId: parent, messageUuid: null } : null,
      });
      ids.push(id);
      expect(await redisBackend.registry.insert(input)).toEqual(
        await memory.registry.insert(input),
      );
      if (rng.chance(0.2)) {
        const day = START + rng.int(3) * DAY;
        clock.set(day);
        memoryClock.set(day);
        const turn = syntheticTurn({ sessionId: id, cumulativeCostUsd: rng.int(100) / 1000 });
        await redisBackend.store.append(keyOf(id), turn.entries);
        await memory.store.append(keyOf(id), turn.entries);
      }
    }
    for (let i = 0; i < 30; i++) {
      const id = rng.pick(ids);
      const [left, right] = [
        await redisBackend.registry.remove('acme', id),
        await memory.registry.remove('acme', id),
      ];
      expect(left).toBe(right);
    }

    const queries: Array<Omit<SessionQuery, 'limit'>> = [
      {},
      { owner: 'bob' },
      { status: ['expired'] },
    ];
    for (let i = 0; i < 60; i++) {
      const query: Omit<SessionQuery, 'limit'> = {};
      if (rng.chance(0.3)) query.owner = rng.pick(owners);
      if (rng.chance(0.3))
        query.status = SESSION_STATUSES.filter(() => rng.chance(0.5)) as SessionStatus[];
      if (rng.chance(0.3)) query.tag = rng.pick(tags);
      if (rng.chance(0.2)) query.titleContains = rng.pick(['refund', '%', '_', 'TROUBLE', 'x']);
      if (rng.chance(0.3)) query.createdFrom = START + rng.int(60);
      if (rng.chance(0.3)) query.createdTo = START + rng.int(70);
      if (rng.chance(0.2)) query.activeFrom = START + rng.int(80);
      if (rng.chance(0.2)) query.activeTo = START + rng.int(100);
      queries.push(query);
    }
    for (const [q, query] of queries.entries()) {
      for (const scope of [{ tenant: 'acme' }, { tenant: 'acme', owner: rng.pick(owners) }]) {
        const limit = 1 + rng.int(25);
        const pages = async (registry: SessionRegistry) => {
          const seen: string[][] = [];
          let cursor: SessionQuery['cursor'];
          for (let page = 0; page < 400; page++) {
            const rows = await registry.list(scope, { ...query, limit, cursor }, now);
            seen.push(rows.map((r) => r.id));
            if (rows.length <= limit) break;
            const last = rows[limit - 1] as StoredSession;
            cursor = { createdAt: last.createdAt, id: last.id };
          }
          return seen;
        };
        expect(await pages(redisBackend.registry), `query ${q} ${JSON.stringify(query)}`).toEqual(
          await pages(memory.registry),
        );
      }
    }
    for (const owner of [undefined, ...owners]) {
      const scope = { tenant: 'acme', owner };
      for (const at of [START, now, START + 200]) {
        expect(await redisBackend.registry.countByStatus(scope, at)).toEqual(
          await memory.registry.countByStatus(scope, at),
        );
      }
      expect(await redisBackend.registry.dailyUsage(scope, '2026-03-01', '2026-03-02')).toEqual(
        await memory.registry.dailyUsage(scope, '2026-03-01', '2026-03-02'),
      );
      if (owner !== undefined) {
        for (const statuses of [
          ['active'],
          ['active', 'expired'],
          [...SESSION_STATUSES],
        ] as SessionStatus[][]) {
          expect(await redisBackend.registry.countOwned('acme', owner, statuses)).toBe(
            await memory.registry.countOwned('acme', owner, statuses),
          );
        }
      }
    }
    for (const id of ids.slice(0, 80)) {
      expect(await redisBackend.registry.forksOf('acme', id)).toEqual(
        await memory.registry.forksOf('acme', id),
      );
    }
    expect(await redisBackend.registry.list({ tenant: 'other' }, { limit: 10 }, now)).toEqual([]);
  }, 60_000);

  test('every registry script and command stays on one Cluster slot, and none is KEYS or SCAN', async () => {
    const { prefix, clock } = await freshPrefix();
    const redis = client();
    const { createRedisBackend } = await import('../../src/backends/redis/index.js');
    const backend = await createRedisBackend({ client: redis, prefix, clock });
    const groups = await recordCommands(redis, async () => {
      for (const tenant of ['{t}', 'a b', 'é😀']) {
        const registry = backend.registry;
        for (const [i, id] of ['{', '}{', 'x'.repeat(200), 'nul\u0000id'].entries()) {
          const owner = `{own${i % 2}}`;
          await registry.insert(
            session({
              id,
              tenant,
              owner,
              expiresAt: START + i,
              purgeAt: START + HOUR,
              forkedFrom: i > 0 ? { sessionId: '{', messageUuid: null } : null,
            }),
          );
          await registry.insert(session({ id, tenant, owner })).catch(() => {});
          const key = { projectKey: tenantProjectKey(tenant), sessionId: id };
          const turn = syntheticTurn({ sessionId: id, cumulativeCostUsd: 0.01 });
          await backend.store.append(key, turn.entries);
          await backend.store.append(key, turn.entries);
          await (backend.store as RedisTranscriptStore).writeMain(
            key,
            syntheticTurn({
              sessionId: id,
              parentUuid: turn.assistantUuid,
              cumulativeCostUsd: 0.02,
            }).entries,
          );
          const record = (await registry.get(tenant, id)) as StoredSession;
          await registry.update(tenant, id, record.version, { tags: ['x'], status: 'active' });
        }
        await registry.list({ tenant }, { limit: 2, tag: 'x' }, START);
        await registry.list({ tenant, owner: '{own1}' }, { limit: 50 }, START);
        await registry.countOwned(tenant, '{own0}', ['active']);
        await registry.countByStatus({ tenant }, START);
        await registry.forksOf(tenant, '{');
        await registry.dailyUsage({ tenant }, '2026-01-01', '2026-12-31');
        await registry.dailyUsage({ tenant, owner: '{own0}' }, '2026-01-01', '2026-12-31');
        await registry.remove(tenant, '}{');
        await backend.store.delete({ projectKey: tenantProjectKey(tenant), sessionId: '{' });
      }
      await backend.registry.expireDue(START + 2, 100);
      await backend.registry.purgeDue(START + HOUR, 100);
    });

    const names = new Set<string>();
    let scripted = 0;
    for (const group of groups) {
      const keys: string[] = [];
      for (const command of group.commands) {
        names.add(command[0] as string);
        keys.push(...(await keysOf(redis, command)));
      }
      if (group.commands.length > 1) scripted++;
      for (const key of keys) expect(key.startsWith(`${prefix}:{`), key).toBe(true);
      const slots = new Set(keys.map((key) => calculateSlot(key)));
      const label = `${group.commands.map((c) => c[0]).join(' ')}: ${keys.join(' ')}`;
      expect(slots.size, label).toBeLessThanOrEqual(1);
    }
    expect(scripted).toBeGreaterThan(100);
    for (const name of ['hgetall', 'zadd', 'zrem', 'hset', 'hmget', 'unlink']) {
      expect(names, name).toContain(name);
    }
    for (const forbidden of ['keys', 'scan']) expect(names).not.toContain(forbidden);
    await backend.close();
  }, 60_000);
});
