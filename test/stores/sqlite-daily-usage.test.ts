/**
 * SQLite daily usage (migration 6): a counted turn adds to its session's running charge in the
 * session's own row, which moves into `usage_daily` when a turn is counted on another day or the
 * session is removed, deleted or purged. Daily reads must add both places, give what the memory
 * registry gives, and never lose or double a charge, also across a failed append, two
 * connections and a database from before the running charges.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { Backend } from '../../src/backends/backend.js';
import { createMemoryBackend } from '../../src/backends/memory/index.js';
import { openBackend } from '../../src/backends/open.js';
import { tenantProjectKey } from '../../src/backends/registry.js';
import { createSqliteBackend, SQLITE_MIGRATIONS } from '../../src/backends/sqlite/index.js';
import { ManualClock } from '../../src/core/clock.js';
import type { TranscriptEntry } from '../../src/core/entries.js';
import { sessionBuilder } from '../helpers/registry.js';

const DAY = 86_400_000;
/** Noon UTC, so that a day's appends stay on that day. */
const T0 = Date.UTC(2026, 0, 1, 12);
const D1 = '2026-01-01';
const D2 = '2026-01-02';
const MODEL = 'claude-sonnet-4-5';
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

let dir: string;
let file: string;
const opened: Backend[] = [];
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sessionhub-sqlite-daily-'));
  file = path.join(dir, 'hub.db');
});
afterEach(async () => {
  for (const backend of opened.splice(0)) await backend.close();
  await rm(dir, { recursive: true, force: true });
});

async function open(clock: ManualClock): Promise<Backend> {
  const backend = await openBackend(`sqlite:${file}`, { clock });
  opened.push(backend);
  return backend;
}

