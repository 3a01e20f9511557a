import {
  foldSessionSummary,
  type SessionKey,
  type SessionStoreEntry,
} from '@anthropic-ai/claude-agent-sdk';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import type { Backend } from '../../src/backends/backend.js';
import { openBackend } from '../../src/backends/open.js';
import {
  createPostgresBackend,
  migratePostgres,
  POSTGRES_MIGRATIONS,
  PostgresTranscriptStore,
} from '../../src/backends/postgres/index.js';
import { isSessionHubError, SessionHubError } from '../../src/core/errors.js';
import { describeSessionStoreConformance } from '../../src/testing/index.js';
import { freshPostgresUrl } from '../helpers/backends.js';
import { POSTGRES_URL, requireService, uniqueName } from '../helpers/services.js';

// Off CI a missing PostgreSQL skips with instructions; under CI=true requireService throws.
const ok = await requireService('postgres');

const KEY: SessionKey = { projectKey: 'proj', sessionId: 'sess' };

const user = (uuid: string, text: string): SessionStoreEntry => ({
  type: 'user',
  uuid,
  timestamp: '2026-01-01T00:00:00.000Z',
  message: { role: 'user', content: text },
  lastPrompt: text,
});
const title = (text: string): SessionStoreEntry => ({ type: 'custom-title', customTitle: text });

/** Key-order-insensitive JSON, to compare summaries and entries. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)),
        )
      : v,
  );
}

async function rejection(promise: Promise<unknown>): Promise<SessionHubError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SessionHubError);
  return error as SessionHubError;
}

// Everything a test opens is closed after it and every schema dropped after the file.
const pools: pg.Pool[] = [];
const backends: Backend[] = [];
const schemas: string[] = [];

function newPool(): pg.Pool {
  const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 4 });
  pools.push(pool);
  return pool;
}

function newSchema(): string {
  const schema = uniqueName('t');
  schemas.push(schema);
  return schema;
}

async function fresh(
  options: { pool?: pg.Pool; schema?: string } = {},
): Promise<{ backend: Backend; pool: pg.Pool; schema: string }> {
  const pool = options.pool ?? newPool();
  const schema = options.schema ?? newSchema();
  const backend = await createPostgresBackend({ pool, schema });
  backends.push(backend);
  return { backend, pool, schema };
}

/** A URL for a fresh schema, remembered for dropping. */
async function freshUrl(): Promise<{ url: string; schema: string }> {
  const { url } = await freshPostgresUrl();
  const schema = new URL(url).searchParams.get('schema') as string;
  schemas.push(schema);
  return { url, schema };
}

async function opened(url: string): Promise<Backend> {
  const backend = await openBackend(url);
  backends.push(backend);
  return backend;
}

afterEach(async () => {
  for (const backend of backends.splice(0)) await backend.close();
});

afterAll(async () => {
  if (schemas.length === 0) return;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    for (const schema of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await admin.end();
  }
  for (const pool of pools) await pool.end();
});

/** The summary must be the SDK fold of the main transcript as stored, stamped with its mtime. */
async function expectSummaryMatchesTranscript(backend: Backend, key: SessionKey): Promise<void> {
  const stored = (await backend.store.load(key)) ?? [];
  const [listed] = (await backend.store.listSessions(key.projectKey)).filter(
    (s) => s.sessionId === key.sessionId,
  );
  const [summary] = (await backend.store.listSessionSummaries(key.projectKey)).filter(
    (s) => s.sessionId === key.sessionId,
  );
  expect(summary?.mtime).toBe(listed?.mtime);
  expect(canonical(summary?.data)).toBe(
    canonical(foldSessionSummary(undefined, key, stored, { mtime: 0 }).data),
  );
}

