/**
 * The PostgreSQL session registry: records as columns of the transcript's session row (migration
 * 3), usage folded inside the append's one statement, daily usage, and several backends (separate
 * pools, as separate hosts would have) racing on one schema. The behaviour shared by every
 * backend is the hub suite's; this file checks what only the database can show.
 */
import pg from 'pg';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import type { Backend } from '../../src/backends/backend.js';
import { createMemoryBackend } from '../../src/backends/memory/index.js';
import {
  createPostgresBackend,
  migratePostgres,
  POSTGRES_MIGRATIONS,
} from '../../src/backends/postgres/index.js';
import {
  type SessionPatch,
  type StoredSession,
  tenantProjectKey,
} from '../../src/backends/registry.js';
import { foldAppended } from '../../src/backends/usage-fold.js';
import { ManualClock } from '../../src/core/clock.js';
import { type DailyUsage, utcDay } from '../../src/core/daily-usage.js';
import type { TranscriptEntry } from '../../src/core/entries.js';
import { isSessionHubError } from '../../src/core/errors.js';
import type { SessionQuery, SessionStatus } from '../../src/core/session-record.js';
import { emptyUsageState, foldUsage, type UsageState, usageTotals } from '../../src/core/usage.js';
import { seededRandom } from '../helpers/random.js';
import { sessionBuilder } from '../helpers/registry.js';
import { POSTGRES_URL, requireService, uniqueName } from '../helpers/services.js';

// Off CI a missing PostgreSQL skips with instructions; under CI=true requireService throws.
const ok = await requireService('postgres');

const T0 = Date.UTC(2026, 2, 1, 12);
const MODEL = 'claude-test';
const START = 1_700_000_000_000;

// Everything a test opens is closed after it and every schema dropped after the file.
const pools: pg.Pool[] = [];
const backends: Backend[] = [];
const schemas: string[] = [];

function newPool(options: pg.PoolConfig = {}): pg.Pool {
  const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 4, ...options });
  pools.push(pool);
  return pool;
}

function newSchema(): string {
  const schema = uniqueName('t');
  schemas.push(schema);
  return schema;
}

async function fresh(
  options: { pool?: pg.Pool; schema?: string; clock?: ManualClock; foldUsage?: boolean } = {},
): Promise<{ backend: Backend; pool: pg.Pool; schema: string; clock: ManualClock }> {
  const pool = options.pool ?? newPool();
  const schema = options.schema ?? newSchema();
  const clock = options.clock ?? new ManualClock(T0);
  const backend = await createPostgresBackend({
    pool,
    schema,
    clock,
    foldUsage: options.foldUsage,
  });
  backends.push(backend);
  return { backend, pool, schema, clock };
}

/** A pool that records the text of every statement sent on any of its connections. */
function recordingPool(): { pool: pg.Pool; texts: string[] } {
  const pool = newPool();
  const texts: string[] = [];
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    client.query = ((...args: unknown[]) => {
      const config = args[0] as string | { text?: string };
      texts.push(typeof config === 'string' ? config : (config.text ?? ''));
      return query(...args);
    }) as typeof client.query;
  });
  return { pool, texts };
}

afterEach(async () => {
  for (const backend of backends.splice(0)) await backend.close();
});

afterAll(async () => {
  if (schemas.length > 0) {
    const admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    try {
      for (const schema of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    } finally {
      await admin.end();
    }
  }
  for (const pool of pools) await pool.end();
});

const session = sessionBuilder(T0);

const keyOf = (id: string, tenant = 'acme') => ({
  projectKey: tenantProjectKey(tenant),
  sessionId: id,
});

const user = (uuid: string, text = 'hello'): TranscriptEntry => ({
  type: 'user',
  uuid,
  timestamp: '2026-03-01T12:00:00.000Z',
  message: { role: 'user', content: text },
});

const assistant = (uuid: string, messageId: string, inputTokens = 10): TranscriptEntry => ({
  type: 'assistant',
  uuid,
  timestamp: '2026-03-01T12:00:01.000Z',
  message: {
    id: messageId,
    model: MODEL,
    usage: { input_tokens: inputTokens, output_tokens: 5 },
  },
});

/** A cost-state (no uuid): the SDK's cumulative counter after a turn. */
const costState = (cost: number, startTime = START): TranscriptEntry => ({
  type: 'cost-state',
  totalCostUSD: cost,
  totalDuration: Math.round(cost * 10_000),
  totalAPIDuration: Math.round(cost * 5_000),
  startTime,
  modelUsage: {
    [MODEL]: {
      inputTokens: Math.round(cost * 1000),
      outputTokens: Math.round(cost * 500),
      cacheReadInputTokens: 0,
      cacheCreationInputTokens: 0,
      costUSD: cost,
    },
  },
});

/** Turn `n` of a session: a prompt, an answer and the counter after it (n cents so far). */
const turn = (prefix: string, n: number): TranscriptEntry[] => [
  user(`${prefix}-u${n}`),
  assistant(`${prefix}-a${n}`, `${prefix}-m${n}`),
  costState(n / 100),
];

/** What folding `batches` one after another from `from` leaves. */
function foldAll(from: UsageState | null, batches: TranscriptEntry[][]): UsageState {
  let state = from ?? emptyUsageState();
  for (const batch of batches) state = foldAppended(state, batch)?.state ?? state;
  return state;
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (error: unknown) => error,
  );
}

