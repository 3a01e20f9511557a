import { readdir, readFile, rm, truncate } from 'node:fs/promises';
import path from 'node:path';
import { type Clock, nextMtime, systemClock } from '../../core/clock.js';
import { utcDay } from '../../core/daily-usage.js';
import {
  assertEntries,
  selectNewEntries,
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
import { foldAppended } from '../usage-fold.js';
import { FileFolder, type TranscriptState } from './folder.js';
import { appendText, isMissing, parseJsonl, readBytes, writeAtomically } from './jsonl.js';
import { decodeName, encodeName } from './names.js';
import type { IndexedSession, SessionLine } from './project-index.js';

export interface FileTranscriptStoreOptions {
  dir: string;
  /** fsync every append and index write before acknowledging it. Default false. */
  fsync?: boolean;
  clock?: Clock;
  /** Fold usage from appended entries (default true); off only to measure what folding costs. */
  foldUsage?: boolean;
}

/**
 * Transcripts as JSONL files in a directory, one folder per project (the layout is in
 * folder.ts). Each project's index.jsonl is an append-only log, compacted when it is mostly
 * superseded lines, so listing a project reads one file rather than one per session.
 *
 * A main-transcript append writes its new entries, then ONE index line holding the session's
 * new summary, its usage fold and, for a registered session, what the append added to the
 * owner's day: the fold costs no extra write. Names come from encodeName(): no key can climb
 * out of DIR or meet another key. Appends are serialised per session inside this process; the
 * directory is meant for ONE process at a time (SQLite serves several).
 */
export class FileTranscriptStore implements TranscriptStore {
  private readonly folder: FileFolder;
  private readonly clock: Clock;
  private readonly foldUsage: boolean;
  private closed = false;

  /**
   * `folder` is the state this process shares for the directory (createFileBackend passes it);
   * without one the store keeps caches of its own and must be alone on the directory.
   */
  constructor(options: FileTranscriptStoreOptions, folder?: FileFolder) {
    this.folder = folder ?? new FileFolder(path.resolve(options.dir), options.fsync ?? false);
    this.clock = options.clock ?? systemClock;
    this.foldUsage = options.foldUsage ?? true;
  }

  private checkOpen(): void {
    if (this.closed) {
      throw closedError('file transcript store');
    }
  }

  /** Reads a transcript once per process: its uuids, its line count, and a torn tail cut off. */
  private async transcriptState(
    key: SessionKey,
    file: string,
  ): Promise<{ state: TranscriptState; entries?: TranscriptEntry[] }> {
    const known = this.folder.transcript(file);
    if (known) return { state: known };
    const bytes = (await readBytes(file)) ?? Buffer.alloc(0);
    const { values: entries, completeBytes, torn } = parseJsonl<TranscriptEntry>(bytes);
    if (torn) await truncate(file, completeBytes);
    const uuids = new Set<string>();
    selectNewEntries(entries, uuids);
    const state = { uuids, lines: entries.length, bytes: completeBytes };
    this.folder.rememberTranscript(key, file, state);
    return { state, entries };
  }

  async append(key: SessionKey, entries: TranscriptEntry[]): Promise<void> {
    assertSessionKey(key);
    assertEntries(entries);
    this.checkOpen();
    if (entries.length === 0) return;
    const lines = entries.map((entry, i) => serializeEntry(entry, i));
    await this.folder.withSessionLock(key, async () => {
      const file = this.folder.transcriptPath(key);
      await this.folder.ensureDir(path.dirname(file));
      const { state, entries: existing } = await this.transcriptState(key, file);
      const seen = new Set(state.uuids);
      const fresh = selectNewEntries(entries, seen);
      if (key.subpath !== undefined && fresh.length > 0) await this.rememberSubpathName(key);
      if (fresh.length > 0) {
        const kept = new Set(fresh);
        const text = lines.filter((_line, i) => kept.has(entries[i] as TranscriptEntry));
        const fsync = this.folder.fsync;
        state.bytes = await appendText(file, `${text.join('\n')}\n`, state.bytes, fsync);
        state.uuids = seen;
        state.lines += fresh.length;
      }
      if (key.subpath !== undefined) return;
      // Under the session lock nothing else changes this session's summary, usage, record
      // owner or registration, so the line is built before the project's index lock is taken.
      const index = await this.folder.projectIndex(key.projectKey);
      const session = index.sessions.get(key.sessionId);
      const line = this.foldLine(session, key, fresh, existing, state.lines);
      if (line) await this.folder.appendIndexLines(key.projectKey, [line]);
    });
  }

  /**
   * The index line of a main-transcript append: the summary and usage folded over the entries it
   * stored (duplicates dropped, so a retried append folds nothing), and the owner's charge.
   * Null when nothing was stored. `existing` is the transcript as read from disk by this append,
   * if it was.
   */
  private foldLine(
    session: IndexedSession | undefined,
    key: SessionKey,
    fresh: TranscriptEntry[],
    existing: TranscriptEntry[] | undefined,
    lines: number,
  ): SessionLine | null {
    let summary = session?.summary;
    const folded = summary?.folded ?? 0;
    let forSummary = fresh;
    let forUsage = fresh;
    // A crash between the transcript write and the index write leaves the index behind the
    // file: the first append after it refolds the summary, and folds the lines usage missed.
    if (existing !== undefined && folded !== existing.length) {
      summary = undefined;
      forSummary = [...existing, ...fresh];
      if (folded < existing.length) forUsage = [...existing.slice(folded), ...fresh];
    }
    if (forSummary.length === 0) return null;
    const mtime = nextMtime(this.clock.now(), summary?.mtime);
    const { data } = foldSummary(summary, key, forSummary, mtime);
    const line: SessionLine = {
      session: key.sessionId,
      summary: { sessionId: key.sessionId, mtime, data, folded: lines },
    };
    const usage = this.foldUsage ? foldAppended(session?.usage ?? null, forUsage) : null;
    if (usage) {
      line.usage = usage.state;
      const record = session?.record;
      if (record && usage.chargeable) {
        const { costUsd, tokens, turns } = usage.delta;
        line.charge = {
          owner: record.owner,
          day: utcDay(this.clock.now()),
          costUsd,
          tokens,
          turns,
        };
      }
    }
    return line;
  }

  /** A hashed file name cannot be decoded, so its subpath is kept beside it. */
  private async rememberSubpathName(key: SessionKey): Promise<void> {
    const name = encodeName(key.subpath as string);
    if (decodeName(name) !== undefined) return;
    const file = path.join(this.folder.subagentDir(key), `${name}.name`);
    await writeAtomically(file, [key.subpath as string], this.folder.fsync);
  }

  async load(key: SessionKey): Promise<TranscriptEntry[] | null> {
    assertSessionKey(key);
    this.checkOpen();
    const bytes = await readBytes(this.folder.transcriptPath(key));
    if (bytes === undefined) return null;
    const { values } = parseJsonl<TranscriptEntry>(bytes);
    return values.length > 0 ? values : null;
  }

  async listSessions(projectKey: string): Promise<Array<{ sessionId: string; mtime: number }>> {
    assertProjectKey(projectKey);
    this.checkOpen();
    const index = await this.folder.projectIndex(projectKey);
    const result: Array<{ sessionId: string; mtime: number }> = [];
    // A registered session without entries yet has no summary: the SDK has nothing to list.
    for (const { summary } of index.sessions.values()) {
      if (summary) result.push({ sessionId: summary.sessionId, mtime: summary.mtime });
    }
    return result;
  }

  async listSessionSummaries(projectKey: string): Promise<SessionSummaryEntry[]> {
    assertProjectKey(projectKey);
    this.checkOpen();
    const index = await this.folder.projectIndex(projectKey);
    const result: SessionSummaryEntry[] = [];
    for (const { summary } of index.sessions.values()) {
      if (!summary) continue;
      const { sessionId, mtime, data } = summary;
      result.push({ sessionId, mtime, data: structuredClone(data) });
    }
    return result;
  }

  /** Deleting a main transcript deletes the whole session, its registry record included. */
  async delete(key: SessionKey): Promise<void> {
    assertSessionKey(key);
    this.checkOpen();
    await this.folder.withSessionLock(key, async () => {
      if (key.subpath === undefined) {
        await this.folder.deleteSession(key);
        return;
      }
      const file = this.folder.transcriptPath(key);
      await rm(file, { force: true });
      await rm(file.replace(/\.jsonl$/, '.name'), { force: true });
      this.folder.forgetTranscript(key, file);
    });
  }

  async listSubkeys(ref: SessionRef): Promise<string[]> {
    assertSessionRef(ref);
    this.checkOpen();
    const dir = this.folder.subagentDir(ref);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (error) {
      if (isMissing(error)) return [];
      throw error;
    }
    const subpaths: string[] = [];
    for (const name of names) {
      if (!name.endsWith('.jsonl')) continue;
      const base = name.slice(0, -'.jsonl'.length);
      subpaths.push(decodeName(base) ?? (await readFile(path.join(dir, `${base}.name`), 'utf8')));
    }
    return subpaths;
  }

  /** Waits for running appends, then refuses new calls. */
  async close(): Promise<void> {
    this.closed = true;
    await this.folder.idle();
  }
}
