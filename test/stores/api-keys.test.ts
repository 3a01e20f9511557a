/**
 * The API key store conformance suite on every backend, and what each backend's keys look like
 * where they are stored.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, describe, expect, test } from 'vitest';
import type { Backend } from '../../src/backends/backend.js';
import { openBackend } from '../../src/backends/open.js';
import { type ApiKeyRecord, createApiKey, parseApiKeyToken } from '../../src/core/api-keys.js';
import {
  type ApiKeyStoreUnderTest,
  describeApiKeyStoreConformance,
} from '../../src/testing/index.js';
import {
  backendCases,
  freshPostgresUrl,
  freshRedisUrl,
  freshTempUrl,
  postgresAvailable,
  redisAvailable,
} from '../helpers/backends.js';
import { REDIS_URL } from '../helpers/services.js';

describe.each(backendCases())('$name', (backendCase) => {
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  describeApiKeyStoreConformance(
    `${backendCase.name} API keys`,
    async () => {
      const { backend, reopen, cleanup } = await backendCase.open();
      cleanups.push(cleanup);
      const handle = (opened: Backend): ApiKeyStoreUnderTest => ({
        store: opened.apiKeys,
        close: () => opened.close(),
        // reopen() opens another backend on the same URL: a second process or host, to the store.
        ...(backendCase.durable && {
          async reopen() {
            await opened.close();
            return handle(await reopen());
          },
          another: async () => handle(await reopen()),
        }),
      });
      return handle(backend);
    },
    // Every durable backend here can also be opened twice at once on the same storage.
    { durable: backendCase.durable, shared: backendCase.durable },
  );
});

/** A real key, as the service makes them, and its secret (which must never be stored). */
function realKey(): { key: ApiKeyRecord; secret: string } {
  const { record, token } = createApiKey(
    { name: 'ci', tenant: 'acme', owner: 'alice', rateLimitPerMinute: 60 },
    1_000,
  );
  return { key: record, secret: (parseApiKeyToken(token) as { secret: string }).secret };
}

describe('where each backend keeps API keys', () => {
  test('sqlite: a row of api_keys, with the hash of the secret and nothing of the secret', async () => {
    const { url, drop } = await freshTempUrl('sqlite')();
    try {
      const { key, secret } = realKey();
      const backend = await openBackend(url);
      await backend.apiKeys.insert(key);
      await backend.apiKeys.revoke(key.id, 2_000);
      await backend.close();
      const db = new Database(url.slice('sqlite:'.length), { readonly: true });
      try {
        expect(db.prepare('SELECT * FROM api_keys').all()).toEqual([
          {
            id: key.id,
            name: 'ci',
            tenant: 'acme',
            owner: 'alice',
            role: 'user',
            secret_hash: key.secretHash,
            rate_limit_per_minute: 60,
            created_at: 1_000,
            revoked_at: 2_000,
          },
        ]);
        const name = db
          .prepare("SELECT name FROM sessionhub_migrations WHERE name = 'api keys'")
          .pluck()
          .get();
        expect(name).toBe('api keys');
        expect(JSON.stringify(db.prepare('SELECT * FROM api_keys').all())).not.toContain(secret);
      } finally {
        db.close();
      }
    } finally {
      await drop();
    }
  });

  test('sqlite: the role column refuses anything but user and admin', async () => {
    const { url, drop } = await freshTempUrl('sqlite')();
    try {
      const backend = await openBackend(url);
      await backend.apiKeys.insert(realKey().key);
      await backend.close();
      const db = new Database(url.slice('sqlite:'.length));
      try {
        expect(() => db.prepare("UPDATE api_keys SET role = 'root'").run()).toThrow(/CHECK/);
      } finally {
        db.close();
      }
    } finally {
      await drop();
    }
  });

  test('file: one file per key and one per revocation, in DIR/.api-keys', async () => {
    const { url, drop } = await freshTempUrl('file')();
    try {
      const dir = url.slice('file:'.length);
      const { key, secret } = realKey();
      const backend = await openBackend(url);
      await backend.apiKeys.insert(key);
      await backend.apiKeys.revoke(key.id, 2_000);
      await backend.apiKeys.revoke(key.id, 3_000);
      await backend.close();
      const folder = path.join(dir, '.api-keys');
      // No temporary file is left behind.
      expect((await readdir(folder)).sort()).toEqual([`${key.id}.json`, `${key.id}.revoked.json`]);
      expect(JSON.parse(await readFile(path.join(folder, `${key.id}.json`), 'utf8'))).toEqual(key);
      expect(
        JSON.parse(await readFile(path.join(folder, `${key.id}.revoked.json`), 'utf8')),
      ).toEqual({ revokedAt: 2_000 });
      expect(await readFile(path.join(folder, `${key.id}.json`), 'utf8')).not.toContain(secret);
    } finally {
      await drop();
    }
  });

  test.runIf(postgresAvailable)('postgres: a row of api_keys in the schema', async () => {
    const { url, drop } = await freshPostgresUrl();
    const pool = new pg.Pool({ connectionString: url });
    try {
      const { key, secret } = realKey();
      const backend = await openBackend(url);
      await backend.apiKeys.insert(key);
      await backend.apiKeys.revoke(key.id, 2_000);
      await backend.close();
      const schema = new URL(url).searchParams.get('schema') as string;
      const { rows } = await pool.query(`SELECT * FROM "${schema}".api_keys`);
      expect(rows).toEqual([
        {
          id: key.id,
          name: 'ci',
          tenant: 'acme',
          owner: 'alice',
          role: 'user',
          secret_hash: key.secretHash,
          rate_limit_per_minute: 60,
          created_at: '1000',
          revoked_at: '2000',
        },
      ]);
      expect(JSON.stringify(rows)).not.toContain(secret);
      await expect(pool.query(`UPDATE "${schema}".api_keys SET role = 'root'`)).rejects.toThrow(
        /api_keys_role/,
      );
    } finally {
      await pool.end();
      await drop();
    }
  });

  test.runIf(redisAvailable)(
    'redis: a hash per key and its id in two sorted sets, on one slot',
    async () => {
      const { url, drop } = await freshRedisUrl();
      const { Redis } = await import('ioredis');
      const client = new Redis(REDIS_URL, { lazyConnect: true });
      await client.connect();
      try {
        const { key, secret } = realKey();
        const backend = await openBackend(url);
        await backend.apiKeys.insert(key);
        await backend.apiKeys.revoke(key.id, 2_000);
        await backend.close();
        const prefix = new URL(url).searchParams.get('prefix') as string;
        const base = `${prefix}:{$api-keys}:`;
        expect(await client.hgetall(`${base}key:${key.id}`)).toEqual({
          id: key.id,
          name: 'ci',
          tenant: 'acme',
          owner: 'alice',
          role: 'user',
          secretHash: key.secretHash,
          rateLimitPerMinute: '60',
          createdAt: '1000',
          revokedAt: '2000',
        });
        expect(JSON.stringify(await client.hgetall(`${base}key:${key.id}`))).not.toContain(secret);
        expect(await client.zrange(`${base}all`, 0, -1, 'WITHSCORES')).toEqual([key.id, '1000']);
        expect(await client.zrange(`${base}tenant:acme`, 0, -1, 'WITHSCORES')).toEqual([
          key.id,
          '1000',
        ]);
      } finally {
        client.disconnect();
        await drop();
      }
    },
  );
});
