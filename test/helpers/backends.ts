/**
 * Every backend, opened fresh and isolated for one test: a new SQLite file, a new PostgreSQL
 * schema, a new Redis key prefix, a new folder. Tests that should hold on every backend loop
 * over `backendCases()`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Backend } from '../../src/backends/backend.js';
import { openBackend } from '../../src/backends/open.js';
import type { Clock } from '../../src/core/clock.js';
import type { OpenStore, StoreUnderTest } from '../../src/testing/index.js';
import {
  deleteRedisPrefix,
  POSTGRES_URL,
  REDIS_URL,
  requireService,
  uniqueName,
} from './services.js';

export interface BackendCase {
  name: 'memory' | 'sqlite' | 'file' | 'postgres' | 'redis';
  /** Whether close() and reopen keep the data. */
  durable: boolean;
  /** Opens a fresh, empty backend; `reopen` opens another over the same data. */
  open(): Promise<{ backend: Backend; reopen(): Promise<Backend>; cleanup(): Promise<void> }>;
}

async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(path.join(tmpdir(), `sessionhub-${prefix}-`));
}

export const postgresAvailable = await requireService('postgres');
export const redisAvailable = await requireService('redis');

/** A URL for a new, empty schema in the test database, and a function that drops it. */
export async function freshPostgresUrl(): Promise<{ url: string; drop(): Promise<void> }> {
  const schema = uniqueName('t');
  const url = new URL(POSTGRES_URL);
  url.searchParams.set('schema', schema);
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      try {
        await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      } finally {
        await client.end();
      }
    },
  };
}

/** A URL with a new key prefix in the test Redis. Keys are removed with SCAN + UNLINK. */
export async function freshRedisUrl(): Promise<{ url: string; drop(): Promise<void> }> {
  const prefix = uniqueName('t');
  const url = new URL(REDIS_URL);
  url.searchParams.set('prefix', prefix);
  return {
    url: url.toString(),
    async drop() {
      const { Redis } = await import('ioredis');
      const client = new Redis(REDIS_URL, { lazyConnect: true });
      await client.connect();
      try {
        await deleteRedisPrefix(client, prefix);
      } finally {
        client.disconnect();
      }
    },
  };
}

/** A URL for a new SQLite file or file-store folder in a temporary directory. */
export function freshTempUrl(
  kind: 'sqlite' | 'file',
): () => Promise<{ url: string; drop(): Promise<void> }> {
  return async () => {
    const dir = await tempDir(kind);
    const target =
      kind === 'sqlite' ? `sqlite:${path.join(dir, 'hub.db')}` : `file:${path.join(dir, 'store')}`;
    return { url: target, drop: () => rm(dir, { recursive: true, force: true }) };
  };
}

/**
 * Stores for the conformance suite: each open() makes a fresh backend from `makeUrl`, whose
 * reopen() closes it and opens the same URL again. Data is dropped by cleanup(), once the whole
 * file is done, because close() and reopen() must keep it.
 */
export function conformanceStores(makeUrl: () => Promise<{ url: string; drop(): Promise<void> }>): {
  open: OpenStore;
  cleanup(): Promise<void>;
} {
  const drops: Array<() => Promise<void>> = [];
  const openAt = async (url: string): Promise<StoreUnderTest> => {
    const backend = await openBackend(url);
    return {
      store: backend.store,
      close: () => backend.close(),
      async reopen() {
        await backend.close();
        return openAt(url);
      },
    };
  };
  return {
    async open() {
      const { url, drop } = await makeUrl();
      drops.push(drop);
      return openAt(url);
    },
    async cleanup() {
      for (const drop of drops.splice(0)) await drop();
    },
  };
}

/**
 * Fresh storage that several backends share within one test, as several processes or hosts
 * would: every open() is a new backend (its own pool or connection) on the same URL.
 */
export async function sharedStorage(
  makeUrl: () => Promise<{ url: string; drop(): Promise<void> }>,
): Promise<{ url: URL; open(clock: Clock): Promise<Backend>; close(): Promise<void> }> {
  const { url, drop } = await makeUrl();
  const backends: Backend[] = [];
  return {
    url: new URL(url),
    async open(clock) {
      const backend = await openBackend(url, { clock });
      backends.push(backend);
      return backend;
    },
    async close() {
      for (const backend of backends.splice(0)) await backend.close();
      await drop();
    },
  };
}

function urlCase(
  name: BackendCase['name'],
  durable: boolean,
  makeUrl: () => Promise<{ url: string; drop(): Promise<void> }>,
): BackendCase {
  return {
    name,
    durable,
    async open() {
      const { url, drop } = await makeUrl();
      const backend = await openBackend(url);
      return { backend, reopen: () => openBackend(url), cleanup: drop };
    },
  };
}

export function backendCases(): BackendCase[] {
  const cases: BackendCase[] = [
    urlCase('memory', false, async () => ({ url: 'memory:', drop: async () => {} })),
    urlCase('sqlite', true, freshTempUrl('sqlite')),
    urlCase('file', true, freshTempUrl('file')),
  ];
  if (postgresAvailable) cases.push(urlCase('postgres', true, freshPostgresUrl));
  if (redisAvailable) cases.push(urlCase('redis', true, freshRedisUrl));
  return cases;
}
