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
import {
  ADD_TO_RUNNING_CHARGE,
  chargeFigures,
  SqliteDailyUsage,
  START_RUNNING_CHARGE,
} from './daily-usage.js';

const MAIN = '';

interface SessionRow {
  id: number;
  mtime: number | null;
  summary: string | null;
}

/**
 * The row as a main append that may fold usage reads it: with the fold's state, whether the
 * session is registered (only those charge their owner) and its running charge's day.
 */
interface UsageSessionRow extends SessionRow {
  usage_state: string | null;
  registered: 0 | 1;
  charge_day: string | null;
}

/** The same, as the raw statement returns it, in column order. */
type UsageSessionValues = [
  number,
  number | null,
  string | null,
  string | null,
  0 | 1,
  string | null,
];

export interface SqliteTranscriptStoreOptions {
  clock?: Clock;
  /** Fold usage from appended entries (default true); off only to measure what folding costs. */
  foldUsage?: boolean;
  /** Daily usage, where a session's running charge moves; the backend shares one with its registry. */
  daily?: SqliteDailyUsage;
}

/**
 * Transcripts in a SQLite database (better-sqlite3). Each append is one IMMEDIATE transaction:
 * dedup by uuid, the entries, the folded summary, the mtime, the folded usage and the owner's
 * daily usage (the session's running charge, see daily-usage.ts) commit together or not at all,
 * and appends from several processes on one file are serialised by SQLite's write lock.
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
      // Rows as arrays: better-sqlite3 builds an object a property at a time, which costs more
      // than the literal findUsageSession() makes of the array.
      findSessionWithUsage: db
        .prepare<[string, string], UsageSessionValues>(
          `SELECT id, mtime, summary, usage_state, tenant IS NOT NULL AS registered, charge_day
           FROM transcript_sessions WHERE project_key = ? AND session_id = ?`,
        )
        .raw(),
      insertEntry: db.prepare<[number, string, string | null, string]>(
        'INSERT OR IGNORE INTO transcript_entries (session_ref, subpath, uuid, entry) VALUES (?, ?, ?, ?)',
      ),
      updateSummary: db.prepare<[number, string, number]>(
        'UPDATE transcript_sessions SET mtime = ?, summary = ? WHERE id = ?',
      ),
      updateSummaryAndUsage: db.prepare<[number, string, string, number]>(
        'UPDATE transcript_sessions SET mtime = ?, summary = ?, usage_state = ? WHERE id = ?',
      ),
      // A counted turn of a registered session: the same row write, adding to its running
      // charge (on that charge's day) or starting a new one (on another day). Only the second
      // sets charge_day, so only it touches the running-charge indexes.
      updateAndCharge: db.prepare<
        [number, string, string, number, number, number, number, number, number, number]
      >(
        `UPDATE transcript_sessions SET mtime = ?, summary = ?, usage_state = ?,
           ${ADD_TO_RUNNING_CHARGE}
         WHERE id = ?`,
      ),
      updateAndStartCharge: db.prepare<
        [number, string, string, string, number, number, number, number, number, number, number]
      >(
        `UPDATE transcript_sessions SET mtime = ?, summary = ?, usage_state = ?,
           ${START_RUNNING_CHARGE}
         WHERE id = ?`,
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
            ? this.findUsageSession(key)
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
        const summaryJson = JSON.stringify(summary.data);
        // Registered sessions charge their owner's day, only when a turn was counted.
        if (!usage.chargeable || !session.registered) {
          this.statements.updateSummaryAndUsage.run(mtime, summaryJson, usage.json, session.id);
          return { id, fold: usage };
        }
        const day = utcDay(now);
        const [cost, input, output, cacheRead, cacheCreation, turns] = chargeFigures(usage.delta);
        if (session.charge_day === day) {
          this.statements.updateAndCharge.run(
            mtime,
            summaryJson,
            usage.json,
            cost,
            input,
            output,
            cacheRead,
            cacheCreation,
            turns,
            session.id,
          );
        } else {
          // Another day: what ran for the previous one is that day's for good.
          if (session.charge_day != null) this.daily.flushRunning(session.id);
          this.statements.updateAndStartCharge.run(
            mtime,
            summaryJson,
            usage.json,
            day,
            cost,
            input,
            output,
            cacheRead,
            cacheCreation,
            turns,
            session.id,
          );
        }
        return { id, fold: usage };
      },
    );

    this.deleteSessionTransaction = db.transaction((ref: SessionRef) => {
      const session = this.statements.findSession.get(ref.projectKey, ref.sessionId);
      if (!session) return;
      // Deleting refunds nothing: the running charge joins the owner's days first.
      this.daily.flushRunning(session.id);
      this.statements.deleteEntries.run(session.id);
      this.statements.deleteSession.run(session.id);
    });
  }

  /** The session's row for a main append that may fold usage, if it exists. */
  private findUsageSession(key: SessionKey): UsageSessionRow | undefined {
    const row = this.statements.findSessionWithUsage.get(key.projectKey, key.sessionId);
    if (row === undefined) return undefined;
    return {
      id: row[0],
      mtime: row[1],
      summary: row[2],
      usage_state: row[3],
      registered: row[4],
      charge_day: row[5],
    };
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
