import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { Backend } from '../../src/backends/backend.js';
import { openBackend } from '../../src/backends/open.js';
import { createSqliteBackend } from '../../src/backends/sqlite/index.js';
import { ManualClock } from '../../src/core/clock.js';
import { isSessionHubError } from '../../src/core/errors.js';
import { describeLeaseConformance } from '../../src/testing/index.js';

const racer = path.join(import.meta.dirname, '../fixtures/sqlite-lease-racer.ts');

describeLeaseConformance('sqlite leases', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'sessionhub-sqlite-leases-'));
  const url = `sqlite:${path.join(dir, 'hub.db')}`;
  const backends: Backend[] = [];
  return {
    // A connection of its own per manager: to SQLite, another process in all but name.
    async manager(clock) {
      const backend = await openBackend(url, { clock });
      backends.push(backend);
      return backend.leases;
    },
    async close() {
      for (const backend of backends) await backend.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('sqlite leases beyond the contract', () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sessionhub-sqlite-leases-'));
    file = path.join(dir, 'hub.db');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Starts a racer and resolves once it has opened the database and waits for the signal. */
  function startRacer(holder: string, resources: number) {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', racer, `sqlite:${file}`, holder, String(resources)],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const exited = new Promise<Array<{ resource: string; fence: number }>>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) => {
        if (code !== 0) reject(new Error(`racer ${holder} exited with ${code}: ${stderr}`));
        else resolve(JSON.parse(stdout.split('\n')[1] as string));
      });
    });
    const ready = new Promise<void>((resolve, reject) => {
      const check = () => {
        if (stdout.startsWith('ready\n')) resolve();
      };
      child.stdout.on('data', check);
      exited.catch(reject);
    });
    return { holder, ready, exited, go: () => child.stdin.write('go\n') };
  }

  test('of several processes racing for the same leases, exactly one wins each', async () => {
    const resources = 300;
    const racers = ['p1', 'p2', 'p3', 'p4'].map((holder) => startRacer(holder, resources));
    await Promise.all(racers.map((r) => r.ready));
    for (const r of racers) r.go();
    const won = await Promise.all(racers.map((r) => r.exited));

    const winners = new Map<string, string[]>();
    for (const [i, list] of won.entries()) {
      for (const { resource, fence } of list) {
        expect(fence).toBe(1);
        winners.set(resource, [...(winners.get(resource) ?? []), racers[i]?.holder as string]);
      }
    }
    expect(winners.size).toBe(resources + 1);
    for (const holders of winners.values()) expect(holders).toHaveLength(1);

    const backend = await openBackend(`sqlite:${file}`);
    try {
      const hot = await backend.leases.current('hot');
      expect(hot).toMatchObject({ holder: winners.get('hot')?.[0], fence: 1 });
    } finally {
      await backend.close();
    }
  }, 60_000);

  test('leases and fences are rows in the database, stamped by the injected clock', async () => {
    const clock = new ManualClock(5_000);
    const db = new Database(file);
    const backend = createSqliteBackend({ database: db, clock });
    try {
      const lease = await backend.leases.acquire('s1', { holder: 'a', ttlMs: 1000 });
      expect(lease).toMatchObject({ fence: 1, expiresAt: 6_000 });
      await backend.leases.release(lease as NonNullable<typeof lease>);
      const row = db.prepare('SELECT * FROM leases WHERE resource = ?').get('s1');
      // Released: the token is gone, the fence stays for the next holder to continue from.
      expect(row).toEqual({
        resource: 's1',
        holder: 'a',
        token: null,
        fence: 1,
        expires_at: 6_000,
      });
      clock.set(1_000_000);
      expect(await backend.leases.acquire('s1', { holder: 'b', ttlMs: 1 })).toMatchObject({
        fence: 2,
        expiresAt: 1_000_001,
      });
    } finally {
      await backend.close();
      db.close();
    }
  });

  test('fences survive closing and reopening the database', async () => {
    const clock = new ManualClock();
    const first = await openBackend(`sqlite:${file}`, { clock });
    const lease = await first.leases.acquire('s1', { holder: 'a', ttlMs: 1000 });
    await first.close();
    const second = await openBackend(`sqlite:${file}`, { clock });
    try {
      // Still held: a lease in SQLite outlives the connection that took it.
      expect(await second.leases.current('s1')).toMatchObject({ holder: 'a', fence: 1 });
      expect(await second.leases.release(lease as NonNullable<typeof lease>)).toBe(true);
      expect(await second.leases.acquire('s1', { holder: 'b', ttlMs: 1000 })).toMatchObject({
        fence: 2,
      });
    } finally {
      await second.close();
    }
  });

  test('a fence of the wrong type never validates, and a closed backend refuses calls', async () => {
    const backend = await openBackend(`sqlite:${file}`, { clock: new ManualClock() });
    const lease = await backend.leases.acquire('s1', { holder: 'a', ttlMs: 1000 });
    expect(await backend.leases.validate('s1', 1)).toBe(true);
    expect(await backend.leases.validate('s1', '1' as unknown as number)).toBe(false);
    expect(await backend.leases.validate('s1', 1.5)).toBe(false);
    await backend.close();
    const error = await backend.leases.current('s1').catch((e: unknown) => e);
    expect(isSessionHubError(error, 'CLOSED')).toBe(true);
    expect(lease?.fence).toBe(1);
  });
});
