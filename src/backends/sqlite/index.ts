import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import type { BackendLocation } from '../../core/backend-url.js';
import type { Clock } from '../../core/clock.js';
import { SessionHubError } from '../../core/errors.js';
import type { Backend } from '../backend.js';
import { SqliteApiKeyStore } from './api-keys.js';
import { SqliteDailyUsage } from './daily-usage.js';
import { SqliteLeaseManager } from './lease-manager.js';
import { migrateSqlite } from './migrations.js';
import { SqliteRegistry } from './registry.js';
import { SqliteTranscriptStore } from './transcript-store.js';

export { migrateSqlite, SQLITE_MIGRATIONS } from './migrations.js';
export { SqliteApiKeyStore, SqliteLeaseManager, SqliteRegistry, SqliteTranscriptStore };

export interface SqliteBackendOptions {
  /** An open better-sqlite3 database. */
  database: BetterSqlite3.Database;
  /** Close the database when the backend closes. Default false: the caller owns it. */
  ownsDatabase?: boolean;
  /**
   * PRAGMA synchronous. 'normal' (default) in WAL mode never corrupts the database and loses
   * no committed transaction when the process crashes; after a power loss or OS crash the last
   * transactions before it may be rolled back. 'full' syncs every commit to disk.
   */
  synchronous?: 'normal' | 'full';
  /**
   * Where transcript mtimes, lease expiry and the day appends charge usage to get the time.
   * Default: the system clock.
   */
  clock?: Clock;
  /** Fold usage from appended entries (default true); off only to measure what folding costs. */
  foldUsage?: boolean;
}

/** Sets the connection up for a shared, concurrent, durable store, then migrates it. */
export function createSqliteBackend(options: SqliteBackendOptions): Backend {
  const db = options.database;
  // WAL lets readers run beside the single writer, and other processes on the same file too.
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
  // A second process holding the write lock makes us wait, not fail.
  db.pragma('busy_timeout = 10000');
  db.pragma('foreign_keys = ON');
  migrateSqlite(db);
  const daily = new SqliteDailyUsage(db);
  const store = new SqliteTranscriptStore(db, {
    clock: options.clock,
    foldUsage: options.foldUsage,
    daily,
  });
  const registry = new SqliteRegistry(db, daily);
  const leases = new SqliteLeaseManager(db, { clock: options.clock });
  const apiKeys = new SqliteApiKeyStore(db);
  let closed = false;
  return {
    kind: 'sqlite',
    store,
    registry,
    leases,
    apiKeys,
    async close() {
      if (closed) return;
      closed = true;
      store.markClosed();
      registry.markClosed();
      leases.markClosed();
      apiKeys.markClosed();
      if (options.ownsDatabase && db.open) db.close();
    },
  };
}

/** Opens (creating if needed) the SQLite file a `sqlite:PATH` URL names. */
export async function openSqliteBackend(
  location: Extract<BackendLocation, { kind: 'sqlite' }>,
  options: { clock?: Clock; foldUsage?: boolean } = {},
): Promise<Backend> {
  const { default: Database } = await import('better-sqlite3');
  const inMemory = location.path === ':memory:';
  let db: BetterSqlite3.Database;
  try {
    if (!inMemory) mkdirSync(path.dirname(path.resolve(location.path)), { recursive: true });
    db = new Database(location.path);
  } catch (error) {
    throw new SessionHubError(
      'BACKEND_UNAVAILABLE',
      `Cannot open the SQLite database at ${location.path}: ${(error as Error).message}. Check that the directory exists or can be created and is writable.`,
      { path: location.path },
      { cause: error },
    );
  }
  try {
    return createSqliteBackend({
      database: db,
      ownsDatabase: true,
      synchronous: location.synchronous,
      clock: options.clock,
      foldUsage: options.foldUsage,
    });
  } catch (error) {
    db.close();
    throw error;
  }
}
