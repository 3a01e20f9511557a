import type BetterSqlite3 from 'better-sqlite3';
import { SessionHubError } from '../../core/errors.js';

export interface SqliteMigration {
  version: number;
  name: string;
  sql: string;
}

/**
 * The SQLite schema as an ordered list of migrations. Never edit one that has shipped: add a new
 * one.
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
  {
    version: 3,
    name: 'session registry',
    sql: `
      -- The registry's record is the transcript's own session row, so deleting either deletes
      -- both and usage is folded in the append's transaction. tenant IS NULL: no record (plain
      -- SDK use, or a transcript not registered yet). The row of a record lives under
      -- project_key = 'sessionhub-tenant:' || tenant. JSON columns hold text; tags is a JSON
      -- array so the tag filter matches whole tags. Times are epoch ms from the caller.
      ALTER TABLE transcript_sessions ADD COLUMN tenant TEXT;
      ALTER TABLE transcript_sessions ADD COLUMN owner TEXT;
      ALTER TABLE transcript_sessions ADD COLUMN title TEXT;
      ALTER TABLE transcript_sessions ADD COLUMN tags TEXT;
      ALTER TABLE transcript_sessions ADD COLUMN metadata TEXT;
      ALTER TABLE transcript_sessions ADD COLUMN status TEXT;
      ALTER TABLE transcript_sessions ADD COLUMN created_at INTEGER;
      ALTER TABLE transcript_sessions ADD COLUMN last_active_at INTEGER;
      ALTER TABLE transcript_sessions ADD COLUMN expires_at INTEGER;
      ALTER TABLE transcript_sessions ADD COLUMN expired_at INTEGER;
      ALTER TABLE transcript_sessions ADD COLUMN purge_at INTEGER;
      ALTER TABLE transcript_sessions ADD COLUMN extended_until INTEGER;
      ALTER TABLE transcript_sessions ADD COLUMN fork_parent_id TEXT;
      ALTER TABLE transcript_sessions ADD COLUMN fork_message_uuid TEXT;
      ALTER TABLE transcript_sessions ADD COLUMN expiry_overrides TEXT;
      ALTER TABLE transcript_sessions ADD COLUMN limit_overrides TEXT;
      -- Grows on record updates only; appends never touch it, so they never break a CAS.
      ALTER TABLE transcript_sessions ADD COLUMN record_version INTEGER;
      -- The usage fold's state, written by main-transcript appends (also before registration).
      ALTER TABLE transcript_sessions ADD COLUMN usage_state TEXT;

      -- Listings, newest first, with a keyset cursor on (created_at, session_id).
      CREATE INDEX transcript_sessions_by_tenant
        ON transcript_sessions (tenant, created_at DESC, session_id DESC)
        WHERE tenant IS NOT NULL;
      CREATE INDEX transcript_sessions_by_owner
        ON transcript_sessions (tenant, owner, created_at DESC, session_id DESC)
        WHERE tenant IS NOT NULL;
      -- The sweeper's work lists: only the rows it may act on are indexed.
      CREATE INDEX transcript_sessions_due_to_expire
        ON transcript_sessions (expires_at) WHERE status = 'active';
      CREATE INDEX transcript_sessions_due_to_purge
        ON transcript_sessions (purge_at) WHERE purge_at IS NOT NULL;
      -- Ordered too, so the planner prefers it to walking the tenant's listing index.
      CREATE INDEX transcript_sessions_forks
        ON transcript_sessions (tenant, fork_parent_id, created_at DESC, session_id DESC)
        WHERE fork_parent_id IS NOT NULL;

      -- What each owner spent per UTC day. Apart from the sessions: purging one refunds nothing.
      CREATE TABLE usage_daily (
        tenant                      TEXT NOT NULL,
        owner                       TEXT NOT NULL,
        day                         TEXT NOT NULL,
        -- Whole nano-dollars: sums stay exact, and equal the fold's rounding to 1e-9 USD.
        cost_nanos                  INTEGER NOT NULL,
        input_tokens                INTEGER NOT NULL,
        output_tokens               INTEGER NOT NULL,
        cache_read_input_tokens     INTEGER NOT NULL,
        cache_creation_input_tokens INTEGER NOT NULL,
        turns                       INTEGER NOT NULL,
        PRIMARY KEY (tenant, owner, day)
      ) WITHOUT ROWID;
      CREATE INDEX usage_daily_by_day ON usage_daily (tenant, day);
    `,
  },
  {
    version: 4,
    name: 'failed sessions expire',
    sql: `
      -- A failed session (its last turn failed) is live: it expires like an active one. The
      -- sweeper's query names the same statuses, so SQLite still reads only this index.
      DROP INDEX transcript_sessions_due_to_expire;
      CREATE INDEX transcript_sessions_due_to_expire
        ON transcript_sessions (expires_at) WHERE status IN ('active', 'failed');
    `,
  },
  {
    version: 5,
    name: 'api keys',
    sql: `
      -- The HTTP service's API keys (see core/api-keys.ts). Only the SHA-256 of the secret is
      -- stored. Rows are never deleted: a revoked key keeps its row, so its id is never reused
      -- and listings still show it. Times are epoch ms from the caller.
      CREATE TABLE api_keys (
        id                    TEXT PRIMARY KEY,
        name                  TEXT NOT NULL,
        tenant                TEXT NOT NULL,
        owner                 TEXT,
        role                  TEXT NOT NULL CHECK (role IN ('user', 'admin')),
        secret_hash           TEXT NOT NULL,
        rate_limit_per_minute INTEGER,
        created_at            INTEGER NOT NULL,
        revoked_at            INTEGER
      );
      -- A tenant's keys, oldest first (id breaks ties, as in the listing's ORDER BY).
      CREATE INDEX api_keys_by_tenant ON api_keys (tenant, created_at, id);
    `,
  },
  {
    version: 6,
    name: 'running daily charges',
    sql: `
      -- A registered session's spend on the day of its last counted turn, not yet in
      -- usage_daily (see daily-usage.ts): a counted turn adds to it in the row its append
      -- rewrites anyway. It moves into usage_daily when a turn is counted on another day, or the
      -- session is deleted or purged. NULL charge_day: nothing running.
      ALTER TABLE transcript_sessions ADD COLUMN charge_day TEXT;
      ALTER TABLE transcript_sessions ADD COLUMN charge_cost_nanos INTEGER;
      ALTER TABLE transcript_sessions ADD COLUMN charge_input_tokens INTEGER;
      ALTER TABLE transcript_sessions ADD COLUMN charge_output_tokens INTEGER;
      ALTER TABLE transcript_sessions ADD COLUMN charge_cache_read_input_tokens INTEGER;
      ALTER TABLE transcript_sessions ADD COLUMN charge_cache_creation_input_tokens INTEGER;
      ALTER TABLE transcript_sessions ADD COLUMN charge_turns INTEGER;
      -- Daily reads add the running charges: an owner's (the limit check, every admitted turn)
      -- and a tenant's (stats). Appends on the running charge's day never set charge_day, so
      -- these change only when a session's charge day does.
      CREATE INDEX transcript_sessions_charges_by_owner
        ON transcript_sessions (tenant, owner, charge_day) WHERE charge_day IS NOT NULL;
      CREATE INDEX transcript_sessions_charges_by_day
        ON transcript_sessions (tenant, charge_day) WHERE charge_day IS NOT NULL;
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
