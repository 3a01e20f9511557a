import type BetterSqlite3 from 'better-sqlite3';
import { type Clock, nextMtime, systemClock } from '../../core/clock.js';
import { utcDay } from '../../core/daily-usage.js';
import {
  assertEntries,
  entryUuid,
  parseEntries,
  serializeEntry,
  type TranscriptEntry,
} from '../../core/entries.js';
import { closedError } from '../../core/errors.js';
import {
  assertProjectKey,
  assertSessionKey,
  assertSessionRef,
  type SessionKey,
  type SessionRef,
} from '../../core/session-key.js';
import type { TranscriptStore } from '../backend.js';
import { foldSummary, type SessionSummaryEntry } from '../summary.js';
import { type StoredFold, touchesUsage, UsageStateCache } from '../usage-fold.js';
import { SqliteDailyUsage } from './daily-usage.js';

const MAIN = '';

interface SessionRow {
  id: number;
  mtime: number | null;
  summary: string | null;
}

/** The row as a main append that may fold usage reads it: with the fold's state and the owner. */
interface UsageSessionRow extends SessionRow {
  usage_state: string | null;
  tenant: string | null;
  owner: string | null;
}

export interface SqliteTranscriptStoreOptions {
  clock?: Clock;
  /** Fold usage from appended entries (default true); off only to measure what folding costs. */
  foldUsage?: boolean;
  /** The daily usage table appends charge; the backend shares one with its registry. */
  daily?: SqliteDailyUsage;
}

/**
 * Transcripts in a SQLite database (better-sqlite3). Each append is one IMMEDIATE transaction:
 * dedup by uuid, the entries, the folded summary, the mtime, the folded usage and the owner's
 * daily usage commit together or not at all, and appends from several processes on one file are
 * serialised by SQLite's write lock.
 */
export class SqliteTranscriptStore implements TranscriptStore {
  private readonly clock: Clock;
  private readonly foldUsage: boolean;
  private readonly daily: SqliteDailyUsage;
  /** By session row id: the usage state as this process last wrote it, already decoded. */
  private readonly usageStates = new UsageStateCache();
  private readonly statements;
  private readonly appendTransaction;
  private readonly deleteSessionTransaction;
  private closed = false;

  constructor(
    private readonly db: BetterSqlite3.Database,
    options: SqliteTranscriptStoreOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.foldUsage = options.foldUsage ?? true;
    this.daily = options.daily ?? new SqliteDailyUsage(db);
    this.statements = {
      insertSession: db.prepare<[string, string], SessionRow>(
        `INSERT INTO transcript_sessions (project_key, session_id) VALUES (?, ?)
         RETURNING id, mtime, summary`,
      ),
      findSession: db.prepare<[string, string], SessionRow>(
        'SELECT id, mtime, summary FROM transcript_sessions WHERE project_key = ? AND session_id = ?',
      ),
      // Only for batches that can move usage: the others never fetch or parse the fold's state.
      findSessionWithUsage: db.prepare<[string, string], UsageSessionRow>(
        `SELECT id, mtime, summary, usage_state, tenant, owner FROM transcript_sessions
         WHERE project_key = ? AND session_id = ?`,
      ),
      insertEntry: db.prepare<[number, string, string | null, string]>(
        'INSERT OR IGNORE INTO transcript_entries (session_ref, subpath, uuid, entry) VALUES (?, ?, ?, ?)',
      ),
      updateSummary: db.prepare<[number, string, number]>(
        'UPDATE transcript_sessions SET mtime = ?, summary = ? WHERE id = ?',
      ),
      updateSummaryAndUsage: db.prepare<[number, string, string, number]>(
        'UPDATE transcript_sessions SET mtime = ?, summary = ?, usage_state = ? WHERE id = ?',
      ),
      loadEntries: db
        .prepare<[string, string, string], string>(
          `SELECT e.entry FROM transcript_entries e
           JOIN transcript_sessions s ON s.id = e.session_ref
           WHERE s.project_key = ? AND s.session_id = ? AND e.subpath = ?
           ORDER BY e.seq`,
        )
        .pluck(),
      listSessions: db.prepare<[string], { sessionId: string; mtime: number }>(
        `SELECT session_id AS sessionId, mtime FROM transcript_sessions
         WHERE project_key = ? AND mtime IS NOT NULL`,
      ),
      listSummaries: db.prepare<[string], { sessionId: string; mtime: number; summary: string }>(
        `SELECT session_id AS sessionId, mtime, summary FROM transcript_sessions
         WHERE project_key = ? AND summary IS NOT NULL`,
      ),
      listSubkeys: db
        .prepare<[string, string], string>(
          `SELECT DISTINCT e.subpath FROM transcript_entries e
           JOIN transcript_sessions s ON s.id = e.session_ref
           WHERE s.project_key = ? AND s.session_id = ? AND e.subpath <> ''`,
        )
        .pluck(),
      deleteEntries: db.prepare<[number]>('DELETE FROM transcript_entries WHERE session_ref = ?'),
      deleteSession: db.prepare<[number]>('DELETE FROM transcript_sessions WHERE id = ?'),
      deleteSubpath: db.prepare<[string, string, string]>(
        `DELETE FROM transcript_entries WHERE subpath = ? AND session_ref =
           (SELECT id FROM transcript_sessions WHERE project_key = ? AND session_id = ?)`,
      ),
    };

    this.appendTransaction = db.transaction(
      (
        key: SessionKey,
        entries: TranscriptEntry[],
        lines: string[],
        withUsage: boolean,
      ): { id: string; fold: StoredFold } | undefined => {
        // Look up first: most appends go to an existing session, and a read dirties no page.
        const session: (SessionRow & Partial<UsageSessionRow>) | undefined =
          (withUsage
            ? this.statements.findSessionWithUsage.get(key.projectKey, key.sessionId)
            : this.statements.findSession.get(key.projectKey, key.sessionId)) ??
          this.statements.insertSession.get(key.projectKey, key.sessionId);
        if (!session) throw new Error('insert returned no session row');
        const subpath = key.subpath ?? MAIN;
        const inserted: TranscriptEntry[] = [];
        for (let i = 0; i < entries.length; i++) {
          const entry = entries[i] as TranscriptEntry;
          const result = this.statements.insertEntry.run(
            session.id,
            subpath,
            entryUuid(entry) ?? null,
            lines[i] as string,
          );
          if (result.changes > 0) inserted.push(entry);
        }
        if (key.subpath !== undefined || inserted.length === 0) return;
        const now = this.clock.now();
        const mtime = nextMtime(now, session.mtime ?? undefined);
        const previous: SessionSummaryEntry | undefined =
          session.summary === null
            ? undefined
            : {
                sessionId: key.sessionId,
                mtime: session.mtime ?? mtime,
                data: JSON.parse(session.summary),
              };
        const summary = foldSummary(previous, key, inserted, mtime);
        const id = String(session.id);
        const usage = withUsage
          ? this.usageStates.fold(id, session.usage_state ?? null, inserted)
          : null;
        if (!usage) {
          this.statements.updateSummary.run(mtime, JSON.stringify(summary.data), session.id);
          return;
        }
        this.statements.updateSummaryAndUsage.run(
          mtime,
          JSON.stringify(summary.data),
          usage.json,
          session.id,
        );
        // Registered sessions charge their owner's day, only when a turn was counted; the row's
        // tenant says the session is registered.
        if (usage.chargeable && session.tenant != null && session.owner != null) {
          this.daily.charge(session.tenant, session.owner, utcDay(now), usage.delta);
        }
        return { id, fold: usage };
      },
    );

    this.deleteSessionTransaction = db.transaction((ref: SessionRef) => {
      const session = this.statements.findSession.get(ref.projectKey, ref.sessionId);
      if (!session) return;
      this.statements.deleteEntries.run(session.id);
      this.statements.deleteSession.run(session.id);
    });
  }

