import { DEFAULT_BACKEND_URL, parseBackendUrl } from '../core/backend-url.js';
import type { Clock } from '../core/clock.js';
import type { Backend } from './backend.js';

export interface OpenBackendOptions {
  /**
   * Clock for lease expiry, and for the stores that stamp times themselves (memory, file,
   * SQLite).
   */
  clock?: Clock;
  /**
   * Fold usage from appended entries into the session's figures (default true). Off only to
   * measure what folding costs: records then show no usage.
   */
  foldUsage?: boolean;
}

/**
 * Opens the backend a URL names, running its migrations. Drivers are imported here, on first
 * use, so an application that only uses SQLite never loads `pg` or `ioredis`.
 *
 *   sqlite:PATH · postgres://… · postgresql://… · redis://… · file:DIR · memory:
 */
export async function openBackend(
  url: string = DEFAULT_BACKEND_URL,
  options: OpenBackendOptions = {},
): Promise<Backend> {
  const location = parseBackendUrl(url);
  switch (location.kind) {
    case 'memory': {
      const { createMemoryBackend } = await import('./memory/index.js');
      return createMemoryBackend(options);
    }
    case 'sqlite': {
      const { openSqliteBackend } = await import('./sqlite/index.js');
      return openSqliteBackend(location, options);
    }
    case 'file': {
      const { openFileBackend } = await import('./file/index.js');
      return openFileBackend(location, options);
    }
    case 'postgres': {
      const { openPostgresBackend } = await import('./postgres/index.js');
      return openPostgresBackend(location, options);
    }
    case 'redis': {
      const { openRedisBackend } = await import('./redis/index.js');
      return openRedisBackend(location, options);
    }
  }
}
