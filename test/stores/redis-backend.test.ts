import {
  foldSessionSummary,
  type SessionKey,
  type SessionStoreEntry,
  type SessionSummaryEntry,
} from '@anthropic-ai/claude-agent-sdk';
import calculateSlot from 'cluster-key-slot';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import type { Backend } from '../../src/backends/backend.js';
import { openBackend } from '../../src/backends/open.js';
import { createRedisBackend } from '../../src/backends/redis/index.js';
import { projectKeys, sessionKeys } from '../../src/backends/redis/keys.js';
import type { RedisTranscriptStore } from '../../src/backends/redis/transcript-store.js';
import { isSessionHubError } from '../../src/core/errors.js';
import { freshRedisUrl, redisAvailable } from '../helpers/backends.js';
import { keysOf, recordCommands } from '../helpers/redis-commands.js';
import { REDIS_URL } from '../helpers/services.js';

const HOSTILE = [
  '/',
  '..',
  ':',
  '%',
  '%7B',
  '{',
  '}',
  '{tag}',
  '}{',
  'a b',
  '*',
  '?',
  '[x]',
  '\\',
  'x'.repeat(300),
  'é😀',
  '__sessions',
  'sessions',
  'meta',
  'main',
  'main:ids',
  'sub:x',
  'nul\u0000byte',
];

