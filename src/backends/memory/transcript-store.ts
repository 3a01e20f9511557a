import { type Clock, nextMtime, systemClock } from '../../core/clock.js';
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
import type { TranscriptStore } from '../backend.js';
import { foldSummary, type SessionSummaryEntry } from '../summary.js';

interface Transcript {
  /** Entries as JSON text, so callers can never mutate what is stored. */
  lines: string[];
  uuids: Set<string>;
}

interface StoredSession {
  /** Set once the main transcript has entries; subagent-only sessions are not listed. */
  mtime?: number;
  summary?: SessionSummaryEntry;
  main?: Transcript;
  subpaths: Map<string, Transcript>;
}

/**
 * A transcript store in process memory. Everything is lost when the process exits: for tests,
 * demos and single-process tools. Same semantics as the durable stores (deduplication, summaries).
 */
export class MemoryTranscriptStore implements TranscriptStore {
  private readonly projects = new Map<string, Map<string, StoredSession>>();
  private readonly clock: Clock;

  constructor(options: { clock?: Clock } = {}) {
    this.clock = options.clock ?? systemClock;
  }

  private session(ref: SessionRef, create: true): StoredSession;
  private session(ref: SessionRef, create: false): StoredSession | undefined;
  private session(ref: SessionRef, create: boolean): StoredSession | undefined {
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
      session.mtime = nextMtime(this.clock.now(), session.mtime);
      session.summary = foldSummary(session.summary, key, [...fresh], session.mtime);
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
    const sessions = this.projects.get(key.projectKey);
    const session = sessions?.get(key.sessionId);
    if (!sessions || !session) return;
    if (key.subpath === undefined) {
      sessions.delete(key.sessionId);
      if (sessions.size === 0) this.projects.delete(key.projectKey);
    } else {
      session.subpaths.delete(key.subpath);
    }
  }

  async listSubkeys(ref: SessionRef): Promise<string[]> {
    assertSessionRef(ref);
    return [...(this.session(ref, false)?.subpaths.keys() ?? [])];
  }
}
