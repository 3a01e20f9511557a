import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { foldSessionSummary } from '@anthropic-ai/claude-agent-sdk';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { openBackend } from '../../src/backends/open.js';
import { createSqliteBackend, SQLITE_MIGRATIONS } from '../../src/backends/sqlite/index.js';
import { isSessionHubError } from '../../src/core/errors.js';

const run = promisify(execFile);
const writer = path.join(import.meta.dirname, '../fixtures/sqlite-writer.ts');

let dir: string;
let file: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sessionhub-sqlite-'));
  file = path.join(dir, 'hub.db');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function spawnWriter(id: string, batches: number) {
  return run(process.execPath, ['--import', 'tsx', writer, `sqlite:${file}`, id, String(batches)]);
}

describe('sqlite backend', () => {
  test('uses WAL and records every migration once', async () => {
    const backend = await openBackend(`sqlite:${file}`);
    await backend.close();
    const db = new Database(file, { readonly: true });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      const versions = db.prepare('SELECT version FROM sessionhub_migrations').pluck().all();
      expect(versions).toEqual(SQLITE_MIGRATIONS.map((m) => m.version));
    } finally {
      db.close();
    }
  });

  test('several processes opening and writing one file at once lose nothing', async () => {
    const writers = ['w1', 'w2', 'w3'];
    await Promise.all(writers.map((id) => spawnWriter(id, 200)));

    const backend = await openBackend(`sqlite:${file}`);
    try {
      const key = { projectKey: 'shared', sessionId: 'one' };
      const entries = (await backend.store.load(key)) ?? [];
      expect(entries).toHaveLength(writers.length * 200 * 2);
      // Each batch's two entries are adjacent: appends never interleave.
      for (let i = 0; i < entries.length; i += 2) {
        expect(entries[i]?.uuid).toBe(`${entries[i]?.writer}-${entries[i]?.batch}-a`);
        expect(entries[i + 1]?.uuid).toBe(`${entries[i]?.writer}-${entries[i]?.batch}-b`);
      }
      // And the summary was folded in exactly that order, with no update lost.
      const [listed] = await backend.store.listSessions('shared');
      const [summary] = await backend.store.listSessionSummaries('shared');
      const expected = foldSessionSummary(undefined, key, entries, { mtime: listed?.mtime });
      expect(summary?.data).toEqual(expected.data);
      expect(summary?.data.lastPrompt).toBe(entries.at(-2)?.lastPrompt);
    } finally {
      await backend.close();
    }
    const db = new Database(file, { readonly: true });
    try {
      const count = db.prepare('SELECT COUNT(*) FROM sessionhub_migrations').pluck().get();
      expect(count).toBe(SQLITE_MIGRATIONS.length);
    } finally {
      db.close();
    }
  }, 60_000);

  test('a database from a newer sessionhub is refused with SCHEMA_TOO_NEW', async () => {
    const backend = await openBackend(`sqlite:${file}`);
    await backend.close();
    const db = new Database(file);
    db.prepare(
      "INSERT INTO sessionhub_migrations (version, name, applied_at) VALUES (9999, 'future', 'x')",
    ).run();
    db.close();
    const error = await openBackend(`sqlite:${file}`).catch((e: unknown) => e);
    expect(isSessionHubError(error, 'SCHEMA_TOO_NEW')).toBe(true);
    expect((error as Error).message).toMatch(/Upgrade sessionhub/);
  });

  test('a caller-owned database stays open after the backend closes', async () => {
    const db = new Database(file);
    const backend = createSqliteBackend({ database: db });
    await backend.store.append({ projectKey: 'p', sessionId: 's' }, [{ type: 'a' }]);
    await backend.close();
    expect(db.open).toBe(true);
    expect(db.prepare('SELECT COUNT(*) FROM transcript_entries').pluck().get()).toBe(1);
    await expect(backend.store.load({ projectKey: 'p', sessionId: 's' })).rejects.toThrow(/closed/);
    db.close();
  });

  test('a failed append leaves nothing half written', async () => {
    const backend = await openBackend(`sqlite:${file}`);
    try {
      const key = { projectKey: 'p', sessionId: 's' };
      await backend.store.append(key, [{ type: 'ok', uuid: '1' }]);
      const bad = [
        { type: 'fine', uuid: '2' },
        { type: 'bad', n: 10n },
      ];
      await expect(backend.store.append(key, bad)).rejects.toThrow(/Entry 1/);
      expect(await backend.store.load(key)).toEqual([{ type: 'ok', uuid: '1' }]);
    } finally {
      await backend.close();
    }
  });

  test('sqlite::memory: works and an unusable path says what to fix', async () => {
    const memory = await openBackend('sqlite::memory:');
    await memory.store.append({ projectKey: 'p', sessionId: 's' }, [{ type: 'a' }]);
    expect(await memory.store.load({ projectKey: 'p', sessionId: 's' })).toEqual([{ type: 'a' }]);
    await memory.close();

    const error = await openBackend(`sqlite:${dir}`).catch((e: unknown) => e);
    expect(isSessionHubError(error, 'BACKEND_UNAVAILABLE')).toBe(true);
    expect((error as Error).message).toContain(dir);
  });
});
