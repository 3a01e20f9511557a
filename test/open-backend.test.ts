import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';
import { isSessionHubError, openBackend, parseBackendUrl } from '../src/index.js';

const run = promisify(execFile);

describe('parseBackendUrl', () => {
  test.each([
    ['memory:', { kind: 'memory' }],
    [
      'sqlite:./.sessionhub/hub.db',
      { kind: 'sqlite', path: './.sessionhub/hub.db', synchronous: 'normal' },
    ],
    [
      'sqlite:/abs/hub.db?synchronous=full',
      { kind: 'sqlite', path: '/abs/hub.db', synchronous: 'full' },
    ],
    ['sqlite::memory:', { kind: 'sqlite', path: ':memory:', synchronous: 'normal' }],
    ['file:./transcripts', { kind: 'file', dir: './transcripts', fsync: false }],
    ['file:/data/t?fsync=true', { kind: 'file', dir: '/data/t', fsync: true }],
    [
      'postgres://u:p@db:5432/app?schema=hub&max=4',
      {
        kind: 'postgres',
        connectionString: 'postgres://u:p@db:5432/app',
        schema: 'hub',
        poolSize: 4,
      },
    ],
    [
      'postgresql://db/app',
      { kind: 'postgres', connectionString: 'postgresql://db/app', schema: 'public', poolSize: 10 },
    ],
    [
      'redis://127.0.0.1:6379/2',
      { kind: 'redis', connectionString: 'redis://127.0.0.1:6379/2', prefix: 'sessionhub' },
    ],
    [
      'rediss://r:6380?prefix=app',
      { kind: 'redis', connectionString: 'rediss://r:6380', prefix: 'app' },
    ],
  ])('%s', (url, expected) => {
    expect(parseBackendUrl(url)).toEqual(expected);
  });

  test.each([
    ['', /empty/],
    ['mysql://localhost/db', /"mysql:" is not a known backend/],
    ['hub.db', /no scheme|not a known backend/],
    ['sqlite:', /needs a file path/],
    ['sqlite:x.db?journal=off', /unknown option "journal"/],
    ['postgres://h/db?schema=drop table', /plain SQL identifier/],
    ['postgres://h/db?max=0', /max=0/],
    ['redis://h?prefix={x}', /prefix/],
    ['memory:extra', /memory: takes no path/],
  ])('refuses %j, naming the accepted forms', (url, reason) => {
    let caught: unknown;
    try {
      parseBackendUrl(url);
    } catch (error) {
      caught = error;
    }
    expect(isSessionHubError(caught, 'INVALID_BACKEND_URL')).toBe(true);
    const message = (caught as Error).message;
    expect(message).toMatch(reason);
    for (const form of ['sqlite:PATH', 'postgres://', 'redis://', 'file:DIR', 'memory:']) {
      expect(message).toContain(form);
    }
  });

  test('never repeats a password in an error', () => {
    expect(() => parseBackendUrl('postgres://user:s3cret@h/db?max=x')).toThrow(/user:\*\*\*@h/);
    expect(() => parseBackendUrl('postgres://user:s3cret@h/db?max=x')).not.toThrow(/s3cret/);
  });
});

describe('openBackend', () => {
  test('opens memory: with every SessionStore method', async () => {
    const backend = await openBackend('memory:');
    for (const method of [
      'append',
      'load',
      'listSessions',
      'listSessionSummaries',
      'delete',
      'listSubkeys',
    ]) {
      expect(typeof (backend.store as unknown as Record<string, unknown>)[method]).toBe('function');
    }
    expect(backend.kind).toBe('memory');
    await backend.close();
    await backend.close();
  });

  test('loads a driver only when its backend is used', async () => {
    // CommonJS drivers imported from ESM still land in the CommonJS module cache, which a child
    // process can inspect after opening each backend.
    const script = `
      import { createRequire } from 'node:module';
      import { openBackend } from ${JSON.stringify(path.resolve('src/index.ts'))};
      const loaded = () => Object.keys(createRequire(import.meta.url).cache)
        .map((f) => f.match(/node_modules\\/(pg|ioredis|better-sqlite3)\\//)?.[1]).filter(Boolean);
      const seen = {};
      const m = await openBackend('memory:'); await m.close(); seen.memory = [...new Set(loaded())];
      const s = await openBackend('sqlite::memory:'); await s.close(); seen.sqlite = [...new Set(loaded())];
      console.log(JSON.stringify(seen));
    `;
    const { stdout } = await run(process.execPath, [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      script,
    ]);
    const seen = JSON.parse(stdout.trim().split('\n').at(-1) as string);
    expect(seen.memory).toEqual([]);
    expect(seen.sqlite).toEqual(['better-sqlite3']);
  }, 30_000);
});
