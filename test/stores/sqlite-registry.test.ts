/**
 * The SQLite registry beyond the hub suite: the migration from schema 2, usage folded inside the
 * append's transaction, several processes racing on one file, removal leaving no row behind, and
 * listings that agree with the memory registry on random data.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { Backend } from '../../src/backends/backend.js';
import { createMemoryBackend } from '../../src/backends/memory/index.js';
import { openBackend } from '../../src/backends/open.js';
import { type SessionPatch, tenantProjectKey } from '../../src/backends/registry.js';
import { createSqliteBackend, SQLITE_MIGRATIONS } from '../../src/backends/sqlite/index.js';
import { ManualClock } from '../../src/core/clock.js';
import { utcDay } from '../../src/core/daily-usage.js';
import type { TranscriptEntry } from '../../src/core/entries.js';
import { isSessionHubError } from '../../src/core/errors.js';
import type { SessionQuery, SessionStatus } from '../../src/core/session-record.js';
import { emptyUsageState, usageTotals } from '../../src/core/usage.js';
import { seededRandom } from '../helpers/random.js';
import { sessionBuilder } from '../helpers/registry.js';

const T0 = Date.UTC(2026, 0, 1);
const MODEL = 'claude-sonnet-4-5';
const key = (tenant: string, sessionId: string, subpath?: string) => ({
  projectKey: tenantProjectKey(tenant),
  sessionId,
  ...(subpath === undefined ? {} : { subpath }),
});

let dir: string;
let file: string;
const opened: Backend[] = [];
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sessionhub-sqlite-registry-'));
  file = path.join(dir, 'hub.db');
});
afterEach(async () => {
  for (const backend of opened.splice(0)) await backend.close();
  await rm(dir, { recursive: true, force: true });
});

async function open(clock = new ManualClock(T0)): Promise<Backend> {
  const backend = await openBackend(`sqlite:${file}`, { clock });
  opened.push(backend);
  return backend;
}

const session = sessionBuilder(T0);

/** One turn as the SDK writes it: a prompt, an assistant reply and the cumulative cost-state. */
function turn(sessionId: string, n: number): TranscriptEntry[] {
  const cost = Math.round(0.01 * n * 1e9) / 1e9;
  return [
    { type: 'user', uuid: `${sessionId}-u${n}`, message: { role: 'user', content: `hi ${n}` } },
    {
      type: 'assistant',
      uuid: `${sessionId}-a${n}`,
      timestamp: new Date(T0 + n * 1000).toISOString(),
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

function inspect<T>(fn: (db: Database.Database) => T): T {
  const db = new Database(file, { readonly: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

describe('sqlite registry: schema', () => {
  test('migrating a schema-2 database keeps its transcripts, which can then be registered', async () => {
    const db = new Database(file);
    db.exec(`CREATE TABLE sessionhub_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`);
    for (const migration of SQLITE_MIGRATIONS.filter((m) => m.version <= 2)) {
      db.exec(migration.sql);
      db.prepare('INSERT INTO sessionhub_migrations VALUES (?, ?, ?)').run(
        migration.version,
        migration.name,
        'then',
      );
    }
    // What a schema-2 store wrote: a session row with its summary, and its lines.
    const entries = [...turn('old', 1), { type: 'user', uuid: 'old-u2' }];
    const row = db
      .prepare(
        `INSERT INTO transcript_sessions (project_key, session_id, mtime, summary)
         VALUES (?, 'old', ?, '{}') RETURNING id`,
      )
      .pluck()
      .get(tenantProjectKey('acme'), T0) as number;
    const insert = db.prepare(
      'INSERT INTO transcript_entries (session_ref, subpath, uuid, entry) VALUES (?, ?, ?, ?)',
    );
    for (const entry of entries) insert.run(row, '', entry.uuid ?? null, JSON.stringify(entry));
    insert.run(row, 'subagents/agent-1', 'sub-1', JSON.stringify({ type: 'user', uuid: 'sub-1' }));
    db.close();

    const backend = await open();
    expect(await backend.store.load(key('acme', 'old'))).toEqual(entries);
    expect(await backend.store.listSubkeys(key('acme', 'old'))).toEqual(['subagents/agent-1']);
    expect(await backend.store.listSessions(tenantProjectKey('acme'))).toEqual([
      { sessionId: 'old', mtime: T0 },
    ]);
    expect(await backend.registry.get('acme', 'old')).toBeNull();

    const adopted = await backend.registry.insert(session('old'));
    expect(adopted.version).toBe(1);
    // Schema 2 never folded usage: the record starts from nothing, the entries stay.
    expect(adopted.usage).toEqual(emptyUsageState());
    expect(await backend.store.load(key('acme', 'old'))).toEqual(entries);
    expect(
      inspect((d) => d.prepare('SELECT MAX(version) FROM sessionhub_migrations').pluck().get()),
    ).toBe(SQLITE_MIGRATIONS.at(-1)?.version);
  });

  test('the listing, sweep and fork queries use their indexes', async () => {
    await open();
    const plans = inspect((db) => {
      const plan = (sql: string) =>
        (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as Array<{ detail: string }>)
          .map((r) => r.detail)
          .join(' | ');
      return {
        owner: plan(`SELECT * FROM transcript_sessions WHERE tenant = 'a' AND owner = 'b'
          AND (created_at, session_id) < (1, 'x') ORDER BY created_at DESC, session_id DESC LIMIT 51`),
        tenant: plan(`SELECT * FROM transcript_sessions WHERE tenant = 'a'
          ORDER BY created_at DESC, session_id DESC LIMIT 51`),
        expire: plan(
          `SELECT id FROM transcript_sessions WHERE status IN ('active', 'failed') AND expires_at <= 1`,
        ),
        purge: plan(
          `SELECT id FROM transcript_sessions WHERE status = 'expired' AND purge_at <= 1`,
        ),
        forks: plan(`SELECT * FROM transcript_sessions WHERE tenant = 'a' AND fork_parent_id = 'p'
          ORDER BY created_at DESC, session_id DESC`),
      };
    });
    expect(plans.owner).toMatch(/USING INDEX transcript_sessions_by_owner .*created_at/);
    expect(plans.tenant).toMatch(/USING INDEX transcript_sessions_by_tenant/);
    expect(plans.expire).toMatch(/transcript_sessions_due_to_expire/);
    expect(plans.purge).toMatch(/transcript_sessions_due_to_purge/);
    expect(plans.forks).toMatch(/transcript_sessions_forks/);
    for (const plan of Object.values(plans)) expect(plan).not.toMatch(/TEMP B-TREE/);
  });
});

describe('sqlite registry: records beside transcripts', () => {
  test('a record-only session stays out of the store; a second insert is SESSION_EXISTS', async () => {
    const backend = await open();
    await backend.registry.insert(session('s1'));
    expect(await backend.store.load(key('acme', 's1'))).toBeNull();
    expect(await backend.store.listSessions(tenantProjectKey('acme'))).toEqual([]);
    expect(await backend.store.listSessionSummaries(tenantProjectKey('acme'))).toEqual([]);
    const error = await backend.registry.insert(session('s1')).catch((e: unknown) => e);
    expect(isSessionHubError(error, 'SESSION_EXISTS')).toBe(true);
    // The same id in another tenant is another session.
    await expect(
      backend.registry.insert(session('s1', { tenant: 'other' })),
    ).resolves.toMatchObject({ tenant: 'other', version: 1 });
  });

  test('insert adopts a transcript, keeping its folded usage unless given one', async () => {
    const backend = await open();
    await backend.store.append(key('acme', 'kept'), turn('kept', 1));
    await backend.store.append(key('acme', 'replaced'), turn('replaced', 1));
    const kept = await backend.registry.insert(session('kept'));
    expect(usageTotals(kept.usage)).toMatchObject({ turns: 1, costUsd: 0.01 });
    const replacement = emptyUsageState();
    replacement.counted.costUsd = 5;
    const replaced = await backend.registry.insert(session('replaced', { usage: replacement }));
    expect(replaced.usage).toEqual(replacement);
    // The next turn folds onto the replacement, not onto what was stored before.
    await backend.store.append(key('acme', 'replaced'), turn('replaced', 2));
    expect((await backend.registry.get('acme', 'replaced'))?.usage.counted.costUsd).toBe(5.02);
    expect(await backend.store.load(key('acme', 'kept'))).toHaveLength(3);
  });

  test('appends never move the record version; updates are compare-and-set', async () => {
    const backend = await open();
    await backend.registry.insert(session('s', { title: 'one', tags: ['x'] }));
    await backend.store.append(key('acme', 's'), turn('s', 1));
    const updated = await backend.registry.update('acme', 's', 1, { title: 'two' });
    expect(updated).toMatchObject({ title: 'two', tags: ['x'], version: 2 });
    expect(usageTotals(updated?.usage ?? emptyUsageState()).turns).toBe(1);
    expect(await backend.registry.update('acme', 's', 1, { title: 'lost' })).toBeNull();
    expect(await backend.registry.update('other', 's', 2, { title: 'wrong tenant' })).toBeNull();
    await backend.store.append(key('acme', 's'), turn('s', 2));
    expect(await backend.registry.update('acme', 's', 2, { tags: [] })).toMatchObject({
      title: 'two',
      tags: [],
      version: 3,
    });
  });

  test('remove and purge leave no row or line behind; daily usage stays', async () => {
    const clock = new ManualClock(T0);
    const backend = await open(clock);
    for (const id of ['gone', 'purged', 'stays']) {
      await backend.registry.insert(session(id, { expiresAt: T0 + 10 }));
      await backend.store.append(key('acme', id), turn(id, 1));
      await backend.store.append(key('acme', id, 'subagents/agent-1'), [{ type: 'x', uuid: id }]);
    }
    await backend.registry.update('acme', 'stays', 1, { expiresAt: null });
    expect(await backend.registry.remove('acme', 'gone')).toBe(true);
    expect(await backend.registry.remove('acme', 'gone')).toBe(false);
    expect(await backend.registry.expireDue(T0 + 10, 100)).toHaveLength(1);
    const expired = await backend.registry.get('acme', 'purged');
    expect(expired).toMatchObject({ status: 'expired', expiredAt: T0 + 10, version: 2 });
    await backend.registry.update('acme', 'purged', 2, { purgeAt: T0 + 20 });
    expect(await backend.registry.purgeDue(T0 + 19, 100)).toEqual([]);
    expect(await backend.registry.purgeDue(T0 + 20, 100)).toHaveLength(1);

    const left = inspect((db) => ({
      sessions: db.prepare('SELECT session_id FROM transcript_sessions').pluck().all(),
      entries: db
        .prepare(
          `SELECT COUNT(*) FROM transcript_entries e
           LEFT JOIN transcript_sessions s ON s.id = e.session_ref
           WHERE s.session_id IS NOT 'stays'`,
        )
        .pluck()
        .get(),
      daily: db.prepare('SELECT turns FROM usage_daily').pluck().all(),
      running: db.prepare('SELECT charge_turns FROM transcript_sessions').pluck().all(),
    }));
    // The removed and the purged session's turns moved into usage_daily; the third still runs
    // in its row (see sqlite/daily-usage.ts).
    expect(left).toEqual({ sessions: ['stays'], entries: 0, daily: [2], running: [1] });
    expect(
      (await backend.registry.dailyUsage({ tenant: 'acme' }, utcDay(T0), utcDay(T0)))[0]?.turns,
    ).toBe(3);
    expect(await backend.store.load(key('acme', 'purged'))).toBeNull();
    expect(await backend.store.listSubkeys(key('acme', 'gone'))).toEqual([]);

    // The store's own delete of the main transcript takes the record with it.
    await backend.store.delete(key('acme', 'stays'));
    expect(await backend.registry.get('acme', 'stays')).toBeNull();
    expect(
      inspect((db) => db.prepare('SELECT COUNT(*) FROM transcript_entries').pluck().get()),
    ).toBe(0);
  });
});

describe('sqlite registry: usage folded in the append', () => {
  test('a retried append folds nothing twice, in the record or the daily figures', async () => {
    const clock = new ManualClock(T0);
    const backend = await open(clock);
    await backend.registry.insert(session('s'));
    await backend.store.append(key('acme', 's'), turn('s', 1));
    await backend.store.append(key('acme', 's'), turn('s', 1));
    await backend.store.append(key('acme', 's'), [...turn('s', 1), ...turn('s', 2)]);
    const record = await backend.registry.get('acme', 's');
    expect(usageTotals(record?.usage ?? emptyUsageState())).toMatchObject({
      turns: 2,
      costUsd: 0.02,
      tokens: { inputTokens: 20, outputTokens: 10 },
    });
    expect(await backend.registry.dailyUsage({ tenant: 'acme' }, utcDay(T0), utcDay(T0))).toEqual([
      {
        owner: 'alice',
        day: utcDay(T0),
        costUsd: 0.02,
        turns: 2,
        tokens: {
          inputTokens: 20,
          outputTokens: 10,
          cacheReadInputTokens: 0,
          cacheCreationInputTokens: 0,
        },
      },
    ]);
    // A subagent transcript's entries are not the session's own turns.
    await backend.store.append(key('acme', 's', 'subagents/a'), turn('sub', 3));
    expect((await backend.registry.get('acme', 's'))?.usage).toEqual(record?.usage);
  });

  test('an append that fails part-way leaves neither its entries nor its fold', async () => {
    const db = new Database(file);
    const backend = createSqliteBackend({
      database: db,
      ownsDatabase: true,
      clock: new ManualClock(T0),
    });
    opened.push(backend);
    await backend.registry.insert(session('s'));
    await backend.store.append(key('acme', 's'), turn('s', 1));
    const before = await backend.registry.get('acme', 's');
    // A failure at the last step of the transaction: the row write that adds the daily charge.
    db.exec(`CREATE TEMP TRIGGER fail_charge BEFORE UPDATE OF charge_turns
             ON main.transcript_sessions BEGIN SELECT RAISE(ABORT, 'disk says no'); END`);
    await expect(backend.store.append(key('acme', 's'), turn('s', 2))).rejects.toThrow(
      /disk says no/,
    );
    expect(await backend.store.load(key('acme', 's'))).toHaveLength(3);
    expect(await backend.registry.get('acme', 's')).toEqual(before);
    db.exec('DROP TRIGGER fail_charge');
    await backend.store.append(key('acme', 's'), turn('s', 2));
    const daily = await backend.registry.dailyUsage({ tenant: 'acme' }, utcDay(T0), utcDay(T0));
    expect(daily.map((d) => [d.turns, d.costUsd])).toEqual([[2, 0.02]]);
  });

  test('only registered sessions charge their owner, on the day of the append', async () => {
    const clock = new ManualClock(T0);
    const backend = await open(clock);
    await backend.store.append(key('acme', 's'), turn('s', 1));
    await backend.store.append({ projectKey: 'plain', sessionId: 'p' }, turn('p', 1));
    expect(
      await backend.registry.dailyUsage({ tenant: 'acme' }, '2000-01-01', '2100-01-01'),
    ).toEqual([]);
    // Registered after its first turn: that turn was never charged, the next ones are.
    await backend.registry.insert(session('s', { owner: 'bob' }));
    clock.advance(86_400_000);
    await backend.store.append(key('acme', 's'), turn('s', 2));
    const daily = await backend.registry.dailyUsage({ tenant: 'acme' }, '2000-01-01', '2100-01-01');
    expect(daily.map((d) => [d.owner, d.day, d.turns, d.costUsd])).toEqual([
      ['bob', utcDay(T0 + 86_400_000), 1, 0.01],
    ]);
    expect(
      await backend.registry.dailyUsage(
        { tenant: 'acme', owner: 'alice' },
        '2000-01-01',
        '2100-01-01',
      ),
    ).toEqual([]);
    const off = await openBackend(`sqlite:${file}`, { clock, foldUsage: false });
    opened.push(off);
    await off.store.append(key('acme', 's'), turn('s', 3));
    expect(
      usageTotals((await off.registry.get('acme', 's'))?.usage ?? emptyUsageState()).turns,
    ).toBe(2);
  });
});

/** A child process holding its own backend on the file, for races across processes. */
const RACER = `
import { createInterface } from 'node:readline';
const [openUrl, url, now, ids, increments] = process.argv.slice(2);
const { openBackend } = await import(openUrl);
const backend = await openBackend(url);
const lines = createInterface({ input: process.stdin });
process.stdout.write('ready\\n');
await new Promise((resolve) => lines.once('line', resolve));
const result = { won: [], lost: [], updates: 0, expired: 0, purged: 0 };
for (const id of JSON.parse(ids)) {
  try {
    await backend.registry.insert({ id, tenant: 'acme', owner: 'o', title: null, tags: [],
      metadata: {}, status: 'active', createdAt: 1, lastActiveAt: 1, expiresAt: null,
      expiredAt: null, purgeAt: null, extendedUntil: null, forkedFrom: null, expiry: {}, limits: {} });
    result.won.push(id);
  } catch (error) {
    if (error.code !== 'SESSION_EXISTS') throw error;
    result.lost.push(id);
  }
}
for (let i = 0; i < Number(increments); i++) {
  for (;;) {
    const current = await backend.registry.get('acme', 'counter');
    const next = await backend.registry.update('acme', 'counter', current.version,
      { metadata: { count: current.metadata.count + 1 } });
    if (next) break;
  }
  result.updates++;
}
for (let n; (n = (await backend.registry.expireDue(Number(now), 3)).length) > 0; ) result.expired += n;
for (let n; (n = (await backend.registry.purgeDue(Number(now), 3)).length) > 0; ) result.purged += n;
await backend.close();
process.stdout.write(JSON.stringify(result) + '\\n');
lines.close();
`;

interface RaceResult {
  won: string[];
  lost: string[];
  updates: number;
  expired: number;
  purged: number;
}

function startRacer(
  script: string,
  args: string[],
): {
  child: ChildProcessWithoutNullStreams;
  ready: Promise<void>;
  result: Promise<RaceResult>;
} {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: process.cwd(),
  });
  let out = '';
  let err = '';
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  child.stderr.on('data', (chunk) => {
    err += chunk;
  });
  child.stdout.on('data', (chunk) => {
    out += chunk;
    if (out.startsWith('ready\n')) markReady();
  });
  const result = new Promise<RaceResult>((resolve, reject) => {
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`racer exited with ${code}: ${err}`));
      else resolve(JSON.parse(out.slice('ready\n'.length)) as RaceResult);
    });
  });
  result.catch(() => markReady());
  return { child, ready, result };
}