function inspect<T>(fn: (db: Database.Database) => T): T {
  const db = new Database(file, { readonly: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

/** What each place holds: usage_daily rows and the sessions' running charges, as turns. */
function places() {
  return inspect((db) => ({
    daily: db.prepare('SELECT owner, day, turns FROM usage_daily ORDER BY day, owner').raw().all(),
    running: db
      .prepare(
        `SELECT session_id, charge_day, charge_turns FROM transcript_sessions
         WHERE charge_day IS NOT NULL ORDER BY session_id`,
      )
      .raw()
      .all(),
  }));
}

/** The SQLite backend and the memory backend, doing the same, on the same clock. */
async function both(clock: ManualClock) {
  const sqlite = await open(clock);
  const memory = createMemoryBackend({ clock });
  opened.push(memory);
  const pair = [sqlite, memory];
  return {
    sqlite,
    async register(id: string, owner: string, fields = {}) {
      for (const backend of pair) await backend.registry.insert(session(id, { owner, ...fields }));
    },
    async append(id: string, n: number) {
      for (const backend of pair) await backend.store.append(key(id), turn(id, n));
    },
    /** Daily figures of every scope, as each backend reads them: they must be equal. */
    async expectSameDays(from = D1, to = D2) {
      for (const owner of [undefined, 'alice', 'bob', 'nobody']) {
        const scope = { tenant: 'acme', owner };
        const [left, right] = await Promise.all(
          pair.map((backend) => backend.registry.dailyUsage(scope, from, to)),
        );
        expect(left, `owner ${owner}`).toEqual(right);
      }
    },
  };
}

describe('sqlite daily usage: running charges', () => {
  test("a day's figures are usage_daily plus the running charges, across a day boundary", async () => {
    const clock = new ManualClock(T0);
    const { sqlite, register, append, expectSameDays } = await both(clock);
    await register('s1', 'alice');
    await register('s2', 'alice');
    await register('s3', 'bob');
    await append('s1', 1);
    await append('s1', 2);
    await append('s2', 1);
    await append('s3', 1);
    // Charged in the rows only: usage_daily gets nothing on the turns' own day.
    expect(places()).toEqual({
      daily: [],
      running: [
        ['s1', D1, 2],
        ['s2', D1, 1],
        ['s3', D1, 1],
      ],
    });
    expect(await sqlite.registry.dailyUsage({ tenant: 'acme' }, D1, D1)).toEqual([
      expect.objectContaining({ owner: 'alice', day: D1, turns: 3, costUsd: 0.03 }),
      expect.objectContaining({ owner: 'bob', day: D1, turns: 1, costUsd: 0.01 }),
    ]);
    await expectSameDays();

    // The next day: s1's first counted turn moves what ran on the first day into usage_daily.
    clock.advance(DAY);
    await append('s1', 3);
    await append('s1', 4);
    expect(places()).toEqual({
      daily: [['alice', D1, 2]],
      running: [
        ['s1', D2, 2],
        ['s2', D1, 1],
        ['s3', D1, 1],
      ],
    });
    await expectSameDays();
    await expectSameDays(D2, D2);
    // A retried batch of the new day counts nothing, on either day.
    await append('s1', 4);
    await expectSameDays();
    expect(
      (await sqlite.registry.dailyUsage({ tenant: 'acme', owner: 'alice' }, D1, D2)).map((d) => [
        d.day,
        d.turns,
        d.costUsd,
        d.tokens.inputTokens,
      ]),
    ).toEqual([
      [D1, 3, 0.03, 30],
      [D2, 2, 0.02, 20],
    ]);
  });

  test('remove, the store delete and a purge move the running charge first: nothing is refunded', async () => {
    const clock = new ManualClock(T0);
    const { sqlite, register, append, expectSameDays } = await both(clock);
    const due = { expiresAt: T0 + 10, purgeAt: T0 + 20 };
    for (const id of ['removed', 'deleted', 'p1', 'p2', 'kept']) {
      await register(id, id === 'p2' ? 'bob' : 'alice', id.startsWith('p') ? due : {});
      await append(id, 1);
    }
    // A third session of one owner and day in the purge batch: both rows add to one daily row.
    await register('p3', 'alice', due);
    await append('p3', 1);
    await append('p3', 2);
    await expectSameDays();

    expect(await sqlite.registry.remove('acme', 'removed')).toBe(true);
    expect(places().daily).toEqual([['alice', D1, 1]]);
    await sqlite.store.delete(key('deleted'));
    expect(places().daily).toEqual([['alice', D1, 2]]);
    expect(await sqlite.registry.expireDue(T0 + 10, 100)).toHaveLength(3);
    expect(await sqlite.registry.purgeDue(T0 + 20, 100)).toHaveLength(3);
    expect(places()).toEqual({
      daily: [
        ['alice', D1, 5],
        ['bob', D1, 1],
      ],
      running: [['kept', D1, 1]],
    });
    const days = await sqlite.registry.dailyUsage({ tenant: 'acme' }, D1, D2);
    expect(days.map((d) => [d.owner, d.turns, d.costUsd])).toEqual([
      ['alice', 6, 0.06],
      ['bob', 1, 0.01],
    ]);
    // A purge with nothing running, and a remove of what is gone, move nothing twice.
    expect(await sqlite.registry.purgeDue(T0 + 20, 100)).toEqual([]);
    expect(await sqlite.registry.remove('acme', 'removed')).toBe(false);
    expect(await sqlite.registry.dailyUsage({ tenant: 'acme' }, D1, D2)).toEqual(days);
  });

  test('an append that fails while moving the running charge leaves nothing of itself', async () => {
    const clock = new ManualClock(T0);
    const db = new Database(file);
    const backend = createSqliteBackend({ database: db, ownsDatabase: true, clock });
    opened.push(backend);
    await backend.registry.insert(session('s'));
    await backend.store.append(key('s'), turn('s', 1));
    const record = await backend.registry.get('acme', 's');
    const before = places();
    clock.advance(DAY);
    // The move into usage_daily is the first write of the day-changing append's charge.
    db.exec(`CREATE TEMP TRIGGER fail_move BEFORE INSERT ON main.usage_daily
             BEGIN SELECT RAISE(ABORT, 'disk says no'); END`);
    await expect(backend.store.append(key('s'), turn('s', 2))).rejects.toThrow(/disk says no/);
    expect(await backend.store.load(key('s'))).toHaveLength(3);
    expect(await backend.registry.get('acme', 's')).toEqual(record);
    expect(places()).toEqual(before);
    db.exec('DROP TRIGGER fail_move');
    await backend.store.append(key('s'), turn('s', 2));
    expect(places()).toEqual({ daily: [['alice', D1, 1]], running: [['s', D2, 1]] });
  });

  test('two connections on one file, appending in turn across a day boundary, charge each turn once', async () => {
    const clock = new ManualClock(T0);
    const a = await open(clock);
    const b = await open(clock);
    await a.registry.insert(session('s'));
    // Each connection's cached state goes stale as the other appends: every fold must notice.
    for (let n = 1; n <= 6; n++) {
      if (n === 4) clock.advance(DAY);
      await (n % 2 ? a : b).store.append(key('s'), turn('s', n));
    }
    const days = await b.registry.dailyUsage({ tenant: 'acme', owner: 'alice' }, D1, D2);
    expect(days.map((d) => [d.day, d.turns, d.costUsd])).toEqual([
      [D1, 3, 0.03],
      [D2, 3, 0.03],
    ]);
    expect(places()).toEqual({ daily: [['alice', D1, 3]], running: [['s', D2, 3]] });
  });

  test('a database from before the running charges keeps its daily figures and adds to them', async () => {
    // Schema 5, with a day charged the way earlier versions charged it: in usage_daily only.
    const db = new Database(file);
    db.exec(`CREATE TABLE sessionhub_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`);
    for (const migration of SQLITE_MIGRATIONS.filter((m) => m.version <= 5)) {
      db.exec(migration.sql);
      db.prepare('INSERT INTO sessionhub_migrations VALUES (?, ?, ?)').run(
        migration.version,
        migration.name,
        'then',
      );
    }
    db.prepare(
      `INSERT INTO usage_daily (tenant, owner, day, cost_nanos, input_tokens, output_tokens,
         cache_read_input_tokens, cache_creation_input_tokens, turns)
       VALUES ('acme', 'alice', ?, 500000000, 7, 3, 2, 1, 4)`,
    ).run(D1);
    db.close();

    const clock = new ManualClock(T0);
    const backend = await open(clock);
    expect(await backend.registry.dailyUsage({ tenant: 'acme' }, D1, D2)).toEqual([
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
    await backend.registry.insert(session('s'));
    await backend.store.append(key('s'), turn('s', 1));
    const [day] = await backend.registry.dailyUsage({ tenant: 'acme', owner: 'alice' }, D1, D1);
    expect(day).toMatchObject({ turns: 5, costUsd: 0.51, tokens: { inputTokens: 17 } });
    clock.advance(DAY);
    await backend.store.append(key('s'), turn('s', 2));
    expect(places()).toEqual({ daily: [['alice', D1, 5]], running: [['s', D2, 1]] });
  });

  test('daily reads and moves find the running charges through their indexes', async () => {
    await open(new ManualClock(T0));
    const plans = inspect((db) => {
      const plan = (sql: string) =>
        (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as Array<{ detail: string }>)
          .map((r) => r.detail)
          .join(' | ');
      return {
        owner: plan(`SELECT charge_turns FROM transcript_sessions
          WHERE tenant = 'a' AND owner = 'b' AND charge_day >= '1' AND charge_day <= '2'`),
        tenant: plan(`SELECT charge_turns FROM transcript_sessions
          WHERE tenant = 'a' AND charge_day >= '1' AND charge_day <= '2'`),
      };
    });
    expect(plans.owner).toMatch(/USING INDEX transcript_sessions_charges_by_owner/);
    expect(plans.tenant).toMatch(/USING INDEX transcript_sessions_charges_by_day/);
  });
});
