import { createHash } from 'node:crypto';
import type { Pool, PoolClient, QueryConfig, QueryResult, QueryResultRow } from 'pg';
import { SessionHubError } from '../../core/errors.js';

/** What a pool and a checked-out client have in common: enough to run one statement. */
export interface Queryable {
  query<R extends QueryResultRow = QueryResultRow>(config: QueryConfig): Promise<QueryResult<R>>;
}

/**
 * Schema names are restricted to plain identifiers, like the `?schema=` of a backend URL, so that
 * quoting them is trivially safe inside any SQL text, dollar-quoted bodies included.
 */
const PLAIN_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export function assertSchemaName(schema: unknown): asserts schema is string {
  if (typeof schema !== 'string' || !PLAIN_IDENTIFIER.test(schema)) {
    throw new SessionHubError(
      'INVALID_OPTION',
      `PostgreSQL schema ${JSON.stringify(schema)} must be a plain SQL identifier: a letter or _ then up to 62 letters, digits or _.`,
      { option: 'schema', value: schema },
    );
  }
}

/** Quotes so that the name keeps its case, as written in the URL or option. */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export interface Statement {
  /** Prepared-statement name: derived from the text, so two schemas on one pool never clash. */
  readonly name: string;
  readonly text: string;
}

/** A statement node-postgres prepares once per connection and then only binds. */
export function prepared(text: string): Statement {
  const digest = createHash('sha256').update(text).digest('hex').slice(0, 24);
  return { name: `sessionhub_${digest}`, text };
}

/** True for PostgreSQL's unique_violation (SQLSTATE 23505). */
export function isUniqueViolation(error: unknown): boolean {
  return (
    typeof error === 'object' && error !== null && (error as { code?: unknown }).code === '23505'
  );
}

/**
 * Runs `work` in one transaction on a client of its own: COMMIT when it resolves, ROLLBACK when
 * it throws. A client whose ROLLBACK fails is in an unknown state and is destroyed, not reused.
 */
export async function withTransaction<T>(
  pool: Pool,
  work: (client: PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let unusable = false;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {
      unusable = true;
    });
    throw error;
  } finally {
    client.release(unusable);
  }
}
