import { type Clock, nextMtime, systemClock } from '../../core/clock.js';
import {
  addToDailyUsage,
  type DailyUsage,
  emptyDailyUsage,
  utcDay,
} from '../../core/daily-usage.js';
import type { TranscriptEntry } from '../../core/entries.js';
import {
  assertEntries,
  parseEntries,
  selectNewEntries,
  serializeEntry,
} from '../../core/entries.js';
import {
  assertProjectKey,
  assertSessionKey,
  assertSessionRef,
  type SessionKey,
  type SessionRef,
} from '../../core/session-key.js';
import type { UsageDelta, UsageState } from '../../core/usage.js';
import type { TranscriptStore } from '../backend.js';
import type { StoredSession } from '../registry.js';
import { foldSummary, type SessionSummaryEntry } from '../summary.js';
import { foldAppended } from '../usage-fold.js';

interface Transcript {
  /** Entries as JSON text, so callers can never mutate what is stored. */
  lines: string[];
  uuids: Set<string>;
}

/** A session's transcripts, its usage fold and, once registered, its record. */
export interface MemorySession {
  /** Set once the main transcript has entries; subagent-only sessions are not listed. */
  mtime?: number;
  summary?: SessionSummaryEntry;
  main?: Transcript;
  subpaths: Map<string, Transcript>;
  usage?: UsageState;
  /** The registry's record, without usage (kept above, where appends fold it). */
  record?: Omit<StoredSession, 'usage'>;
}

/** Everything the memory backend holds, shared by its store and its registry. */
export class MemoryData {
  readonly projects = new Map<string, Map<string, MemorySession>>();
  /** Daily usage by tenant, then by `owner NUL day`. */
  readonly daily = new Map<string, Map<string, DailyUsage>>();

  session(ref: SessionRef, create: true): MemorySession;
  session(ref: SessionRef, create: false): MemorySession | undefined;
  session(ref: SessionRef, create: boolean): MemorySession | undefined {
    let sessions = this.projects.get(ref.projectKey);
    if (!sessions) {
      if (!create) return undefined;
      sessions = new Map();
      this.projects.set(ref.projectKey, sessions);
    }
    let session = sessions.get(ref.sessionId);
    if (!session && create) {
      session = { subpaths: new Map() };
      sessions.set(ref.sessionId, session);
    }
    return session;
  }

  /** Drops a session: record, transcript and subagent transcripts. */
  deleteSession(ref: SessionRef): boolean {
    const sessions = this.projects.get(ref.projectKey);
    if (!sessions?.delete(ref.sessionId)) return false;
    if (sessions.size === 0) this.projects.delete(ref.projectKey);
    return true;
  }

  charge(tenant: string, owner: string, day: string, delta: UsageDelta): void {
    let days = this.daily.get(tenant);
    if (!days) {
      days = new Map();
      this.daily.set(tenant, days);
    }
    const key = `${owner}\u0000${day}`;
    let usage = days.get(key);
    if (!usage) {
      usage = emptyDailyUsage(owner, day);
      days.set(key, usage);
    }
    addToDailyUsage(usage, delta);
  }
}

/**
 * A transcript store in process memory. Everything is lost when the process exits: for tests,
 * demos and single-process tools. Same semantics as the durable stores (deduplication, summaries).
 */
export class MemoryTranscriptStore implements TranscriptStore {
  private readonly clock: Clock;
  private readonly foldUsage: boolean;
  readonly data: MemoryData;

  constructor(options: { clock?: Clock; foldUsage?: boolean; data?: MemoryData } = {}) {
    this.clock = options.clock ?? systemClock;
    this.foldUsage = options.foldUsage ?? true;
    this.data = options.data ?? new MemoryData();
  }

  private get projects(): Map<string, Map<string, MemorySession>> {
    return this.data.projects;
  }

  private session(ref: SessionRef, create: true): MemorySession;
  private session(ref: SessionRef, create: false): MemorySession | undefined;
  private session(ref: SessionRef, create: boolean): MemorySession | undefined {
    return create ? this.data.session(ref, true) : this.data.session(ref, false);
  }

  async append(key: SessionKey, entries: TranscriptEntry[]): Promise<void> {
    assertSessionKey(key);
    assertEntries(entries);
    if (entries.length === 0) return;
    const lines = entries.map((entry, i) => serializeEntry(entry, i));
    const session = this.session(key, true);
    let transcript = key.subpath === undefined ? session.main : session.subpaths.get(key.subpath);
    if (!transcript) {
      transcript = { lines: [], uuids: new Set() };
      if (key.subpath === undefined) session.main = transcript;
      else session.subpaths.set(key.subpath, transcript);
    }
    const fresh = new Set(selectNewEntries(entries, transcript.uuids));
    entries.forEach((entry, i) => {
      if (fresh.has(entry)) transcript.lines.push(lines[i] as string);
    });
    if (key.subpath === undefined && fresh.size > 0) {
      const inserted = [...fresh];
      session.mtime = nextMtime(this.clock.now(), session.mtime);
      session.summary = foldSummary(session.summary, key, inserted, session.mtime);
      const usage = this.foldUsage ? foldAppended(session.usage ?? null, inserted) : null;
      if (usage) {
        session.usage = usage.state;
        const record = session.record;
        if (record && usage.chargeable) {
          this.data.charge(record.tenant, record.owner, utcDay(this.clock.now()), usage.delta);
        }
      }
    }
  }

  async load(key: SessionKey): Promise<TranscriptEntry[] | null> {
    assertSessionKey(key);
    const session = this.session(key, false);
    const transcript =
      key.subpath === undefined ? session?.main : session?.subpaths.get(key.subpath);
    if (!transcript || transcript.lines.length === 0) return null;
    return parseEntries(transcript.lines);
  }

  async listSessions(projectKey: string): Promise<Array<{ sessionId: string; mtime: number }>> {
    assertProjectKey(projectKey);
    const result: Array<{ sessionId: string; mtime: number }> = [];
    for (const [sessionId, session] of this.projects.get(projectKey) ?? []) {
      if (session.mtime !== undefined) result.push({ sessionId, mtime: session.mtime });
    }
    return result;
  }

  async listSessionSummaries(projectKey: string): Promise<SessionSummaryEntry[]> {
    assertProjectKey(projectKey);
    const result: SessionSummaryEntry[] = [];
    for (const session of this.projects.get(projectKey)?.values() ?? []) {
      if (session.summary) result.push(structuredClone(session.summary));
    }
    return result;
  }

  async delete(key: SessionKey): Promise<void> {
    assertSessionKey(key);
    if (key.subpath === undefined) this.data.deleteSession(key);
    else this.session(key, false)?.subpaths.delete(key.subpath);
  }

  async listSubkeys(ref: SessionRef): Promise<string[]> {
    assertSessionRef(ref);
    return [...(this.session(ref, false)?.subpaths.keys() ?? [])];
  }
}