const cleanups: Array<() => Promise<void>> = [];
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});
afterAll(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

/** A fresh prefix; `open()` gives a new backend (a new connection) over it each time. */
async function freshPrefix(): Promise<{ url: string; prefix: string; open(): Promise<Backend> }> {
  const { url, drop } = await freshRedisUrl();
  cleanups.push(drop);
  return {
    url,
    prefix: new URL(url).searchParams.get('prefix') as string,
    async open() {
      const backend = await openBackend(url);
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

const E = (type: string, extra: Record<string, unknown> = {}): SessionStoreEntry => ({
  type,
  ...extra,
});
const prompt = (uuid: string, text: string) =>
  E('user', {
    uuid,
    timestamp: '2026-01-01T00:00:00.000Z',
    message: { role: 'user', content: text },
    lastPrompt: text,
  });

/** Key-order-insensitive JSON, to compare summaries. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)),
        )
      : v,
  );
}

/** Asserts that the session's listing and summary equal a fold of exactly what is stored. */
async function expectSummaryMatchesTranscript(backend: Backend, key: SessionKey): Promise<void> {
  const stored = (await backend.store.load(key)) ?? [];
  const listed = (await backend.store.listSessions(key.projectKey)).find(
    (s) => s.sessionId === key.sessionId,
  );
  const summaries = (await backend.store.listSessionSummaries(key.projectKey)).filter(
    (s) => s.sessionId === key.sessionId,
  );
  expect(listed, 'the session is listed').toBeDefined();
  expect(summaries).toHaveLength(1);
  const summary = summaries[0] as SessionSummaryEntry;
  expect(summary.mtime).toBe(listed?.mtime);
  expect(canonical(summary)).toBe(
    canonical(foldSessionSummary(undefined, key, stored, { mtime: listed?.mtime ?? 0 })),
  );
}

describe.skipIf(!redisAvailable)('redis backend', () => {
  test('a caller-owned client keeps working after backend.close(), which is idempotent', async () => {
    const { prefix } = await freshPrefix();
    const redis = client();
    const backend = await createRedisBackend({ client: redis, prefix });
    const key = { projectKey: 'p', sessionId: 's' };
    await backend.store.append(key, [E('a', { uuid: 'a' })]);
    await backend.close();
    await backend.close();
    expect(await redis.ping()).toBe('PONG');
    expect(redis.status).toBe('ready');
    const error = await backend.store.load(key).catch((e: unknown) => e);
    expect(isSessionHubError(error, 'CLOSED')).toBe(true);
    // The data is still there for anyone else.
    const again = await createRedisBackend({ client: redis, prefix });
    expect(await again.store.load(key)).toEqual([E('a', { uuid: 'a' })]);
  });

  test('ownsClient: true hands the connection to the backend, which closes it', async () => {
    const { prefix } = await freshPrefix();
    const redis = new Redis(REDIS_URL);
    const backend = await createRedisBackend({ client: redis, prefix, ownsClient: true });
    await backend.store.append({ projectKey: 'p', sessionId: 's' }, [E('a')]);
    await Promise.all([backend.close(), backend.close()]);
    expect(redis.status).toBe('end');
  });

  test('a prefix with braces or spaces is refused', async () => {
    const redis = client();
    for (const prefix of ['a{b}', 'a b', '', '}']) {
      const error = await createRedisBackend({ client: redis, prefix }).catch((e: unknown) => e);
      expect(isSessionHubError(error, 'INVALID_OPTION'), prefix).toBe(true);
    }
  });

  test('an unreachable server gives BACKEND_UNAVAILABLE quickly, naming the redacted URL', async () => {
    const started = Date.now();
    const error = await openBackend('redis://app:s3cret@127.0.0.1:1/0?prefix=x').catch(
      (e: unknown) => e,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(isSessionHubError(error, 'BACKEND_UNAVAILABLE')).toBe(true);
    const message = (error as Error).message;
    expect(message).toContain('127.0.0.1:1');
    expect(message).toContain('***');
    expect(message).not.toContain('s3cret');
    expect(message).toMatch(/running and reachable/);
  });

  test('the key scheme: hostile components neither collide nor split a hash tag', () => {
    const names = new Set<string>();
    let count = 0;
    const add = (name: string) => {
      count++;
      names.add(name);
      // Exactly one pair of braces, the one the scheme wrote: nothing can move the hash tag.
      expect(name).toMatch(/^pfx:\{[^{}]+\}:[^{}]+$/);
    };
    for (const projectKey of HOSTILE) {
      const project = projectKeys('pfx', projectKey);
      const projectSlot = calculateSlot(project.sessions);
      for (const name of [project.sessions, project.summaries]) {
        add(name);
        expect(calculateSlot(name)).toBe(projectSlot);
      }
      for (const sessionId of HOSTILE) {
        add(project.gone(sessionId));
        expect(calculateSlot(project.gone(sessionId))).toBe(projectSlot);
        const session = sessionKeys('pfx', projectKey, sessionId);
        const all = [session.meta, session.main.list, session.main.ids, session.subkeys];
        for (const subpath of HOSTILE) {
          const sub = session.sub(subpath);
          all.push(sub.list, sub.ids);
        }
        for (const name of all) add(name);
        expect(calculateSlot.generateMulti(all)).not.toBe(-1);
      }
    }
    expect(names.size).toBe(count);
  });

  test('every script and command stays on one Cluster slot, and none is KEYS or SCAN', async () => {
    const { prefix } = await freshPrefix();
    const redis = client();
    const backend = await createRedisBackend({ client: redis, prefix });
    const store = backend.store as RedisTranscriptStore;
    const groups = await recordCommands(redis, async () => {
      for (const [i, projectKey] of ['{tag}', '}{', 'x'.repeat(300), '%', 'é😀'].entries()) {
        for (const sessionId of ['{', '}', 'a b', '__sessions', 'nul\u0000byte']) {
          const key = { projectKey, sessionId };
          await store.append(key, [
            prompt(`u${i}`, 'hello'),
            E('custom-title', { customTitle: 't' }),
          ]);
          await store.append(key, [prompt(`u${i}`, 'hello'), E('assistant', { uuid: `a${i}` })]);
          await store.writeMain(key, [E('assistant', { uuid: `dead${i}` })]);
          await store.append({ ...key, subpath: '{sub}' }, [E('sub', { uuid: 's' })]);
          await store.append({ ...key, subpath: '..' }, [E('sub')]);
          await store.load(key);
          await store.load({ ...key, subpath: '{sub}' });
          await store.listSubkeys(key);
          await store.delete({ ...key, subpath: '..' });
          await store.append(key, [E('assistant', { uuid: `after${i}` })]);
        }
        await store.listSessions(projectKey);
        await store.listSessionSummaries(projectKey);
        for (const sessionId of ['{', '}']) await store.delete({ projectKey, sessionId });
        await store.delete({ projectKey, sessionId: 'never-written' });
      }
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
    // The recording saw the scripts' own commands, so a script that wandered off its slot
    // through a key it builds itself would have been caught above.
    expect(scripted).toBeGreaterThan(100);
    for (const name of ['rpush', 'sadd', 'zadd', 'hset', 'unlink', 'lrange']) {
      expect(names, name).toContain(name);
    }
    for (const forbidden of ['keys', 'scan']) expect(names).not.toContain(forbidden);
  }, 60_000);

  test('append costs two commands (one for a subagent), listings one each', async () => {
    const { prefix } = await freshPrefix();
    const redis = client();
    const backend = await createRedisBackend({ client: redis, prefix });
    const key = { projectKey: 'p', sessionId: 's' };
    await backend.store.append(key, [E('warm')]);
    const count = async (run: () => Promise<unknown>) =>
      (await recordCommands(redis, async () => void (await run()))).length;
    expect(await count(() => backend.store.append(key, [E('a', { uuid: '1' }), E('b')]))).toBe(2);
    expect(await count(() => backend.store.append({ ...key, subpath: 'sub' }, [E('c')]))).toBe(1);
    expect(await count(() => backend.store.load(key))).toBe(1);
    expect(await count(() => backend.store.listSessions('p'))).toBe(1);
    expect(await count(() => backend.store.listSessionSummaries('p'))).toBe(1);
  });

  test('appends of one project in flight together share their publish call', async () => {
    const { prefix } = await freshPrefix();
    const redis = client();
    const backend = await createRedisBackend({ client: redis, prefix });
    const keys = Array.from({ length: 16 }, (_, i) => ({ projectKey: 'p', sessionId: `s${i}` }));
    const groups = await recordCommands(redis, async () => {
      await Promise.all(
        keys.map((key) => backend.store.append(key, [prompt(key.sessionId, 'hi')])),
      );
    });
    // 16 appends one at a time would take 32 commands; the second steps go out together.
    expect(groups.length).toBeLessThan(32);
    for (const key of keys) await expectSummaryMatchesTranscript(backend, key);
  });

  test('a writer that died between storing entries and publishing is repaired by the next append', async () => {
    const { open } = await freshPrefix();
    const writer = await open();
    const key = { projectKey: 'p', sessionId: 's' };
    await writer.store.append(key, [prompt('u1', 'first')]);
    const [before] = await writer.store.listSessions('p');

    // The dying writer: its entries are stored, its summary step never runs.
    const dying = await open();
    await (dying.store as RedisTranscriptStore).writeMain(key, [
      E('custom-title', { customTitle: 'written by the dead' }),
      prompt('u2', 'second'),
    ]);
    await dying.close();
    expect(await writer.store.listSessions('p')).toEqual([before]);
    const [stale] = await writer.store.listSessionSummaries('p');
    expect(stale?.data.customTitle).toBeUndefined();

    await writer.store.append(key, [E('assistant', { uuid: 'a3' })]);
    await expectSummaryMatchesTranscript(writer, key);
    const [summary] = await writer.store.listSessionSummaries('p');
    expect(summary?.data.customTitle).toBe('written by the dead');
    expect(summary?.data.lastPrompt).toBe('second');
    const [after] = await writer.store.listSessions('p');
    expect(after?.mtime).toBeGreaterThan(before?.mtime ?? Number.POSITIVE_INFINITY);
  });

  test('a first append that died is listed once the SDK retries the same batch', async () => {
    const { open } = await freshPrefix();
    const backend = await open();
    const store = backend.store as RedisTranscriptStore;
    const key = { projectKey: 'p', sessionId: 'new' };
    const batch = [prompt('u1', 'hello'), E('assistant', { uuid: 'a1' })];
    await store.writeMain(key, batch);
    expect(await store.listSessions('p')).toEqual([]);
    await store.append(key, batch);
    expect(await store.load(key)).toHaveLength(2);
    await expectSummaryMatchesTranscript(backend, key);
  });

  test('a summary folded before a delete never reaches the re-created session', async () => {
    const { open } = await freshPrefix();
    const a = await open();
    const b = await open();
    const key = { projectKey: 'p', sessionId: 's' };
    await a.store.append(key, [
      prompt('u1', 'old life'),
      E('custom-title', { customTitle: 'old' }),
    ]);
    // A late publish from before the delete must not list the session again.
    const late = await (a.store as RedisTranscriptStore).writeMain(key, [prompt('u2', 'late')]);
    await b.store.delete(key);
    await (a.store as RedisTranscriptStore).syncSummary(key, late);
    expect(await b.store.listSessions('p')).toEqual([]);
    expect(await b.store.listSessionSummaries('p')).toEqual([]);

    await b.store.append(key, [prompt('n1', 'new life')]);
    // `a` still holds an unsaved fold of the old transcript; its next append offers it.
    await a.store.append(key, [E('assistant', { uuid: 'n2' })]);
    await b.store.append(key, [E('assistant', { uuid: 'n3' })]);
    expect(await b.store.load(key)).toHaveLength(3);
    await expectSummaryMatchesTranscript(b, key);
    const [summary] = await b.store.listSessionSummaries('p');
    expect(summary?.data.customTitle).toBeUndefined();
    expect(summary?.data.firstPrompt).toBe('new life');
  });

  test('two connections appending to one session at once lose no summary update', async () => {
    const { open } = await freshPrefix();
    const writers = [await open(), await open(), await open()];
    const key = { projectKey: 'p', sessionId: 'shared' };
    await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        (writers[i % writers.length] as Backend).store.append(key, [
          prompt(`c${i}`, `prompt ${i}`),
          E('custom-title', { customTitle: `title ${i}` }),
        ]),
      ),
    );
    for (const writer of writers) {
      const stored = (await writer.store.load(key)) ?? [];
      expect(stored).toHaveLength(120);
      // Each call's two entries stayed together.
      for (let at = 0; at < stored.length; at += 2) {
        expect(stored[at + 1]?.customTitle).toBe(`title ${String(stored[at]?.uuid).slice(1)}`);
      }
      await expectSummaryMatchesTranscript(writer, key);
    }
  });

  test('NUL characters and 5 MB entries survive, in keys and in subagent transcripts too', async () => {
    const { open } = await freshPrefix();
    const backend = await open();
    const key = { projectKey: 'nul\u0000p', sessionId: 'nul\u0000s' };
    const big = 'x'.repeat(5 * 1024 * 1024);
    const main = [
      E('text', { uuid: 'n', text: 'a\u0000b', 'k\u0000': '\u0000' }),
      E('big', { big }),
    ];
    const sub = [E('big', { uuid: 'b', big: `${big}\u0000` })];
    await backend.store.append(key, main);
    await backend.store.append({ ...key, subpath: 'sub\u0000agent' }, sub);
    const again = await open();
    expect(await again.store.load(key)).toEqual(main);
    expect(await again.store.load({ ...key, subpath: 'sub\u0000agent' })).toEqual(sub);
    expect(await again.store.listSubkeys(key)).toEqual(['sub\u0000agent']);
    expect((await again.store.listSessions(key.projectKey)).map((s) => s.sessionId)).toEqual([
      key.sessionId,
    ]);
    await expectSummaryMatchesTranscript(again, key);
  }, 60_000);
});