describe('sqlite registry: several processes on one file', () => {
  test('insert, update, expire and purge races: one winner, no lost update, each counted once', async () => {
    const backend = await open();
    await backend.registry.insert(session('counter', { metadata: { count: 0 } }));
    const EXPIRING = 300;
    const PURGEABLE = 300;
    for (let i = 0; i < EXPIRING; i++) {
      await backend.registry.insert(session(`exp-${i}`, { expiresAt: T0 + i }));
    }
    for (let i = 0; i < PURGEABLE; i++) {
      const id = `pur-${i}`;
      await backend.registry.insert(
        session(id, { status: 'expired', expiresAt: T0, expiredAt: T0, purgeAt: T0 + i }),
      );
      await backend.store.append(key('acme', id), turn(id, 1));
    }
    const now = String(T0 + 1000);
    const raceIds = Array.from({ length: 150 }, (_, i) => `race-${i}`);
    const script = path.join(dir, 'racer.mts');
    await writeFile(script, RACER);
    const openUrl = pathToFileURL(
      path.join(import.meta.dirname, '../../src/backends/open.ts'),
    ).href;
    const racers = [0, 1, 2].map((n) =>
      startRacer(script, [
        openUrl,
        `sqlite:${file}`,
        now,
        // Each in its own order, so they collide on different ids.
        JSON.stringify(n === 1 ? [...raceIds].reverse() : raceIds),
        '40',
      ]),
    );
    await Promise.all(racers.map((r) => r.ready));
    for (const racer of racers) racer.child.stdin.write('go\n');
    const results = await Promise.all(racers.map((r) => r.result));

    const won = results.flatMap((r) => r.won).sort();
    expect(won).toEqual([...raceIds].sort());
    expect(results.flatMap((r) => r.lost)).toHaveLength(raceIds.length * 2);
    const counter = await backend.registry.get('acme', 'counter');
    expect(counter?.metadata).toEqual({ count: 120 });
    expect(counter?.version).toBe(121);
    expect(results.reduce((sum, r) => sum + r.expired, 0)).toBe(EXPIRING);
    expect(results.reduce((sum, r) => sum + r.purged, 0)).toBe(PURGEABLE);
    const left = inspect((db) => ({
      purgeable: db
        .prepare("SELECT COUNT(*) FROM transcript_sessions WHERE session_id LIKE 'pur-%'")
        .pluck()
        .get(),
      entries: db.prepare('SELECT COUNT(*) FROM transcript_entries').pluck().get(),
      versions: db
        .prepare(
          "SELECT DISTINCT record_version FROM transcript_sessions WHERE session_id LIKE 'exp-%'",
        )
        .pluck()
        .all(),
    }));
    expect(left).toEqual({ purgeable: 0, entries: 0, versions: [2] });
  }, 60_000);
});