describe.skipIf(!ok)('postgres registry', () => {
  describe('schema', () => {
    test('a schema at version 2 migrates to the newest version and keeps its transcripts, which can then be registered', async () => {
      const pool = newPool();
      const schema = newSchema();
      const s = `"${schema}"`;
      // The schema exactly as a sessionhub with migrations 1 and 2 left it, with a transcript.
      await pool.query(`CREATE SCHEMA ${s}`);
      await pool.query(`CREATE TABLE ${s}.sessionhub_migrations (
        version integer PRIMARY KEY, name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now())`);
      for (const migration of POSTGRES_MIGRATIONS.slice(0, 2)) {
        await pool.query(migration.sql(s));
        await pool.query(`INSERT INTO ${s}.sessionhub_migrations (version, name) VALUES ($1, $2)`, [
          migration.version,
          migration.name,
        ]);
      }
      const old = [user('u1', 'before'), assistant('a1', 'm1')];
      const {
        rows: [row],
      } = await pool.query<{ id: string }>(
        `INSERT INTO ${s}.transcript_sessions (project_key, session_id, next_seq, mtime, summary)
         VALUES ($1, $2, 2, 1767225600000, '{"lastPrompt":"before"}') RETURNING id`,
        [tenantProjectKey('acme'), 'old'],
      );
      for (const [seq, entry] of old.entries()) {
        await pool.query(
          `INSERT INTO ${s}.transcript_entries (session_ref, subpath, seq, uuid, entry)
           VALUES ($1, '', $2, $3, $4)`,
          [row?.id, seq, entry.uuid, JSON.stringify(entry)],
        );
      }

      // Every migration after 2, however many later ones there are.
      expect(await migratePostgres(pool, schema)).toEqual({
        applied: POSTGRES_MIGRATIONS.slice(2).map((m) => m.version),
      });
      const { backend } = await fresh({ pool, schema });
      const key = keyOf('old');
      expect(await backend.store.load(key)).toEqual(old);
      expect(await backend.store.listSessions(key.projectKey)).toEqual([
        { sessionId: 'old', mtime: 1767225600000 },
      ]);
      expect(await backend.registry.get('acme', 'old')).toBeNull();

      // Registering adopts it: entries stay, and usage starts with what appends fold from now on.
      const stored = await backend.registry.insert(session('old', { title: 'Old one' }));
      expect(stored.usage).toEqual(emptyUsageState());
      expect(stored.version).toBe(1);
      const next = turn('old', 1);
      await backend.store.append(key, next);
      expect(await backend.store.load(key)).toEqual([...old, ...next]);
      expect((await backend.registry.get('acme', 'old'))?.usage).toEqual(foldAll(null, [next]));
    });

    test('the registry indexes serve their queries', async () => {
      const { backend, pool, schema } = await fresh();
      for (let i = 0; i < 50; i++) {
        await backend.registry.insert(
          session(`s${i}`, { owner: `o${i % 5}`, createdAt: T0 + i, expiresAt: T0 + i }),
        );
      }
      await pool.query(`ANALYZE "${schema}".transcript_sessions`);
      const plan = async (sql: string, values: unknown[]) => {
        const client = await pool.connect();
        try {
          // A small table would be read whole and sorted; the question is whether the index
          // can hand out the rows in listing order.
          await client.query('SET enable_seqscan = off');
          await client.query('SET enable_bitmapscan = off');
          await client.query('SET enable_sort = off');
          const { rows } = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, values);
          await client.query('RESET ALL');
          return rows.map((r) => r['QUERY PLAN']).join('\n');
        } finally {
          client.release();
        }
      };
      const t = `"${schema}".transcript_sessions`;
      const ownerPage = await plan(
        `SELECT session_id FROM ${t} WHERE tenant = $1 AND owner = $2
         AND (created_at, session_id) < ($3::bigint, $4::text)
         ORDER BY created_at DESC, session_id DESC LIMIT 51`,
        ['acme', 'o1', T0 + 30, 's30'],
      );
      expect(ownerPage).toMatch(/Index (Only )?Scan using transcript_sessions_owner_created/);
      expect(ownerPage).not.toMatch(/Sort/);
      const tenantPage = await plan(
        `SELECT session_id FROM ${t} WHERE tenant = $1
         AND (created_at, session_id) < ($2::bigint, $3::text)
         ORDER BY created_at DESC, session_id DESC LIMIT 51`,
        ['acme', T0 + 30, 's30'],
      );
      expect(tenantPage).toMatch(/Index (Only )?Scan using transcript_sessions_tenant_created/);
      expect(tenantPage).not.toMatch(/Sort/);
      const due = await plan(
        `SELECT id FROM ${t}
         WHERE status IN ('active', 'failed') AND tenant IS NOT NULL AND expires_at <= $1
         ORDER BY expires_at LIMIT 10`,
        [T0 + 10],
      );
      expect(due).toMatch(/transcript_sessions_expiring/);
      const purge = await plan(
        `SELECT id FROM ${t} WHERE status IN ('active', 'failed', 'expired') AND purge_at <= $1
         ORDER BY purge_at LIMIT 10`,
        [T0 + 10],
      );
      expect(purge).toMatch(/transcript_sessions_purging/);
    });
  });

  describe('records beside transcripts', () => {
    test('a record without entries is invisible to the store, and the store sees it once the main transcript has entries', async () => {
      const { backend } = await fresh();
      await backend.registry.insert(session('r1'));
      const key = keyOf('r1');
      expect(await backend.store.load(key)).toBeNull();
      expect(await backend.store.listSessions(key.projectKey)).toEqual([]);
      expect(await backend.store.listSessionSummaries(key.projectKey)).toEqual([]);
      await backend.store.append({ ...key, subpath: 'subagents/x' }, [user('s1')]);
      expect(await backend.store.listSessions(key.projectKey)).toEqual([]);
      await backend.store.append(key, [user('u1')]);
      expect((await backend.store.listSessions(key.projectKey)).map((s) => s.sessionId)).toEqual([
        'r1',
      ]);
      expect((await backend.registry.get('acme', 'r1'))?.version).toBe(1);
    });

    test('insert adopts a transcript and keeps its usage; with usage given it replaces it', async () => {
      const { backend } = await fresh();
      const batch = turn('x', 1);
      await backend.store.append(keyOf('kept'), batch);
      await backend.store.append(keyOf('replaced'), batch);
      const kept = await backend.registry.insert(session('kept'));
      expect(kept.usage).toEqual(foldAll(null, [batch]));
      const given = foldUsage(emptyUsageState(), [costState(5, START + 1)]).state;
      const replaced = await backend.registry.insert(session('replaced', { usage: given }));
      expect(replaced.usage).toEqual(given);
      // The next append folds onto what was given, not onto what this process folded before.
      const next = turn('x', 2);
      await backend.store.append(keyOf('replaced'), next);
      expect((await backend.registry.get('acme', 'replaced'))?.usage).toEqual(
        foldAll(given, [next]),
      );
      expect(await backend.store.load(keyOf('replaced'))).toEqual([...batch, ...next]);
      const again = await rejectionOf(backend.registry.insert(session('kept')));
      expect(isSessionHubError(again, 'SESSION_EXISTS')).toBe(true);
    });

    test('record updates and appends never invalidate each other', async () => {
      const { pool, texts } = recordingPool();
      const { backend } = await fresh({ pool });
      const created = await backend.registry.insert(session('u'));
      texts.length = 0;
      // The registry handed the store the new row: the first append is one statement.
      await backend.store.append(keyOf('u'), turn('u', 1));
      expect(texts).toHaveLength(1);
      const renamed = await backend.registry.update('acme', 'u', created.version, {
        title: 'Renamed',
        tags: ['x', 'y'],
      });
      expect(renamed).toMatchObject({ title: 'Renamed', tags: ['x', 'y'], version: 2 });
      texts.length = 0;
      await backend.store.append(keyOf('u'), turn('u', 2));
      expect(texts).toHaveLength(1);
      // The append moved usage but not the record's version.
      const read = await backend.registry.get('acme', 'u');
      expect(read?.version).toBe(2);
      expect(read?.usage).toEqual(foldAll(null, [turn('u', 1), turn('u', 2)]));
      const touched = await backend.registry.update('acme', 'u', 2, { lastActiveAt: T0 + 5 });
      expect(touched).toMatchObject({ lastActiveAt: T0 + 5, title: 'Renamed', version: 3 });
      expect(await backend.registry.update('acme', 'u', 2, { title: 'late' })).toBeNull();
      expect(await backend.registry.update('acme', 'nope', 1, { title: 'x' })).toBeNull();
    });

    test('remove and the store delete leave no row, entry or record behind', async () => {
      const { backend, pool, schema } = await fresh();
      const s = `"${schema}"`;
      for (const id of ['gone', 'deleted', 'other']) {
        await backend.registry.insert(session(id));
        await backend.store.append(keyOf(id), turn(id, 1));
        await backend.store.append({ ...keyOf(id), subpath: 'subagents/a' }, [user(`${id}-s`)]);
      }
      const rowsOf = async (id: string) => {
        const { rows } = await pool.query<{ sessions: string; entries: string }>(
          `SELECT
             (SELECT count(*) FROM ${s}.transcript_sessions WHERE session_id = $1) AS sessions,
             (SELECT count(*) FROM ${s}.transcript_entries e
                WHERE e.session_ref IN (SELECT id FROM ${s}.transcript_sessions WHERE session_id = $1))
               AS entries`,
          [id],
        );
        return rows[0];
      };
      expect(await rowsOf('gone')).toEqual({ sessions: '1', entries: '4' });
      expect(await backend.registry.remove('acme', 'gone')).toBe(true);
      expect(await backend.registry.remove('acme', 'gone')).toBe(false);
      await backend.store.delete(keyOf('deleted'));
      expect(await backend.registry.get('acme', 'deleted')).toBeNull();
      const { rows } = await pool.query<{ n: string }>(
        `SELECT count(*) AS n FROM ${s}.transcript_entries`,
      );
      expect(rows[0]?.n).toBe('4');
      expect(await rowsOf('gone')).toEqual({ sessions: '0', entries: '0' });
      expect(await rowsOf('deleted')).toEqual({ sessions: '0', entries: '0' });
      expect(await backend.store.load(keyOf('gone'))).toBeNull();
      expect(await backend.store.listSubkeys(keyOf('gone'))).toEqual([]);
      // What was spent stays spent.
      expect(
        (await backend.registry.dailyUsage({ tenant: 'acme' }, '2026-01-01', '2026-12-31'))[0]
          ?.turns,
      ).toBe(3);
      // The id is free again, for a session that starts from nothing.
      const reborn = await backend.registry.insert(session('gone'));
      expect(reborn.usage).toEqual(emptyUsageState());
      expect(await backend.store.load(keyOf('gone'))).toBeNull();
    });
  });

  describe('usage folded in the append', () => {
    test('one statement writes entries, usage and the daily charge; a retried append adds nothing', async () => {
      const { pool, texts } = recordingPool();
      const { backend, clock, schema } = await fresh({ pool });
      await backend.registry.insert(session('f'));
      const batch = turn('f', 1);
      texts.length = 0;
      await backend.store.append(keyOf('f'), batch);
      expect(texts).toHaveLength(1);
      expect(texts[0]).toMatch(/usage_daily/);
      const folded = foldAppended(null, batch);
      const after = await backend.registry.get('acme', 'f');
      expect(after?.usage).toEqual(folded?.state);
      const day = utcDay(clock.now());
      const daily = await backend.registry.dailyUsage({ tenant: 'acme' }, day, day);
      expect(daily).toEqual([
        {
          owner: 'alice',
          day,
          costUsd: folded?.delta.costUsd,
          tokens: folded?.delta.tokens,
          turns: 1,
        },
      ]);

      // The SDK retries a batch whose acknowledgement it lost: nothing is folded or charged twice.
      await backend.store.append(keyOf('f'), batch);
      expect((await backend.registry.get('acme', 'f'))?.usage).toEqual(folded?.state);
      expect(await backend.registry.dailyUsage({ tenant: 'acme' }, day, day)).toEqual(daily);
      // Another process, which never saw the session, retries it too.
      const other = (await fresh({ schema, clock })).backend;
      await other.store.append(keyOf('f'), batch);
      expect((await other.registry.get('acme', 'f'))?.usage).toEqual(folded?.state);
      expect(await other.registry.dailyUsage({ tenant: 'acme' }, day, day)).toEqual(daily);
    });

    test('an append that cannot move usage sends the statement without any usage work', async () => {
      const { pool, texts } = recordingPool();
      const { backend } = await fresh({ pool });
      await backend.registry.insert(session('p'));
      await backend.store.append(keyOf('p'), turn('p', 1));
      texts.length = 0;
      await backend.store.append(keyOf('p'), [
        user('p-u9'),
        { type: 'custom-title', customTitle: 't' },
      ]);
      expect(texts).toHaveLength(1);
      expect(texts[0]).not.toMatch(/usage/);
      expect((await backend.registry.get('acme', 'p'))?.usage).toEqual(
        foldAll(null, [turn('p', 1)]),
      );
    });

    test('a turn in progress writes its usage state but charges nothing: its statement has no daily part', async () => {
      const { pool, texts } = recordingPool();
      const { backend, clock } = await fresh({ pool });
      await backend.registry.insert(session('q'));
      const [question, answer, done] = turn('q', 1) as [
        TranscriptEntry,
        TranscriptEntry,
        TranscriptEntry,
      ];
      texts.length = 0;
      await backend.store.append(keyOf('q'), [question, answer]);
      expect(texts).toHaveLength(1);
      expect(texts[0]).toMatch(/usage_state/);
      expect(texts[0]).not.toMatch(/usage_daily/);
      const during = await backend.registry.get('acme', 'q');
      expect(usageTotals(during?.usage as UsageState).pendingTokens.inputTokens).toBeGreaterThan(0);
      const day = utcDay(clock.now());
      expect(await backend.registry.dailyUsage({ tenant: 'acme' }, day, day)).toEqual([]);
      // The cost-state counts the turn: now the day is charged, in the same statement.
      texts.length = 0;
      await backend.store.append(keyOf('q'), [done]);
      expect(texts[0]).toMatch(/usage_daily/);
      const [charged] = await backend.registry.dailyUsage({ tenant: 'acme' }, day, day);
      expect(charged).toMatchObject({ owner: 'alice', turns: 1, costUsd: 0.01 });
    });

    test('a failure in the statement leaves neither entries, nor usage, nor a charge', async () => {
      const { backend, pool, schema } = await fresh();
      const s = `"${schema}"`;
      await backend.registry.insert(session('a'));
      await backend.store.append(keyOf('a'), turn('a', 1));
      const before = await backend.registry.get('acme', 'a');
      const dailyBefore = await backend.registry.dailyUsage(
        { tenant: 'acme' },
        '2026-01-01',
        '2026-12-31',
      );
      // Strikes at the very end of the statement, after the entries and the fold were written.
      await pool.query(`
        CREATE FUNCTION ${s}.refuse_charge() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'charge refused'; END $$;
        CREATE TRIGGER refuse_charge BEFORE UPDATE ON ${s}.usage_daily
          FOR EACH ROW EXECUTE FUNCTION ${s}.refuse_charge();
      `);
      const doomed = turn('a', 2);
      await expect(backend.store.append(keyOf('a'), doomed)).rejects.toThrow(/charge refused/);
      expect(await backend.store.load(keyOf('a'))).toEqual(turn('a', 1));
      expect(await backend.registry.get('acme', 'a')).toEqual(before);
      expect(
        await backend.registry.dailyUsage({ tenant: 'acme' }, '2026-01-01', '2026-12-31'),
      ).toEqual(dailyBefore);
      await pool.query(`DROP TRIGGER refuse_charge ON ${s}.usage_daily`);
      await backend.store.append(keyOf('a'), doomed);
      expect((await backend.registry.get('acme', 'a'))?.usage).toEqual(
        foldAll(null, [turn('a', 1), doomed]),
      );
      const daily = await backend.registry.dailyUsage(
        { tenant: 'acme' },
        '2026-01-01',
        '2026-12-31',
      );
      expect(daily[0]?.turns).toBe(2);
      expect(daily[0]?.costUsd).toBe(0.02);
    });

    test('only registered sessions are charged, on the day of the backend clock; subagents fold nothing', async () => {
      const { backend, clock } = await fresh();
      const key = keyOf('late');
      // Plain SDK use first: usage is folded, nobody is charged.
      await backend.store.append(key, turn('late', 1));
      await backend.store.append({ ...key, subpath: 'subagents/a' }, [costState(9)]);
      expect(
        await backend.registry.dailyUsage({ tenant: 'acme' }, '2000-01-01', '2100-01-01'),
      ).toEqual([]);
      const adopted = await backend.registry.insert(session('late', { owner: 'bob' }));
      expect(adopted.usage).toEqual(foldAll(null, [turn('late', 1)]));
      await backend.store.append(key, turn('late', 2));
      clock.advance(24 * 3600_000);
      await backend.store.append(key, turn('late', 3));
      const days = await backend.registry.dailyUsage(
        { tenant: 'acme' },
        '2000-01-01',
        '2100-01-01',
      );
      expect(days.map((d) => [d.owner, d.day, d.turns, d.costUsd])).toEqual([
        ['bob', utcDay(T0), 1, 0.01],
        ['bob', utcDay(T0 + 24 * 3600_000), 1, 0.01],
      ]);
      expect(
        await backend.registry.dailyUsage(
          { tenant: 'acme', owner: 'alice' },
          '2000-01-01',
          '2100-01-01',
        ),
      ).toEqual([]);
      expect(
        await backend.registry.dailyUsage({ tenant: 'other' }, '2000-01-01', '2100-01-01'),
      ).toEqual([]);
    });

    test('with foldUsage: false nothing is folded or charged', async () => {
      const { backend } = await fresh({ foldUsage: false });
      await backend.registry.insert(session('n'));
      await backend.store.append(keyOf('n'), turn('n', 1));
      expect((await backend.registry.get('acme', 'n'))?.usage).toEqual(emptyUsageState());
      expect(
        await backend.registry.dailyUsage({ tenant: 'acme' }, '2000-01-01', '2100-01-01'),
      ).toEqual([]);
      expect(await backend.store.load(keyOf('n'))).toEqual(turn('n', 1));
    });

    test('group statements charge each owner the sum of its sessions, whichever statement carried them', async () => {
      const { pool, texts } = recordingPool();
      const { backend } = await fresh({ pool });
      const sessions = 40;
      const turns = 4;
      for (let i = 0; i < sessions; i++) {
        await backend.registry.insert(session(`g${i}`, { owner: `owner${i % 3}` }));
      }
      // One unregistered session in the mix is folded but charged to nobody.
      const ids = [...Array.from({ length: sessions }, (_, i) => `g${i}`), 'loose'];
      texts.length = 0;
      await Promise.all(
        ids.map(async (id) => {
          for (let t = 1; t <= turns; t++) await backend.store.append(keyOf(id), turn(id, t));
        }),
      );
      expect(texts.some((t) => t.includes('string_to_array') && t.includes('usage_daily'))).toBe(
        true,
      );
      const expected = foldAll(
        null,
        Array.from({ length: turns }, (_, t) => turn('x', t + 1)),
      );
      for (const id of ids.slice(0, sessions)) {
        const usage = (await backend.registry.get('acme', id))?.usage;
        expect(usage?.counted).toEqual(expected.counted);
      }
      const daily = await backend.registry.dailyUsage(
        { tenant: 'acme' },
        '2000-01-01',
        '2100-01-01',
      );
      const perOwner = [14, 13, 13];
      expect(daily.map((d) => [d.owner, d.turns, d.costUsd, d.tokens.inputTokens])).toEqual(
        perOwner.map((n, o) => [
          `owner${o}`,
          n * turns,
          Math.round(n * expected.counted.costUsd * 1e9) / 1e9,
          n * (expected.counted.byModel[MODEL]?.inputTokens ?? 0),
        ]),
      );
    });
  });

  describe('several backends on one schema', () => {
    async function several(count: number) {
      const first = await fresh();
      const rest = [];
      for (let i = 1; i < count; i++) {
        rest.push((await fresh({ schema: first.schema, clock: first.clock })).backend);
      }
      return { ...first, all: [first.backend, ...rest] };
    }

    test('racing expireDue and updates: each session is expired by one caller or extended, never both', async () => {
      const { all, backend } = await several(3);
      const n = 150;
      for (let i = 0; i < n; i++) {
        await backend.registry.insert(session(`e${i}`, { expiresAt: T0 + i, purgeAt: T0 + 1e6 }));
      }
      const now = T0 + 1000;
      const expiredBy = [0, 0, 0];
      const reported: string[] = [];
      let extended = 0;
      const extend = async (i: number) => {
        const racer = all[i % 3] as Backend;
        const read = await racer.registry.get('acme', `e${i}`);
        if (read?.status !== 'active') return;
        const written = await racer.registry.update('acme', `e${i}`, read.version, {
          expiresAt: now + 1e6,
        });
        if (written) extended++;
      };
      await Promise.all([
        ...all.map(async (racer, r) => {
          for (;;) {
            const changed = await racer.registry.expireDue(now, 7);
            expiredBy[r] = (expiredBy[r] as number) + changed.length;
            reported.push(...changed.map((swept) => swept.id));
            if (changed.length === 0) break;
          }
        }),
        ...Array.from({ length: n / 3 }, (_, k) => extend(k * 3)),
      ]);
      const expired = expiredBy.reduce((a, b) => a + b, 0);
      expect(expired + extended).toBe(n);
      // Each expired session is reported once, by the sweeper that expired it.
      expect(new Set(reported).size).toBe(reported.length);
      expect(reported).toHaveLength(expired);
      const counts = await backend.registry.countByStatus({ tenant: 'acme' }, now);
      expect(counts.byStatus.expired).toBe(expired);
      expect(counts.byStatus.active).toBe(extended);
      expect(counts.dueToExpire).toBe(0);
      const one = (
        await backend.registry.list({ tenant: 'acme' }, { limit: 200, status: ['expired'] }, now)
      )[0];
      expect(one).toMatchObject({ status: 'expired', version: 2 });
      expect(one?.expiredAt).toBe(one?.expiresAt);
    });

    test('racing purgeDue and appends: each session is purged by exactly one caller and no entry is left without its session', async () => {
      const { all, backend, pool, schema } = await several(3);
      const s = `"${schema}"`;
      const n = 120;
      for (let i = 0; i < n; i++) {
        await backend.registry.insert(
          session(`p${i}`, { status: 'expired', expiresAt: T0, expiredAt: T0, purgeAt: T0 + i }),
        );
        await backend.store.append(keyOf(`p${i}`), turn(`p${i}`, 1));
      }
      const purgedBy = [0, 0, 0];
      const purgedIds: string[] = [];
      await Promise.all([
        ...all.map(async (racer, r) => {
          for (;;) {
            const removed = await racer.registry.purgeDue(T0 + 1000, 5);
            purgedBy[r] = (purgedBy[r] as number) + removed.length;
            purgedIds.push(...removed.map((swept) => swept.id));
            if (removed.length === 0) break;
          }
        }),
        // A process still writing to sessions being purged: its appends land before the purge
        // (and are purged with it) or after it (in a new, unregistered transcript).
        ...all.map(async (writer, w) => {
          for (let i = w; i < n; i += 3) {
            await writer.store.append(keyOf(`p${i}`), [user(`p${i}-late`)]);
            await writer.store.append({ ...keyOf(`p${i}`), subpath: 'subagents/z' }, [
              user(`p${i}-sub`),
            ]);
          }
        }),
      ]);
      expect(purgedBy.reduce((a, b) => a + b, 0)).toBe(n);
      expect(new Set(purgedIds)).toEqual(new Set(Array.from({ length: n }, (_, i) => `p${i}`)));
      const { rows } = await pool.query<{ registered: string; orphans: string }>(`
        SELECT
          (SELECT count(*) FROM ${s}.transcript_sessions WHERE tenant IS NOT NULL) AS registered,
          (SELECT count(*) FROM ${s}.transcript_entries e
            WHERE NOT EXISTS (SELECT FROM ${s}.transcript_sessions t WHERE t.id = e.session_ref))
            AS orphans`);
      expect(rows[0]).toEqual({ registered: '0', orphans: '0' });
      // Whatever survived is a new transcript holding only the late writes.
      for (let i = 0; i < n; i++) {
        const left = (await backend.store.load(keyOf(`p${i}`))) ?? [];
        for (const entry of left) expect(entry.uuid).toBe(`p${i}-late`);
      }
    });

    test('racing inserts of one id: exactly one wins, the others get SESSION_EXISTS', async () => {
      const { all, backend } = await several(3);
      const ids = Array.from({ length: 20 }, (_, i) => `i${i}`);
      // Half of the ids already have a transcript, to race the adoption path too.
      for (const id of ids.slice(0, 10)) await backend.store.append(keyOf(id), turn(id, 1));
      const outcomes = await Promise.all(
        ids.flatMap((id) =>
          all.map((racer, r) =>
            rejectionOf(racer.registry.insert(session(id, { owner: `racer${r}` }))).then(
              (error) => ({ id, r, error }),
            ),
          ),
        ),
      );
      for (const id of ids) {
        const mine = outcomes.filter((o) => o.id === id);
        const winners = mine.filter((o) => o.error === undefined);
        expect(winners).toHaveLength(1);
        for (const loser of mine.filter((o) => o.error !== undefined)) {
          expect(isSessionHubError(loser.error, 'SESSION_EXISTS')).toBe(true);
        }
        expect((await backend.registry.get('acme', id))?.owner).toBe(`racer${winners[0]?.r}`);
      }
    });

    test('racing compare-and-set updates lose no write', async () => {
      const { all, backend } = await several(3);
      await backend.registry.insert(session('c', { metadata: { n: 0 } }));
      const perRacer = 15;
      await Promise.all(
        all.map(async (racer, r) => {
          for (let k = 0; k < perRacer; k++) {
            for (;;) {
              const read = (await racer.registry.get('acme', 'c')) as StoredSession;
              const patch: SessionPatch = {
                metadata: { n: (read.metadata.n as number) + 1 },
                tags: [`r${r}`],
              };
              if (await racer.registry.update('acme', 'c', read.version, patch)) break;
            }
            // Appends in between never make an update fail.
            await racer.store.append(keyOf('c'), [user(`c-${r}-${k}`)]);
          }
        }),
      );
      const final = await backend.registry.get('acme', 'c');
      expect(final?.metadata).toEqual({ n: 3 * perRacer });
      expect(final?.version).toBe(3 * perRacer + 1);
      expect(await backend.store.load(keyOf('c'))).toHaveLength(3 * perRacer);
    });

    test('an insert with usage makes every process fold onto the given state', async () => {
      const { all } = await several(2);
      const [a, b] = all as [Backend, Backend];
      const key = keyOf('adopt');
      const first = turn('adopt', 1);
      await a.store.append(key, first);
      // a now remembers the state it folded. b registers the session with a different one.
      const given = foldUsage(emptyUsageState(), [costState(3, START + 99)]).state;
      await b.registry.insert(session('adopt', { usage: given }));
      const second = turn('adopt', 2);
      await a.store.append(key, second);
      const expected = foldAll(given, [second]);
      expect((await b.registry.get('acme', 'adopt'))?.usage).toEqual(expected);
      const charged = await b.registry.dailyUsage({ tenant: 'acme' }, '2000-01-01', '2100-01-01');
      expect(charged.map((d) => [d.turns, d.costUsd])).toEqual([
        [1, foldAppended(given, second)?.delta.costUsd],
      ]);
    });

    test('appends racing an insert with usage: the state is the given one with exactly the later entries folded on', async () => {
      const { all, backend } = await several(3);
      const [a, b, c] = all as [Backend, Backend, Backend];
      const key = keyOf('race');
      const turns = 24;
      const given = foldUsage(emptyUsageState(), [costState(7, START + 7)]).state;
      let inserted: Promise<unknown> = Promise.resolve();
      await Promise.all([
        (async () => {
          for (let t = 1; t <= turns; t += 2) {
            await a.store.append(key, turn('race', t));
            if (t === 9) inserted = c.registry.insert(session('race', { usage: given }));
          }
        })(),
        (async () => {
          for (let t = 2; t <= turns; t += 2) await b.store.append(key, turn('race', t));
        })(),
      ]);
      await inserted;
      await a.store.append(key, [user('race-last')]);
      const stored = (await backend.store.load(key)) ?? [];
      expect(stored).toHaveLength(turns * 3 + 1);
      const final = (await backend.registry.get('acme', 'race'))?.usage;
      // The insert landed between two appends: before it nothing counts, after it everything.
      const candidates = Array.from({ length: stored.length + 1 }, (_, k) =>
        JSON.stringify(foldAll(given, [stored.slice(k)])),
      );
      expect(candidates).toContain(JSON.stringify(final));
      const daily = await backend.registry.dailyUsage(
        { tenant: 'acme' },
        '2000-01-01',
        '2100-01-01',
      );
      expect(daily[0]?.turns ?? 0).toBe((final?.counted.turns ?? 0) - given.counted.turns);
    });
  });

  describe('agrees with the memory registry', () => {
    const TITLES = [
      null,
      'Quarterly report',
      'quarterly REPORT draft',
      '100% done_now',
      'back\\slash',
      'İstanbul trip',
      'Straße',
      'ÉCOLE',
      '',
    ];
    const SEARCHES = [
      'report',
      'REPORT',
      '%',
      '_',
      '\\',
      'i',
      'i̇',
      'STRASSE',
      'straße',
      'école',
      'q',
    ];
    const TAGS = ['red', 'green', 'blue', '100%', 'a_b'];
    const STATUSES: SessionStatus[] = ['active', 'archived', 'expired', 'failed'];
    const OWNERS = ['alice', 'bob', 'carol', 'Ünal'];

    test('pages, counts, forks and daily usage match for random data and queries', async () => {
      const seed = 20260301;
      const rnd = seededRandom(seed);
      const clock = new ManualClock(T0);
      const { backend: pgBackend } = await fresh({ clock });
      const memory = createMemoryBackend({ clock });
      const both = [memory, pgBackend];

      const ids: string[] = [];
      for (let i = 0; i < 160; i++) {
        const id = `${rnd.int(16).toString(16)}${rnd.int(1e6).toString(36)}-${i}`;
        const tenant = rnd.chance(0.85) ? 'acme' : 'globex';
        const status = rnd.pick(STATUSES);
        const createdAt = T0 - rnd.int(20) * 1000;
        const expiresAt = rnd.chance(0.3) ? null : T0 + (rnd.int(40) - 20) * 1000;
        const input = session(id, {
          tenant,
          owner: rnd.pick(OWNERS),
          title: rnd.pick(TITLES),
          tags: TAGS.filter(() => rnd.chance(0.3)),
          metadata: { i, nested: { list: [1, 'two'] } },
          status,
          createdAt,
          lastActiveAt: createdAt + rnd.int(30) * 1000,
          expiresAt,
          expiredAt: status === 'expired' ? expiresAt : null,
          purgeAt: status === 'expired' && rnd.chance(0.7) ? T0 + (rnd.int(40) - 20) * 1000 : null,
          forkedFrom:
            ids.length > 0 && rnd.chance(0.3)
              ? { sessionId: rnd.pick(ids), messageUuid: rnd.chance(0.5) ? 'msg-1' : null }
              : null,
          expiry: rnd.chance(0.2) ? { idleTtlMs: 1000 } : {},
          limits: rnd.chance(0.2) ? { maxTurnsPerSession: 3 } : {},
        });
        ids.push(id);
        for (const b of both) await b.registry.insert(structuredClone(input));
        if (rnd.chance(0.3)) {
          clock.set(T0 + rnd.int(3) * 24 * 3600_000);
          const batch = turn(id, 1 + rnd.int(3));
          for (const b of both) await b.store.append(keyOf(id, tenant), batch);
          clock.set(T0);
        }
      }
      // Some updates, the same on both.
      for (let k = 0; k < 40; k++) {
        const id = rnd.pick(ids);
        const tenant = (await memory.registry.get('acme', id)) ? 'acme' : 'globex';
        const current = (await memory.registry.get(tenant, id)) as StoredSession;
        const patch: SessionPatch = rnd.chance(0.5)
          ? { title: rnd.pick(TITLES), tags: TAGS.filter(() => rnd.chance(0.4)) }
          : { status: rnd.pick(STATUSES), expiresAt: T0 + (rnd.int(40) - 20) * 1000 };
        const written = await Promise.all(
          both.map((b) => b.registry.update(tenant, id, current.version, structuredClone(patch))),
        );
        expect(written[1]).toEqual(written[0]);
      }

      let nonEmpty = 0;
      let multiPage = 0;
      for (let q = 0; q < 80; q++) {
        const now = T0 + (rnd.int(40) - 20) * 1000;
        const scope = rnd.chance(0.5)
          ? { tenant: 'acme' }
          : { tenant: rnd.chance(0.9) ? 'acme' : 'globex', owner: rnd.pick(OWNERS) };
        const query: SessionQuery = { limit: 1 + rnd.int(12) };
        if (rnd.chance(0.2)) query.owner = rnd.pick(OWNERS);
        if (rnd.chance(0.4)) query.status = STATUSES.filter(() => rnd.chance(0.4));
        if (rnd.chance(0.3)) query.tag = rnd.pick(TAGS);
        if (rnd.chance(0.3)) query.titleContains = rnd.pick(SEARCHES);
        if (rnd.chance(0.2)) query.createdFrom = T0 - rnd.int(20) * 1000;
        if (rnd.chance(0.2)) query.createdTo = T0 - rnd.int(20) * 1000;
        if (rnd.chance(0.2)) query.activeFrom = T0 - rnd.int(20) * 1000;
        if (rnd.chance(0.2)) query.activeTo = T0 + rnd.int(20) * 1000;
        let pages = 0;
        let listed = 0;
        for (;;) {
          const [expected, actual] = await Promise.all(
            both.map((b) => b.registry.list(scope, query, now)),
          );
          expect(actual, JSON.stringify({ seed, q, scope, query, now })).toEqual(expected);
          const page = (expected as StoredSession[]).slice(0, query.limit);
          listed += page.length;
          if ((expected as StoredSession[]).length <= query.limit || pages++ > 100) break;
          const last = page.at(-1) as StoredSession;
          query.cursor = { createdAt: last.createdAt, id: last.id };
        }
        if (listed > 0) nonEmpty++;
        multiPage += pages > 1 ? 1 : 0;
        const counts = await Promise.all(both.map((b) => b.registry.countByStatus(scope, now)));
        expect(counts[1]).toEqual(counts[0]);
      }

      // The random queries must have found something, over several pages.
      expect(nonEmpty).toBeGreaterThan(30);
      expect(multiPage).toBeGreaterThan(10);
      let charged = 0;
      for (const tenant of ['acme', 'globex']) {
        for (const owner of OWNERS) {
          const statuses = STATUSES.filter(() => rnd.chance(0.5));
          const owned = await Promise.all(
            both.map((b) => b.registry.countOwned(tenant, owner, statuses)),
          );
          expect(owned[1]).toEqual(owned[0]);
          for (const scope of [{ tenant }, { tenant, owner }]) {
            const daily = await Promise.all(
              both.map((b) => b.registry.dailyUsage(scope, utcDay(T0), utcDay(T0 + 86_400_000))),
            );
            expect(daily[1]).toEqual(daily[0]);
            charged += (daily[0] as DailyUsage[]).length;
          }
        }
      }
      expect(charged).toBeGreaterThan(0);
      for (const id of ids.slice(0, 40)) {
        const forks = await Promise.all(both.map((b) => b.registry.forksOf('acme', id)));
        expect(forks[1]).toEqual(forks[0]);
      }

      // And the sweep: the same sessions expire and are purged.
      const now = T0 + 5000;
      const swept = [];
      for (const b of both) {
        let expired = 0;
        let purged = 0;
        for (let n = -1; n !== 0; expired += n) n = (await b.registry.expireDue(now, 4)).length;
        for (let n = -1; n !== 0; purged += n) n = (await b.registry.purgeDue(now, 4)).length;
        swept.push({
          expired,
          purged,
          left: await b.registry.list({ tenant: 'acme' }, { limit: 200 }, now),
        });
      }
      expect(swept[1]).toEqual(swept[0]);
    });
  });
});
