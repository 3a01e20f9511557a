import { addToDailyUsage, type DailyUsage, emptyDailyUsage } from '../../core/daily-usage.js';
import type { UsageState } from '../../core/usage.js';
import type { StoredSession } from '../registry.js';
import type { SessionSummaryEntry } from '../summary.js';
import type { RecordCatalog } from './catalog.js';

/**
 * A project's index.jsonl: an append-only log of what the project's sessions are (summary, usage
 * fold, registry record) and what its owners spent per day. Each write is one line, or one
 * write of several lines; the newest line for a session wins part by part, so an append's line
 * (summary and usage) and an update's line (record) never undo each other. Compaction rewrites
 * the file as one line per live session plus one per owner and day.
 */

/** A session's summary plus how many main-transcript lines it and the usage fold cover. */
export interface SummaryRecord extends SessionSummaryEntry {
  folded: number;
}

/** A registry record as stored: everything but usage, which lives beside it for appends. */
export type StoredRecord = Omit<StoredSession, 'usage'>;

/** What the index knows about one session. Any part may be missing. */
export interface IndexedSession {
  id: string;
  /** Set once the main transcript has entries; only then does the store list the session. */
  summary?: SummaryRecord;
  usage?: UsageState;
  record?: StoredRecord;
}

/**
 * Sets the parts it carries. `charge` is what the append that wrote the line added to the
 * owner's day: in the same line as the usage it came from, so one is never stored without the
 * other. (Lines written before sessionhub had a registry are `{ summary }` alone.)
 */
export interface SessionLine {
  session?: string;
  summary?: SummaryRecord;
  usage?: UsageState;
  record?: StoredRecord;
  charge?: DailyUsage;
}

/** A session deleted: every part of it goes. Charges already made stay. */
export interface DeletedLine {
  deleted: string;
}

/** An owner's day as compaction leaves it; later charges add to it. */
export interface DailyLine {
  daily: DailyUsage;
}

export type IndexLine = SessionLine | DeletedLine | DailyLine;

/** Lines per chunk when a compacted index is written. */
const CHUNK_LINES = 1000;

export class ProjectIndex {
  readonly sessions = new Map<string, IndexedSession>();
  /** By `owner NUL day`. */
  readonly daily = new Map<string, DailyUsage>();
  /** Lines in the file, live or superseded. */
  lines = 0;
  /** Size of the file's complete lines. */
  bytes = 0;
  /** Where registered sessions are listed once the index is loaded; unset while it loads. */
  private catalog: RecordCatalog | undefined;

  /** Builds an index from a file's lines; nothing reaches the catalog until attach(). */
  static fromLines(lines: IndexLine[], bytes: number): ProjectIndex {
    const index = new ProjectIndex();
    for (const line of lines) index.apply(line);
    index.lines = lines.length;
    index.bytes = bytes;
    return index;
  }

  /** Lists this index's registered sessions in `catalog`, and keeps it up to date from now on. */
  attach(catalog: RecordCatalog): void {
    const registered: IndexedSession[] = [];
    for (const session of this.sessions.values()) if (session.record) registered.push(session);
    catalog.addAll(registered);
    this.catalog = catalog;
  }

  apply(line: IndexLine): void {
    if ('deleted' in line) {
      const session = this.sessions.get(line.deleted);
      if (session?.record) this.catalog?.remove(session);
      this.sessions.delete(line.deleted);
      return;
    }
    if ('daily' in line) {
      this.charge(line.daily);
      return;
    }
    const id = line.session ?? line.summary?.sessionId;
    if (typeof id !== 'string') return;
    let session = this.sessions.get(id);
    if (!session) {
      session = { id };
      this.sessions.set(id, session);
    }
    if (line.summary) session.summary = line.summary;
    if (line.usage) session.usage = line.usage;
    if (line.record) this.setRecord(session, line.record);
    if (line.charge) this.charge(line.charge);
  }

  private setRecord(session: IndexedSession, record: StoredRecord): void {
    const previous = session.record;
    // The listing order and owner never change on update; anything else re-lists the session.
    const moved =
      previous === undefined ||
      previous.tenant !== record.tenant ||
      previous.owner !== record.owner ||
      previous.createdAt !== record.createdAt;
    if (previous !== undefined && moved) this.catalog?.remove(session);
    session.record = record;
    if (moved) this.catalog?.add(session);
  }

  private charge(figures: DailyUsage): void {
    const key = `${figures.owner}\u0000${figures.day}`;
    let day = this.daily.get(key);
    if (!day) {
      day = emptyDailyUsage(figures.owner, figures.day);
      this.daily.set(key, day);
    }
    addToDailyUsage(day, figures);
  }

  /** Whether superseded lines are most of the file: dead weight for the next reader. */
  needsCompaction(): boolean {
    return this.lines > 64 && this.lines > 4 * this.liveLines();
  }

  liveLines(): number {
    return this.sessions.size + this.daily.size;
  }

  /** The file as compaction writes it, in chunks of text. Mentions no deleted session. */
  *compacted(): Generator<string> {
    let chunk: string[] = [];
    const flush = () => {
      const text = `${chunk.join('\n')}\n`;
      chunk = [];
      return text;
    };
    for (const { id, summary, usage, record } of this.sessions.values()) {
      const line: SessionLine = { session: id };
      if (summary) line.summary = summary;
      if (usage) line.usage = usage;
      if (record) line.record = record;
      chunk.push(JSON.stringify(line));
      if (chunk.length >= CHUNK_LINES) yield flush();
    }
    for (const daily of this.daily.values()) {
      chunk.push(JSON.stringify({ daily } satisfies DailyLine));
      if (chunk.length >= CHUNK_LINES) yield flush();
    }
    if (chunk.length > 0) yield flush();
  }
}