  private checkOpen(): void {
    if (this.closed || !this.db.open) {
      throw closedError('SQLite transcript store');
    }
  }

  /** Marks the store unusable; the backend closes the database itself. */
  markClosed(): void {
    this.closed = true;
  }

  async append(key: SessionKey, entries: TranscriptEntry[]): Promise<void> {
    assertSessionKey(key);
    assertEntries(entries);
    this.checkOpen();
    if (entries.length === 0) return;
    const lines = entries.map((entry, i) => serializeEntry(entry, i));
    // A batch with nothing usage reads in it skips the fold, its state and its write entirely.
    const withUsage = this.foldUsage && key.subpath === undefined && touchesUsage(entries);
    const folded = this.appendTransaction.immediate(key, entries, lines, withUsage);
    // Written: the next append may start from the folded state instead of decoding it again.
    if (folded) this.usageStates.keep(folded.id, folded.fold);
  }

  async load(key: SessionKey): Promise<TranscriptEntry[] | null> {
    assertSessionKey(key);
    this.checkOpen();
    const lines = this.statements.loadEntries.all(
      key.projectKey,
      key.sessionId,
      key.subpath ?? MAIN,
    );
    if (lines.length === 0) return null;
    return parseEntries(lines);
  }

  async listSessions(projectKey: string): Promise<Array<{ sessionId: string; mtime: number }>> {
    assertProjectKey(projectKey);
    this.checkOpen();
    return this.statements.listSessions.all(projectKey);
  }

  async listSessionSummaries(projectKey: string): Promise<SessionSummaryEntry[]> {
    assertProjectKey(projectKey);
    this.checkOpen();
    return this.statements.listSummaries.all(projectKey).map((row) => ({
      sessionId: row.sessionId,
      mtime: row.mtime,
      data: JSON.parse(row.summary) as Record<string, unknown>,
    }));
  }

  async delete(key: SessionKey): Promise<void> {
    assertSessionKey(key);
    this.checkOpen();
    if (key.subpath === undefined) {
      this.deleteSessionTransaction.immediate(key);
    } else {
      this.statements.deleteSubpath.run(key.subpath, key.projectKey, key.sessionId);
    }
  }

  async listSubkeys(ref: SessionRef): Promise<string[]> {
    assertSessionRef(ref);
    this.checkOpen();
    return this.statements.listSubkeys.all(ref.projectKey, ref.sessionId);
  }
}
