import type BetterSqlite3 from 'better-sqlite3';
import { SessionHubError } from '../../core/errors.js';

export interface SqliteMigration {
  version: number;
  name: string;
  sql: string;
}

/**
 * The SQLite schema as an ordered list of migrations. Never edit one that has shipped: add a new
 * one. A later migration adds the session registry beside the transcripts and leases.
 */
export const SQLITE_MIGRATIONS: readonly SqliteMigration[] = [
  {
    version: 1,
    name: 'transcripts',
    sql: `
      -- One row per session that has any transcript. mtime and summary stay NULL until the main
      -- transcript has entries, which is what keeps subagent-only sessions out of listings.
      CREATE TABLE transcript_sessions (
        id          INTEGER PRIMARY KEY,
        project_key TEXT NOT NULL,
        session_id  TEXT NOT NULL,
        mtime       INTEGER,
        summary     TEXT,
        UNIQUE (project_key, session_id)
      );

      -- One row per transcript line. subpath is '' for the main transcript (an empty subpath is
      -- refused at the edge, so '' cannot clash with a real one). seq keeps append order.
      CREATE TABLE transcript_entries (
        seq         INTEGER PRIMARY KEY,
        session_ref INTEGER NOT NULL REFERENCES transcript_sessions (id) ON DELETE CASCADE,
        subpath     TEXT NOT NULL,
        uuid        TEXT,
        entry       TEXT NOT NULL
      );
      CREATE INDEX transcript_entries_by_key ON transcript_entries (session_ref, subpath, seq);
      -- The idempotency key: a uuid is stored once per transcript.
      CREATE UNIQUE INDEX transcript_entries_by_uuid
        ON transcript_entries (session_ref, subpath, uuid) WHERE uuid IS NOT NULL;
    `,
  },
  {
    version: 2,
    name: 'leases',
    sql: `
      -- One row per resource ever leased. The row outlives its lease so that fence only grows:
      -- release clears token, and a lease whose expires_at has passed is free to take. Times are
      -- epoch ms from the injected clock, never SQLite's.
      CREATE TABLE leases (
        resource   TEXT PRIMARY KEY,
        holder     TEXT NOT NULL,
        token      TEXT,
        fence      INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      );
    `,
  },
];

/**
 * Brings the database up to the newest schema. Runs in one IMMEDIATE transaction, so two
 * processes opening the same file at once apply each migration exactly once (the second waits
 * on busy_timeout, then finds nothing to do).
 */
export function migrateSqlite(db: BetterSqlite3.Database): { applied: number[] } {
  const applied: number[] = [];
  const run = db.transaction(() => {
    db.exec(`CREATE TABLE IF NOT EXISTS sessionhub_migrations (
      version    INTEGER PRIMARY KEY,
      name       TEXT NOT NULL,
      applied_at TEXT NOT NULL
    )`);
    const done = new Set(
      db
        .prepare('SELECT version FROM sessionhub_migrations')
        .pluck()
        .all()
        .map((v) => Number(v)),
    );
    const newest = Math.max(0, ...done);
    const known = SQLITE_MIGRATIONS.at(-1)?.version ?? 0;
    if (newest > known) {
      throw new SessionHubError(
        'SCHEMA_TOO_NEW',
        `This SQLite database has schema version ${newest}, but this sessionhub knows versions up to ${known}. Upgrade sessionhub, or open a different database.`,
        { found: newest, known },
      );
    }
    const record = db.prepare(
      'INSERT INTO sessionhub_migrations (version, name, applied_at) VALUES (?, ?, ?)',
    );
    for (const migration of SQLITE_MIGRATIONS) {
      if (done.has(migration.version)) continue;
      db.exec(migration.sql);
      record.run(migration.version, migration.name, new Date().toISOString());
      applied.push(migration.version);
    }
  });
  run.immediate();
  return { applied };
}
