/** Opens each backend fresh for a benchmark run and cleans up after it. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { InMemorySessionStore, type SessionStore } from '@anthropic-ai/claude-agent-sdk';
import { type Backend, type Clock, openBackend } from '../src/index.js';
import { deleteRedisPrefix, reachable } from '../test/helpers/services.js';
import { naivePostgresStore, naiveRedisStore } from './naive.js';

export const POSTGRES_URL =
  process.env.SESSIONHUB_BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.SESSIONHUB_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0';

export interface BenchTarget {
  name: string;
  store: SessionStore;
  close(): Promise<void>;
}

export type TargetName =
  | 'sdk-in-memory'
  | 'memory'
  | 'sqlite'
  | 'file'
  | 'postgres'
  | 'redis'
  | 'naive-postgres'
  | 'naive-redis';

/** Opens one target, or returns a reason it cannot run here. */
export async function openTarget(name: TargetName): Promise<BenchTarget | string> {
  const tag = `bench_${process.pid}_${Date.now().toString(36)}`;
  switch (name) {
    case 'sdk-in-memory':
      return { name, store: new InMemorySessionStore(), close: async () => {} };
    case 'memory':
    case 'sqlite':
    case 'file':
    case 'postgres':
    case 'redis': {
      const opened = await openBenchBackend(name);
      if (typeof opened === 'string') return opened;
      return { name, store: opened.backend.store, close: opened.close };
    }
    case 'naive-postgres': {
      if (!(await reachable(POSTGRES_URL, 5432)))
        return `PostgreSQL not reachable at ${POSTGRES_URL}`;
      const { default: pg } = await import('pg');
      const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 16 });
      const store = await naivePostgresStore(pool, tag);
      return {
        name,
        store,
        async close() {
          await pool.query(`DROP SCHEMA IF EXISTS ${tag} CASCADE`);
          await pool.end();
        },
      };
    }
    case 'naive-redis': {
      if (!(await reachable(REDIS_URL, 6379))) return `Redis not reachable at ${REDIS_URL}`;
      const { Redis } = await import('ioredis');
      const client = new Redis(REDIS_URL);
      return {
        name,
        store: naiveRedisStore(client, tag),
        async close() {
          await deleteRedisPrefix(client, tag);
          client.disconnect();
        },
      };
    }
  }
}

export type BackendName = 'memory' | 'sqlite' | 'file' | 'postgres' | 'redis';

/**
 * Opens a fresh, empty backend of one kind (a new SQLite file or folder, a new PostgreSQL schema,
 * a new Redis prefix) whose close() also drops its data; or a reason it cannot run here.
 */
export async function openBenchBackend(
  name: BackendName,
  options: { foldUsage?: boolean; clock?: Clock } = {},
): Promise<{ backend: Backend; close(): Promise<void> } | string> {
  const tag = `bench_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`;
  switch (name) {
    case 'memory': {
      const backend = await openBackend('memory:', options);
      return { backend, close: () => backend.close() };
    }
    case 'sqlite':
    case 'file': {
      const dir = await mkdtemp(path.join(tmpdir(), `sessionhub-bench-${name}-`));
      const url = name === 'sqlite' ? `sqlite:${path.join(dir, 'hub.db')}` : `file:${dir}`;
      const backend = await openBackend(url, options);
      return {
        backend,
        async close() {
          await backend.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
    case 'postgres': {
      if (!(await reachable(POSTGRES_URL, 5432))) {
        return `PostgreSQL not reachable at ${POSTGRES_URL}`;
      }
      const url = new URL(POSTGRES_URL);
      url.searchParams.set('schema', tag);
      url.searchParams.set('max', process.env.BENCH_PG_POOL ?? '16');
      const backend = await openBackend(url.toString(), options);
      return {
        backend,
        async close() {
          await backend.close();
          const { default: pg } = await import('pg');
          const client = new pg.Client({ connectionString: POSTGRES_URL });
          await client.connect();
          await client.query(`DROP SCHEMA IF EXISTS ${tag} CASCADE`);
          await client.end();
        },
      };
    }
    case 'redis': {
      if (!(await reachable(REDIS_URL, 6379))) return `Redis not reachable at ${REDIS_URL}`;
      const url = new URL(REDIS_URL);
      url.searchParams.set('prefix', tag);
      const backend = await openBackend(url.toString(), options);
      return {
        backend,
        async close() {
          await backend.close();
          const { Redis } = await import('ioredis');
          const client = new Redis(REDIS_URL);
          await deleteRedisPrefix(client, tag);
          client.disconnect();
        },
      };
    }
  }
}
