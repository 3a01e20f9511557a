// Only types come from 'pg' here: this module is re-exported from the package root, and users of
// other backends must never load the driver. openPostgresBackend imports it on first use.
import type { Pool } from 'pg';
import { type BackendLocation, redactUrl } from '../../core/backend-url.js';
import type { Clock } from '../../core/clock.js';
import { isSessionHubError, SessionHubError } from '../../core/errors.js';
import type { Backend } from '../backend.js';
import { PostgresApiKeyStore } from './api-keys.js';
import { PostgresLeaseManager } from './lease-manager.js';
import { migratePostgres } from './migrations.js';
import { PostgresRegistry } from './registry.js';
import { assertSchemaName } from './sql.js';
import { PostgresTranscriptStore } from './transcript-store.js';

export { migratePostgres, POSTGRES_MIGRATIONS, type PostgresMigration } from './migrations.js';
export { PostgresApiKeyStore, PostgresLeaseManager, PostgresRegistry, PostgresTranscriptStore };

export interface PostgresBackendOptions {
  /** A node-postgres pool. sessionhub borrows it and leaves it open unless `ownsPool` is set. */
  pool: Pool;
  /** The schema holding sessionhub's tables, created if missing. Default 'public'. */
  schema?: string;
  /** End the pool when the backend closes (and when opening fails). Default false. */
  ownsPool?: boolean;
  /**
   * Where lease expiry and the day of usage charges read the time (never the server's clock).
   * Default: the system clock.
   */
  clock?: Clock;
  /** Fold usage in main-transcript appends (default true); off only to measure its cost. */
  foldUsage?: boolean;
}

/** How long an owned pool waits for a connection before giving up, instead of forever. */
const CONNECT_TIMEOUT_MS = 10_000;

/** The driver's reason, including each attempt when several addresses were tried. */
function reasonOf(error: unknown): string {
  if (error instanceof AggregateError && !error.message) {
    return error.errors.map(reasonOf).join('; ');
  }
  return error instanceof Error ? error.message || error.name : String(error);
}

/** Why opening failed, as a SessionHubError that says what to check. */
function openFailure(error: unknown, where: string, schema: string): SessionHubError {
  if (isSessionHubError(error)) return error;
  const reason = reasonOf(error);
  return new SessionHubError(
    'BACKEND_UNAVAILABLE',
    `Cannot open the PostgreSQL backend at ${where} (schema "${schema}"): ${reason}. Check that the server is running and accepts connections on that host and port, that the user, password and database are right, and that the user may create tables in the schema.`,
    { where, schema },
    { cause: error },
  );
}

async function open(options: PostgresBackendOptions, where: string): Promise<Backend> {
  const { pool, schema = 'public', ownsPool = false, clock, foldUsage } = options ?? {};
  if (typeof pool?.connect !== 'function' || typeof pool.query !== 'function') {
    throw new SessionHubError(
      'INVALID_OPTION',
      'createPostgresBackend() needs { pool }: a pg.Pool, e.g. new pg.Pool({ connectionString }).',
      { option: 'pool' },
    );
  }
  try {
    assertSchemaName(schema);
    await migratePostgres(pool, schema);
  } catch (error) {
    if (ownsPool) await pool.end().catch(() => {});
    throw openFailure(error, where, String(schema));
  }
  const store = new PostgresTranscriptStore({ pool, schema, clock, foldUsage });
  const registry = new PostgresRegistry({ pool, schema, cache: store.rowCache });
  const leases = new PostgresLeaseManager({ pool, schema, clock });
  const apiKeys = new PostgresApiKeyStore({ pool, schema });
  let closing: Promise<void> | undefined;
  return {
    kind: 'postgres',
    store,
    registry,
    leases,
    apiKeys,
    close() {
      closing ??= (async () => {
        leases.close();
        apiKeys.close();
        registry.close();
        await store.close();
        if (ownsPool) await pool.end();
      })();
      return closing;
    },
  };
}

/**
 * A PostgreSQL backend over a pool the caller already has. Runs the migrations (creating the
 * schema if needed) before it resolves. close() ends the pool only when `ownsPool` is true.
 */
export function createPostgresBackend(options: PostgresBackendOptions): Promise<Backend> {
  return open(options, 'the pool passed to createPostgresBackend()');
}

/** Opens the backend a `postgres://` URL names: its own pool of `location.poolSize` connections. */
export async function openPostgresBackend(
  location: Extract<BackendLocation, { kind: 'postgres' }>,
  options: { clock?: Clock; foldUsage?: boolean } = {},
): Promise<Backend> {
  const { Pool } = await import('pg');
  const pool = new Pool({
    connectionString: location.connectionString,
    max: location.poolSize,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
  });
  // A server that drops an idle connection makes the pool emit 'error'; unheard, that would
  // crash the process. The pool has already discarded the connection, and the next query opens
  // a new one or fails with its own error.
  pool.on('error', () => {});
  return open(
    {
      pool,
      schema: location.schema,
      ownsPool: true,
      clock: options.clock,
      foldUsage: options.foldUsage,
    },
    redactUrl(location.connectionString),
  );
}