describe.skipIf(!ok)('postgres backend', () => {
  describe('pools', () => {
    test('a pool the caller owns is still usable after backend.close()', async () => {
      const { backend, pool } = await fresh();
      await backend.store.append(KEY, [user('u1', 'hello')]);
      await backend.close();
      await backend.close();
      expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      const closed = await rejection(backend.store.load(KEY));
      expect(closed.code).toBe('CLOSED');
    });

    test('two schemas can share one pool', async () => {
      const pool = newPool();
      const first = await fresh({ pool });
      const second = await fresh({ pool });
      await first.backend.store.append(KEY, [user('u1', 'first')]);
      await second.backend.store.append(KEY, [user('u1', 'second')]);
      expect((await first.backend.store.listSessionSummaries('proj'))[0]?.data.lastPrompt).toBe(
        'first',
      );
      expect((await second.backend.store.listSessionSummaries('proj'))[0]?.data.lastPrompt).toBe(
        'second',
      );
    });

    test('close() ends a pool the backend owns, and can be called again', async () => {
      const pool = newPool();
      const backend = await createPostgresBackend({ pool, schema: newSchema(), ownsPool: true });
      pools.splice(pools.indexOf(pool), 1);
      await backend.close();
      await backend.close();
      expect(pool.ended).toBe(true);
    });

    test('a schema that is not a plain identifier is refused before anything is created', async () => {
      const pool = newPool();
      const error = await rejection(createPostgresBackend({ pool, schema: 'no-dashes; DROP' }));
      expect(error.code).toBe('INVALID_OPTION');
      expect(error.message).toMatch(/schema/);
    });

    test('an unreachable server is BACKEND_UNAVAILABLE, names the URL and hides the password', async () => {
      const error = await rejection(
        openBackend('postgres://alice:s3cret-pw@127.0.0.1:1/test?schema=nowhere'),
      );
      expect(isSessionHubError(error, 'BACKEND_UNAVAILABLE')).toBe(true);
      expect(error.message).toContain('127.0.0.1:1');
      expect(error.message).toContain('alice:***@');
      expect(error.message).toMatch(/Check that the server is running/);
      expect(error.message).not.toContain('s3cret-pw');
      expect(JSON.stringify(error.toJSON())).not.toContain('s3cret-pw');
    });
  });

  describe('migrations', () => {
    test('the migrations are numbered 1, 2, 3… with distinct names', () => {
      expect(POSTGRES_MIGRATIONS.map((m) => m.version)).toEqual(
        POSTGRES_MIGRATIONS.map((_, i) => i + 1),
      );
      expect(new Set(POSTGRES_MIGRATIONS.map((m) => m.name)).size).toBe(POSTGRES_MIGRATIONS.length);
    });

    test('two opens racing on one fresh schema both succeed and record each version once', async () => {
      const { url, schema } = await freshUrl();
      const [a, b] = await Promise.all([opened(url), opened(url)]);
      await a.store.append(KEY, [user('u1', 'from a')]);
      expect(await b.store.load(KEY)).toHaveLength(1);
      const { rows } = await newPool().query<{ version: number; times: string }>(
        `SELECT version, count(*) AS times FROM "${schema}".sessionhub_migrations GROUP BY version ORDER BY version`,
      );
      expect(rows).toEqual(POSTGRES_MIGRATIONS.map((m) => ({ version: m.version, times: '1' })));
    });

    test('reopening applies nothing', async () => {
      const { backend, pool, schema } = await fresh();
      const recorded = async () =>
        (await pool.query(`SELECT * FROM "${schema}".sessionhub_migrations ORDER BY version`)).rows;
      const before = await recorded();
      expect(before.map((row) => row.name)).toEqual(POSTGRES_MIGRATIONS.map((m) => m.name));
      await backend.store.append(KEY, [user('u1', 'kept')]);
      await backend.close();
      expect(await migratePostgres(pool, schema)).toEqual({ applied: [] });
      const again = await fresh({ pool, schema });
      expect(await recorded()).toEqual(before);
      expect(await again.backend.store.load(KEY)).toHaveLength(1);
    });

    test('a schema migrated by a newer sessionhub is SCHEMA_TOO_NEW, whatever opens it', async () => {
      const { url, schema } = await freshUrl();
      await (await opened(url)).close();
      const pool = newPool();
      await pool.query(
        `INSERT INTO "${schema}".sessionhub_migrations (version, name) VALUES (999, 'from the future')`,
      );
      const viaUrl = await rejection(openBackend(url));
      expect(viaUrl.code).toBe('SCHEMA_TOO_NEW');
      expect(viaUrl.message).toMatch(/999/);
      expect(viaUrl.message).toMatch(/Upgrade sessionhub/);
      const viaPool = await rejection(createPostgresBackend({ pool, schema }));
      expect(viaPool.code).toBe('SCHEMA_TOO_NEW');
      // A pool the caller owns is left open even when opening fails.
      expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    });
  });

  describe('stored data', () => {
    test('U+0000 survives in entries, uuids and summaries; keys with it are refused', async () => {
      const { backend } = await fresh();
      const entries = [
        user('nul\u0000uuid', 'prompt with \u0000 inside'),
        { type: 'text', body: 'a\u0000b', 'k\u0000': '\u0000' },
      ];
      await backend.store.append(KEY, entries);
      await backend.store.append(KEY, [entries[0] as SessionStoreEntry]);
      expect(canonical(await backend.store.load(KEY))).toBe(canonical(entries));
      const [summary] = await backend.store.listSessionSummaries(KEY.projectKey);
      expect(summary?.data.lastPrompt).toBe('prompt with \u0000 inside');
      const error = await rejection(backend.store.append({ ...KEY, sessionId: 'a\u0000b' }, []));
      expect(error.code).toBe('INVALID_SESSION_KEY');
      expect(error.message).toMatch(/sessionId.*U\+0000/);
    });

    test('uuids too long for an index still deduplicate; keys too long are refused clearly', async () => {
      const { backend } = await fresh();
      const long = { type: 'user', uuid: 'u'.repeat(5000) };
      const other = { type: 'user', uuid: `${'u'.repeat(4999)}v` };
      await backend.store.append(KEY, [long, other]);
      await backend.store.append(KEY, [long]);
      expect(await backend.store.load(KEY)).toHaveLength(2);
      const error = await rejection(
        backend.store.append({ ...KEY, projectKey: 'p'.repeat(2000) }, [long]),
      );
      expect(error.code).toBe('INVALID_SESSION_KEY');
      expect(error.message).toMatch(/projectKey.*at most 1024 bytes/);
    });

    test('large batches, as imports send them, deduplicate and fold like small ones', async () => {
      const { backend } = await fresh();
      const many = Array.from({ length: 300 }, (_, i) =>
        i % 7 === 0 ? title(`title ${i}`) : user(`big${i % 250}`, `prompt ${i}`),
      );
      await backend.store.append(KEY, many.slice(0, 100));
      await backend.store.append(KEY, many);
      await backend.store.append({ ...KEY, subpath: 'subagents/a' }, many);
      await backend.store.append({ ...KEY, subpath: 'subagents/a' }, many);
      const expected = (batch: SessionStoreEntry[], seen: Set<string>) =>
        batch.filter((e) => !e.uuid || (!seen.has(e.uuid) && Boolean(seen.add(e.uuid))));
      const seen = new Set<string>();
      const main = [...expected(many.slice(0, 100), seen), ...expected(many, seen)];
      expect(canonical(await backend.store.load(KEY))).toBe(canonical(main));
      const sub = expected(many, new Set());
      const titles = many.filter((e) => !e.uuid);
      expect(canonical(await backend.store.load({ ...KEY, subpath: 'subagents/a' }))).toBe(
        canonical([...sub, ...titles]),
      );
      await expectSummaryMatchesTranscript(backend, KEY);
    });

    test('an entry that cannot be serialised fails the append and writes nothing', async () => {
      const { backend } = await fresh();
      await backend.store.append(KEY, [user('u1', 'before')]);
      const [before] = await backend.store.listSessions(KEY.projectKey);
      for (const key of [KEY, { ...KEY, subpath: 'subagents/a' }]) {
        const error = await rejection(
          backend.store.append(key, [user('u2', 'ok'), { type: 'bad', n: 10n }]),
        );
        expect(error.code).toBe('INVALID_ENTRY');
      }
      expect(await backend.store.load(KEY)).toHaveLength(1);
      expect(await backend.store.load({ ...KEY, subpath: 'subagents/a' })).toBeNull();
      expect(await backend.store.listSessions(KEY.projectKey)).toEqual([before]);
      await expectSummaryMatchesTranscript(backend, KEY);
    });

    test('a failure inside the database mid-append leaves nothing half written', async () => {
      const { backend, pool, schema } = await fresh();
      // Stands in for any server-side failure (disk full, constraint, cancelled statement) that
      // strikes after some rows of the batch are already inserted.
      await pool.query(`
        CREATE FUNCTION "${schema}".refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.entry LIKE '%boom%' THEN RAISE EXCEPTION 'boom refused'; END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_boom BEFORE INSERT ON "${schema}".transcript_entries
          FOR EACH ROW EXECUTE FUNCTION "${schema}".refuse_boom();
      `);
      await backend.store.append(KEY, [user('u1', 'before')]);
      const sessionsBefore = await backend.store.listSessions(KEY.projectKey);
      const summariesBefore = await backend.store.listSessionSummaries(KEY.projectKey);
      const doomed = [
        user('u2', 'lost'),
        title('lost title'),
        { type: 'x', uuid: 'u3', t: 'boom' },
      ];
      await expect(backend.store.append(KEY, doomed)).rejects.toThrow(/boom refused/);
      await expect(backend.store.append({ ...KEY, sessionId: 'new' }, doomed)).rejects.toThrow(
        /boom refused/,
      );
      await expect(
        backend.store.append({ ...KEY, subpath: 'subagents/a' }, doomed),
      ).rejects.toThrow(/boom refused/);
      expect(canonical(await backend.store.load(KEY))).toBe(canonical([user('u1', 'before')]));
      expect(await backend.store.load({ ...KEY, sessionId: 'new' })).toBeNull();
      expect(await backend.store.load({ ...KEY, subpath: 'subagents/a' })).toBeNull();
      expect(await backend.store.listSessions(KEY.projectKey)).toEqual(sessionsBefore);
      expect(await backend.store.listSessionSummaries(KEY.projectKey)).toEqual(summariesBefore);
      // The same uuids go in once the cause is gone, and the summary picks up from where it was.
      await pool.query(`DROP TRIGGER refuse_boom ON "${schema}".transcript_entries`);
      await backend.store.append(KEY, doomed);
      expect(await backend.store.load(KEY)).toHaveLength(4);
      expect((await backend.store.listSessionSummaries(KEY.projectKey))[0]?.data.lastPrompt).toBe(
        'lost',
      );
      await expectSummaryMatchesTranscript(backend, KEY);
    });
  });

  describe('several writers on one schema', () => {
    test('two backends appending to one session at once lose nothing and fold in stored order', async () => {
      const { schema } = await fresh();
      const a = (await fresh({ schema })).backend;
      const b = (await fresh({ schema })).backend;
      const batches = Array.from({ length: 48 }, (_, i) => [
        user(`c${i}`, `prompt ${i}`),
        title(`title ${i}`),
      ]);
      // Each batch is sent by both backends, as a retry on another host would be.
      await Promise.all(
        batches.flatMap((batch, i) => [
          (i % 2 === 0 ? a : b).store.append(KEY, batch),
          (i % 3 === 0 ? a : b).store.append(KEY, batch),
        ]),
      );
      const stored = ((await a.store.load(KEY)) ?? []) as Array<{ type: string; uuid?: string }>;
      // Each uuid once; a title without a uuid once per call that sent it.
      expect(
        stored
          .filter((e) => e.uuid)
          .map((e) => e.uuid)
          .sort(),
      ).toEqual(batches.map((_, i) => `c${i}`).sort());
      expect(stored).toHaveLength(48 + 96);
      await expectSummaryMatchesTranscript(a, KEY);
      await expectSummaryMatchesTranscript(b, KEY);
    });

    test('a session deleted and re-created elsewhere is not folded onto its old summary', async () => {
      const { backend: a, schema } = await fresh();
      const b = (await fresh({ schema })).backend;
      await a.store.append(KEY, [user('u1', 'old life'), title('old title')]);
      await b.store.delete(KEY);
      await b.store.append(KEY, [user('u1', 'new life')]);
      await a.store.append(KEY, [user('u2', 'continued')]);
      const [summary] = await a.store.listSessionSummaries(KEY.projectKey);
      expect(summary?.data.customTitle).toBeUndefined();
      expect(summary?.data.firstPrompt).toBe('new life');
      await expectSummaryMatchesTranscript(a, KEY);
      // A retry from the old life is deduplicated against the new one.
      await a.store.append(KEY, [user('u1', 'old life')]);
      expect(await a.store.load(KEY)).toHaveLength(2);
    });

    test('deletes racing appends leave no entry without its session', async () => {
      const { backend: a, pool, schema } = await fresh();
      const b = (await fresh({ schema })).backend;
      const keys = [KEY, { ...KEY, subpath: 'subagents/a' }];
      await Promise.all(
        Array.from({ length: 60 }, (_, i) => {
          const writer = i % 2 ? a : b;
          const key = keys[i % 2] as SessionKey;
          return i % 5 === 4
            ? (i % 3 ? b : a).store.delete(KEY)
            : writer.store.append(key, [user(`r${i}`, `p${i}`), title(`t${i}`)]);
        }),
      );
      const { rows } = await pool.query(
        `SELECT count(*)::int AS orphans FROM "${schema}".transcript_entries e
         WHERE NOT EXISTS (SELECT FROM "${schema}".transcript_sessions s WHERE s.id = e.session_ref)`,
      );
      expect(rows).toEqual([{ orphans: 0 }]);
      if ((await a.store.listSessions(KEY.projectKey)).length > 0) {
        await expectSummaryMatchesTranscript(a, KEY);
      }
    });

    test('mtime moves forward on every append, whichever backend writes', async () => {
      const { backend: a, schema } = await fresh();
      const b = (await fresh({ schema })).backend;
      let last = 0;
      for (let i = 0; i < 20; i++) {
        await (i % 2 ? a : b).store.append(KEY, [user(`m${i}`, `p${i}`)]);
        const [listed] = await a.store.listSessions(KEY.projectKey);
        expect(listed?.mtime).toBeGreaterThan(last);
        last = listed?.mtime ?? Number.POSITIVE_INFINITY;
      }
      await expectSummaryMatchesTranscript(a, KEY);
    });
  });

  describe('round trips', () => {
    /** A pool that counts the statements sent on any of its connections. */
    function countingPool(): { pool: pg.Pool; statements: () => number; reset(): void } {
      const pool = newPool();
      let statements = 0;
      pool.on('connect', (client) => {
        const query = client.query.bind(client) as (...args: unknown[]) => unknown;
        client.query = ((...args: unknown[]) => {
          statements++;
          return query(...args);
        }) as typeof client.query;
      });
      return {
        pool,
        statements: () => statements,
        reset: () => {
          statements = 0;
        },
      };
    }

    test('an append is one statement; a stale view of the session costs two more, once', async () => {
      const count = countingPool();
      const { backend, schema } = await fresh({ pool: count.pool });
      count.reset();
      await backend.store.append(KEY, [user('u1', 'one'), title('t')]);
      await backend.store.append(KEY, [user('u2', 'two')]);
      await backend.store.append({ ...KEY, subpath: 'subagents/a' }, [user('s1', 'sub')]);
      expect(count.statements()).toBe(3);
      // A session whose subagent wrote first: the main transcript's first append is one too.
      count.reset();
      const early = { ...KEY, sessionId: 'subagent-first' };
      await backend.store.append({ ...early, subpath: 'subagents/a' }, [user('s2', 'sub')]);
      await backend.store.append(early, [user('u5', 'main')]);
      expect(count.statements()).toBe(2);

      // Another process (a fresh backend) has never seen the session: it learns it once.
      const otherCount = countingPool();
      const other = await fresh({ pool: otherCount.pool, schema });
      otherCount.reset();
      await other.backend.store.append(KEY, [user('u3', 'three')]);
      await other.backend.store.append(KEY, [user('u4', 'four')]);
      expect(otherCount.statements()).toBe(4);
      await expectSummaryMatchesTranscript(backend, KEY);
    });

    test('a retried batch that is all duplicates costs two statements and changes nothing', async () => {
      const count = countingPool();
      const { backend } = await fresh({ pool: count.pool });
      const batch = [user('u1', 'one'), { type: 'assistant', uuid: 'a1' }];
      await backend.store.append(KEY, batch);
      const before = await backend.store.listSessions(KEY.projectKey);
      count.reset();
      await backend.store.append(KEY, batch);
      expect(count.statements()).toBe(2);
      expect(await backend.store.listSessions(KEY.projectKey)).toEqual(before);
    });
  });
});

