/**
 * Where the test suite finds PostgreSQL and Redis, and what happens when they are missing:
 * on a developer machine their tests skip with a message saying how to run them; with CI=true a
 * missing service fails the run, because CI must never skip them.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { Redis } from 'ioredis';

export const POSTGRES_URL =
  process.env.SESSIONHUB_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.SESSIONHUB_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';

const HOW_TO = {
  postgres:
    'Start PostgreSQL (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) or set SESSIONHUB_TEST_POSTGRES_URL.',
  redis:
    'Start Redis (redis-server --daemonize yes --port 6379 --save "" --appendonly no) or set SESSIONHUB_TEST_REDIS_URL.',
};

/** Whether something accepts TCP connections at the URL's host and port. */
export function reachable(url: string, defaultPort: number): Promise<boolean> {
  const parsed = new URL(url);
  const port = Number(parsed.port || defaultPort);
  const host = parsed.hostname || '127.0.0.1';
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Resolves to true when the service answers. When it does not: throws under CI=true, and
 * otherwise prints how to run those tests and resolves to false (the caller skips them).
 */
export async function requireService(service: 'postgres' | 'redis'): Promise<boolean> {
  const url = service === 'postgres' ? POSTGRES_URL : REDIS_URL;
  const ok = await reachable(url, service === 'postgres' ? 5432 : 6379);
  if (ok) return true;
  const message = `${service} is not reachable at ${url}. ${HOW_TO[service]}`;
  if (process.env.CI === 'true' || process.env.CI === '1') {
    throw new Error(`CI=true and ${message}`);
  }
  console.warn(`Skipping ${service} tests: ${message}`);
  return false;
}

/** A short random name for an isolated schema, key prefix or folder. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

/** Removes every key under a prefix with SCAN + UNLINK (tests and benchmarks only: never KEYS). */
export async function deleteRedisPrefix(client: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await client.unlink(...keys);
  } while (cursor !== '0');
}