const STATUSES: SessionStatus[] = ['active', 'archived', 'expired', 'failed'];
const TITLES = [
  null,
  'Trip to Lisbon',
  'TRIP',
  'Äpfel und Birnen',
  '100%_done',
  'a\\b',
  'İstanbul',
  '',
];
const NEEDLES = ['trip', 'ÄPFEL', '%', '_', '\\', 'i̇', 'o', 'zzz', 'İ'];

describe('sqlite registry: agrees with the memory registry', () => {
  test.each([1, 2, 3])(
    'random data, seed %i: pages, counts, forks, sweeps',
    async (seed) => {
      const rnd = seededRandom(seed);
      const clock = new ManualClock(T0);
      const sqlite = await open(clock);
      const memory = createMemoryBackend({ clock });
      const both = [memory, sqlite];
      const now = T0 + 30_000;
      const ids: string[] = [];
      const alphabet = 'aAbB09-_zZ';
      for (let i = 0; i < 250; i++) {
        let id = `${alphabet[rnd.int(alphabet.length)]}${rnd.int(40)}`;
        while (ids.includes(id)) id += alphabet[rnd.int(alphabet.length)];
        ids.push(id);
        const createdAt = T0 + rnd.int(60) * 1000;
        const input = session(id, {
          tenant: rnd.next() < 0.85 ? 'acme' : 'other',
          owner: rnd.pick(['alice', 'bob', 'carol', 'dan']),
          title: rnd.pick(TITLES),
          tags: rnd.some(['a', 'b', 'c-1', 'A']),
          metadata: rnd.next() < 0.5 ? {} : { n: rnd.int(9), nested: { list: [1, 'two'] } },
          status: rnd.pick(STATUSES),
          createdAt,
          lastActiveAt: createdAt + rnd.int(60) * 1000,
          expiresAt: rnd.next() < 0.3 ? null : T0 + rnd.int(60) * 1000,
          expiredAt: rnd.next() < 0.5 ? null : T0,
          purgeAt: rnd.next() < 0.5 ? null : T0 + rnd.int(60) * 1000,
          extendedUntil: rnd.next() < 0.8 ? null : T0 + 5,
          forkedFrom:
            i > 0 && rnd.next() < 0.2
              ? {
                  sessionId: rnd.pick(ids.slice(0, -1)),
                  messageUuid: rnd.next() < 0.5 ? null : 'm',
                }
              : null,
          expiry: rnd.next() < 0.5 ? {} : { idleTtlMs: 1000, extendOnActivity: false },
          limits: rnd.next() < 0.5 ? {} : { maxTurnsPerSession: 3, maxCostPerSessionUsd: null },
        });
        // Some transcripts come first and are adopted, some sessions get turns after.
        const order = rnd.int(3);
        for (const backend of both) {
          if (order === 0) await backend.store.append(key(input.tenant, id), turn(id, 1));
          await backend.registry.insert(structuredClone(input));
          if (order === 1) await backend.store.append(key(input.tenant, id), turn(id, 2));
        }
      }

      const compare = async () => {
        for (let q = 0; q < 40; q++) {
          const scope = {
            tenant: rnd.next() < 0.9 ? 'acme' : 'other',
            ...(rnd.next() < 0.3 ? { owner: rnd.pick(['alice', 'bob']) } : {}),
          };
          const query: SessionQuery = { limit: 1 + rnd.int(25) };
          if (rnd.next() < 0.3) query.owner = rnd.pick(['alice', 'bob', 'carol']);
          if (rnd.next() < 0.4) query.status = rnd.some(STATUSES).concat(rnd.pick(STATUSES));
          if (rnd.next() < 0.3) query.tag = rnd.pick(['a', 'b', 'c-1', 'A', 'c']);
          if (rnd.next() < 0.3) query.titleContains = rnd.pick(NEEDLES);
          if (rnd.next() < 0.2) query.createdFrom = T0 + rnd.int(60) * 1000;
          if (rnd.next() < 0.2) query.createdTo = T0 + rnd.int(60) * 1000;
          if (rnd.next() < 0.2) query.activeFrom = T0 + rnd.int(90) * 1000;
          if (rnd.next() < 0.2) query.activeTo = T0 + rnd.int(90) * 1000;
          for (let pages = 0; pages < 100; pages++) {
            const [expected, actual] = await Promise.all(
              both.map((b) => b.registry.list(scope, query, now)),
            );
            expect(actual, JSON.stringify({ scope, query })).toEqual(expected);
            if ((expected?.length ?? 0) <= query.limit) break;
            const last = expected?.[query.limit - 1];
            if (!last) break;
            query.cursor = { createdAt: last.createdAt, id: last.id };
          }
        }
        for (const scope of [
          { tenant: 'acme' },
          { tenant: 'acme', owner: 'bob' },
          { tenant: 'none' },
        ]) {
          const [expected, actual] = await Promise.all(
            both.map((b) => b.registry.countByStatus(scope, now)),
          );
          expect(actual).toEqual(expected);
          const [d1, d2] = await Promise.all(
            both.map((b) => b.registry.dailyUsage(scope, '2000-01-01', '2100-01-01')),
          );
          expect(d2).toEqual(d1);
        }
        for (const id of ids.slice(0, 60)) {
          const [f1, f2] = await Promise.all(both.map((b) => b.registry.forksOf('acme', id)));
          expect(f2).toEqual(f1);
          const [g1, g2] = await Promise.all(both.map((b) => b.registry.get('acme', id)));
          expect(g2).toEqual(g1);
        }
        const statuses = rnd.some(STATUSES);
        const [c1, c2] = await Promise.all(
          both.map((b) => b.registry.countOwned('acme', 'alice', statuses)),
        );
        expect(c2).toBe(c1);
      };
      await compare();

      // Updates with the same patches (and some stale versions) on both, then sweeps.
      for (const id of ids.slice(0, 80)) {
        const current = await memory.registry.get('acme', id);
        if (!current) continue;
        const patch: SessionPatch = {};
        if (rnd.next() < 0.5) patch.title = rnd.pick(TITLES);
        if (rnd.next() < 0.5) patch.tags = rnd.some(['a', 'b']);
        if (rnd.next() < 0.5) patch.status = rnd.pick(STATUSES);
        if (rnd.next() < 0.5) patch.expiresAt = rnd.next() < 0.3 ? null : T0 + rnd.int(60) * 1000;
        if (rnd.next() < 0.3) patch.purgeAt = T0 + rnd.int(60) * 1000;
        if (rnd.next() < 0.3) patch.lastActiveAt = T0 + rnd.int(90) * 1000;
        const version = current.version - (rnd.next() < 0.2 ? 1 : 0);
        const results = await Promise.all(
          both.map((b) => b.registry.update('acme', id, version, structuredClone(patch))),
        );
        expect(results[1]).toEqual(results[0]);
      }
      clock.advance(86_400_000);
      for (const id of ids.slice(0, 40)) {
        for (const backend of both) await backend.store.append(key('acme', id), turn(id, 3));
      }
      await compare();
      const idsOf = (swept: Array<{ id: string }> | undefined) => swept?.map((s) => s.id).sort();
      const expired = await Promise.all(both.map((b) => b.registry.expireDue(now, 10_000)));
      expect(idsOf(expired[1])).toEqual(idsOf(expired[0]));
      const purged = await Promise.all(both.map((b) => b.registry.purgeDue(now + 10_000, 10_000)));
      expect(idsOf(purged[1])).toEqual(idsOf(purged[0]));
      await compare();
      for (const id of ids.slice(0, 30)) {
        const removed = await Promise.all(both.map((b) => b.registry.remove('acme', id)));
        expect(removed[1]).toBe(removed[0]);
      }
      await compare();
    },
    60_000,
  );
});