describe.skipIf(!ok)('postgres group commit', () => {
  /** A backend on a fresh schema whose pool records the text of every statement it sends. */
  async function recorded(poolOptions: pg.PoolConfig = {}) {
    const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 4, ...poolOptions });
    pools.push(pool);
    // A connection terminated under a test must not crash the process.
    pool.on('error', () => {});
    const texts: string[] = [];
    pool.on('connect', (client) => {
      client.on('error', () => {});
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      client.query = ((...args: unknown[]) => {
        const config = args[0] as string | { text?: string };
        texts.push(typeof config === 'string' ? config : (config.text ?? ''));
        return query(...args);
      }) as typeof client.query;
    });
    const { backend, schema } = await fresh({ pool });
    texts.length = 0;
    const groups = () => texts.filter((t) => t.includes('string_to_array')).length;
    return { backend, pool, schema, texts, groups };
  }

  const keyOf = (i: number): SessionKey => ({ projectKey: 'proj', sessionId: `g${i}` });
  const turn = (i: number, t: number) => [
    user(`g${i}-u${t}`, `prompt ${i}.${t}`),
    title(`t${i}.${t}`),
  ];

  test('many sessions appending at once lose nothing and keep each session in call order', async () => {
    const { backend, texts, groups } = await recorded();
    const sessions = 40;
    const turns = 5;
    // Every append is issued at once; those of one session must still land in call order.
    await Promise.all(
      Array.from({ length: sessions }, (_, i) =>
        Array.from({ length: turns }, (_, t) => backend.store.append(keyOf(i), turn(i, t))),
      ).flat(),
    );
    // Far fewer statements than appends: they went out in groups.
    expect(groups()).toBeGreaterThan(0);
    expect(texts.length).toBeLessThan((sessions * turns) / 4);
    for (let i = 0; i < sessions; i++) {
      const expected = Array.from({ length: turns }, (_, t) => turn(i, t)).flat();
      expect(canonical(await backend.store.load(keyOf(i)))).toBe(canonical(expected));
    }
    const listed = await backend.store.listSessions('proj');
    expect(listed).toHaveLength(sessions);
    for (let i = 0; i < sessions; i += 7) await expectSummaryMatchesTranscript(backend, keyOf(i));
    // Retries of the same turns, grouped again, are deduplicated and change no summary.
    const before = await backend.store.listSessionSummaries('proj');
    await Promise.all(
      Array.from({ length: sessions }, (_, i) =>
        backend.store.append(keyOf(i), [user(`g${i}-u0`, `prompt ${i}.0`)]),
      ),
    );
    expect(await backend.store.listSessionSummaries('proj')).toEqual(before);
    expect(await backend.store.load(keyOf(3))).toHaveLength(turns * 2);
  });

  test('two backends appending to the same sessions at once fold every session in stored order', async () => {
    const a = await recorded();
    const b = (await fresh({ schema: a.schema })).backend;
    const sessions = 12;
    await Promise.all(
      Array.from({ length: sessions }, (_, i) =>
        Array.from({ length: 4 }, (_, t) => [
          a.backend.store.append(keyOf(i), turn(i, t)),
          b.store.append(keyOf(i), turn(i, t)),
        ]).flat(),
      ).flat(),
    );
    expect(a.groups()).toBeGreaterThan(0);
    for (let i = 0; i < sessions; i++) {
      const stored = ((await b.store.load(keyOf(i))) ?? []) as Array<{ uuid?: string }>;
      // Each uuid once; each title once per call that sent it.
      expect(stored.filter((e) => e.uuid).map((e) => e.uuid)).toEqual(
        Array.from({ length: 4 }, (_, t) => `g${i}-u${t}`),
      );
      expect(stored).toHaveLength(4 + 8);
      await expectSummaryMatchesTranscript(a.backend, keyOf(i));
    }
  });

  test('a part the database refuses fails alone; the rest of its group is written', async () => {
    const { backend, pool, schema, groups } = await recorded();
    await pool.query(`
      CREATE FUNCTION "${schema}".refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.entry LIKE '%boom%' THEN RAISE EXCEPTION 'boom refused'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER refuse_boom BEFORE INSERT ON "${schema}".transcript_entries
        FOR EACH ROW EXECUTE FUNCTION "${schema}".refuse_boom();
    `);
    await backend.store.append(keyOf(5), [user('before', 'before')]);
    const doomed = [user('d1', 'lost'), { type: 'x', uuid: 'd2', t: 'boom' }];
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        backend.store.append(keyOf(i), i === 5 ? doomed : turn(i, 0)),
      ),
    );
    // The first append went out alone while the other nine queued; they then went out as two
    // groups of five and four (an even share for the two statements in flight), the first of
    // which failed and was retried session by session.
    expect(groups()).toBe(2);
    results.forEach((result, i) => {
      if (i === 5)
        expect(result).toMatchObject({ status: 'rejected', reason: { message: 'boom refused' } });
      else expect(result.status).toBe('fulfilled');
    });
    for (let i = 0; i < 10; i++) {
      if (i !== 5)
        expect(canonical(await backend.store.load(keyOf(i)))).toBe(canonical(turn(i, 0)));
    }
    expect(canonical(await backend.store.load(keyOf(5)))).toBe(
      canonical([user('before', 'before')]),
    );
    await expectSummaryMatchesTranscript(backend, keyOf(5));
    await expectSummaryMatchesTranscript(backend, keyOf(7));
    await pool.query(`DROP TRIGGER refuse_boom ON "${schema}".transcript_entries`);
    await backend.store.append(keyOf(5), doomed);
    expect(await backend.store.load(keyOf(5))).toHaveLength(3);
    await expectSummaryMatchesTranscript(backend, keyOf(5));
  });

  test('a lost connection rejects every caller whose append it carried, and writes nothing', async () => {
    const application = uniqueName('gc');
    const { backend, schema, groups } = await recorded({ application_name: application });
    const admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    try {
      // Holds every append back: the table lock conflicts with any insert or update.
      await admin.query('BEGIN');
      await admin.query(`LOCK TABLE "${schema}".transcript_sessions IN SHARE MODE`);
      const calls = Array.from({ length: 10 }, (_, i) =>
        backend.store.append(keyOf(i), turn(i, 0)),
      );
      const settled = Promise.allSettled(calls);
      let pending = true;
      void settled.then(() => {
        pending = false;
      });
      // Terminates every connection waiting on the lock: the lone first append's, then those of
      // the groups that queued behind it.
      let terminated = 0;
      while (pending) {
        // The admin's transaction would otherwise keep seeing its first view of the activity.
        await admin.query('SELECT pg_stat_clear_snapshot()');
        const { rows } = await admin.query<{ killed: boolean }>(
          `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
           WHERE application_name = $1 AND wait_event_type = 'Lock'`,
          [application],
        );
        terminated += rows.length;
      }
      const results = await settled;
      expect(results.map((r) => r.status)).toEqual(Array(10).fill('rejected'));
      expect(terminated).toBeGreaterThanOrEqual(2);
      expect(groups()).toBeGreaterThanOrEqual(1);
    } finally {
      await admin.query('COMMIT');
      await admin.end();
    }
    for (let i = 0; i < 10; i++) expect(await backend.store.load(keyOf(i))).toBeNull();
    // The pool replaces the lost connections and the same appends go through.
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => backend.store.append(keyOf(i), turn(i, 0))),
    );
    expect(await backend.store.listSessions('proj')).toHaveLength(10);
  });
});

// The same contract through the path an append takes when optimistic writes keep losing: the
// session's row lock held across the fold.
describe.skipIf(!ok)('postgres store with locked appends', () => {
  describeSessionStoreConformance('postgres store, locked appends', async () => {
    const pool = newPool();
    const schema = newSchema();
    await migratePostgres(pool, schema);
    const store = new PostgresTranscriptStore({ pool, schema, optimisticAttempts: 0 });
    return { store, close: () => store.close() };
  });
});
