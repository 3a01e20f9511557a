import { mkdir, open as openFile, readdir, readFile, rename, rm, truncate } from 'node:fs/promises';
import path from 'node:path';
import { type Clock, nextMtime, systemClock } from '../../core/clock.js';
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
import { decodeName, encodeName } from './names.js';

/** A session's summary plus how many main-transcript lines it has folded. */
interface SummaryRecord extends SessionSummaryEntry {
  folded: number;
}

/** One line of a project's index.jsonl: a session's newest summary, or its deletion. */
type IndexLine = { summary: SummaryRecord } | { deleted: string };

/** A project's index as this process knows it. */
interface ProjectIndex {
  sessions: Map<string, SummaryRecord>;
  /** Lines in index.jsonl, live or superseded; compaction rewrites the file when it grows. */
  lines: number;
}

/** What this process knows about one transcript file, learnt by reading it once. */
interface TranscriptState {
  uuids: Set<string>;
  lines: number;
}

export interface FileTranscriptStoreOptions {
  dir: string;
  /** fsync every append and index write before acknowledging it. Default false. */
  fsync?: boolean;
  clock?: Clock;
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException)?.code === 'ENOENT';
}

/**
 * Parses JSONL, leaving out a last line without its newline (a write torn by a crash, never
 * acknowledged). Works on the raw bytes: decoding line by line measured twice as fast as decoding
 * the whole file to one string and splitting it. Returns how many bytes the complete lines take.
 */
function parseJsonl<T>(bytes: Buffer): { values: T[]; completeBytes: number; torn: boolean } {
  const values: T[] = [];
  let start = 0;
  for (;;) {
    const end = bytes.indexOf(10, start);
    if (end === -1) break;
    if (end > start) values.push(JSON.parse(bytes.toString('utf8', start, end)) as T);
    start = end + 1;
  }
  return { values, completeBytes: start, torn: start < bytes.length };
}

async function readBytes(file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

/**
 * Transcripts as JSONL files in a directory, one folder per project:
 *
 *   DIR/<project>/sessions/<session>.jsonl          the main transcript
 *   DIR/<project>/subagents/<session>/<sub>.jsonl   subagent transcripts (+ <sub>.name if hashed)
 *   DIR/<project>/index.jsonl                       each session's newest summary and mtime
 *
 * The index is an append-only log (compacted when it is mostly superseded lines), so listing a
 * project reads one file rather than one per session. Names come from encodeName(): no key can
 * climb out of DIR or meet another key. Appends are serialised per project inside this process;
 * the directory is meant for ONE process at a time (SQLite serves several).
 */
export class FileTranscriptStore implements TranscriptStore {
  private readonly root: string;
  private readonly fsync: boolean;
  private readonly clock: Clock;
  private readonly transcripts = new Map<string, TranscriptState>();
  /** Promises, so that concurrent first reads of one index share a single result. */
  private readonly indexes = new Map<string, Promise<ProjectIndex>>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly knownDirs = new Set<string>();
  private closed = false;

  constructor(options: FileTranscriptStoreOptions) {
    this.root = path.resolve(options.dir);
    this.fsync = options.fsync ?? false;
    this.clock = options.clock ?? systemClock;
  }

  private projectDir(projectKey: string): string {
    return path.join(this.root, encodeName(projectKey));
  }

  private indexPath(projectKey: string): string {
    return path.join(this.projectDir(projectKey), 'index.jsonl');
  }

  private subagentDir(ref: SessionRef): string {
    return path.join(this.projectDir(ref.projectKey), 'subagents', encodeName(ref.sessionId));
  }

  private transcriptPath(key: SessionKey): string {
    if (key.subpath === undefined) {
      const name = `${encodeName(key.sessionId)}.jsonl`;
      return path.join(this.projectDir(key.projectKey), 'sessions', name);
    }
    return path.join(this.subagentDir(key), `${encodeName(key.subpath)}.jsonl`);
  }

  /** Runs `task` after every earlier task holding the same lock name has settled. */
  private async withLock<T>(name: string, task: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(name) ?? Promise.resolve();
    const run = previous.then(task, task);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(name, settled);
    try {
      return await run;
    } finally {
      if (this.locks.get(name) === settled) this.locks.delete(name);
    }
  }

  /** Appends to one session, and deletes of it, run one at a time. */
  private withSessionLock<T>(ref: SessionRef, task: () => Promise<T>): Promise<T> {
    return this.withLock(JSON.stringify(['session', ref.projectKey, ref.sessionId]), task);
  }

  /** Writes to one project's index run one at a time. */
  private withIndexLock<T>(projectKey: string, task: () => Promise<T>): Promise<T> {
    return this.withLock(JSON.stringify(['index', projectKey]), task);
  }

  private async ensureDir(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    await mkdir(dir, { recursive: true });
    this.knownDirs.add(dir);
  }

  private checkOpen(): void {
    if (this.closed) {
      throw closedError('file transcript store');
    }
  }

  /** Reads a transcript once per process: its uuids, its line count, and a torn tail cut off. */
  private async transcriptState(
    file: string,
  ): Promise<{ state: TranscriptState; entries?: TranscriptEntry[] }> {
    const known = this.transcripts.get(file);
    if (known) return { state: known };
    const bytes = (await readBytes(file)) ?? Buffer.alloc(0);
    const { values: entries, completeBytes, torn } = parseJsonl<TranscriptEntry>(bytes);
    if (torn) await truncate(file, completeBytes);
    const uuids = new Set<string>();
    selectNewEntries(entries, uuids);
    const state = { uuids, lines: entries.length };
    this.transcripts.set(file, state);
    return { state, entries };
  }

  /** Reads a project's index once per process; later calls use what this process wrote. */
  private projectIndex(projectKey: string): Promise<ProjectIndex> {
    let index = this.indexes.get(projectKey);
    if (!index) {
      index = this.readIndex(projectKey);
      this.indexes.set(projectKey, index);
      // A failed read (a corrupt line, say) must not stick: the next call reads again.
      index.catch(() => this.indexes.delete(projectKey));
    }
    return index;
  }

  private async readIndex(projectKey: string): Promise<ProjectIndex> {
    const file = this.indexPath(projectKey);
    const bytes = (await readBytes(file)) ?? Buffer.alloc(0);
    const { values, completeBytes, torn } = parseJsonl<IndexLine>(bytes);
    if (torn) await truncate(file, completeBytes);
    const sessions = new Map<string, SummaryRecord>();
    for (const line of values) {
      if ('deleted' in line) sessions.delete(line.deleted);
      else sessions.set(line.summary.sessionId, line.summary);
    }
    return { sessions, lines: values.length };
  }

  private writeIndexLine(projectKey: string, line: IndexLine): Promise<void> {
    return this.withIndexLock(projectKey, () => this.writeIndexLineNow(projectKey, line));
  }

  private async writeIndexLineNow(projectKey: string, line: IndexLine): Promise<void> {
    const index = await this.projectIndex(projectKey);
    const file = this.indexPath(projectKey);
    // Superseded lines are dead weight for every reader: rewrite once they are most of the file.
    if (index.lines > 64 && index.lines > 4 * index.sessions.size) {
      const live = [...index.sessions.values()].map((summary) => JSON.stringify({ summary }));
      await this.writeAtomically(file, live.length > 0 ? `${live.join('\n')}\n` : '');
      index.lines = live.length;
    }
    await this.appendText(file, `${JSON.stringify(line)}\n`);
    index.lines++;
    if ('deleted' in line) index.sessions.delete(line.deleted);
    else index.sessions.set(line.summary.sessionId, line.summary);
  }

  /** Writes a whole file through a temporary name and a rename, so readers never see half. */
  private async writeAtomically(file: string, text: string): Promise<void> {
    const temp = `${file}.${process.pid}.tmp`;
    const handle = await openFile(temp, 'w');
    try {
      await handle.writeFile(text, 'utf8');
      if (this.fsync) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  }

  private async appendText(file: string, text: string): Promise<void> {
    const handle = await openFile(file, 'a');
    try {
      await handle.writeFile(text, 'utf8');
      if (this.fsync) await handle.datasync();
    } finally {
      await handle.close();
    }
  }

  async append(key: SessionKey, entries: TranscriptEntry[]): Promise<void> {
    assertSessionKey(key);
    assertEntries(entries);
    this.checkOpen();
    if (entries.length === 0) return;
    const lines = entries.map((entry, i) => serializeEntry(entry, i));
    await this.withSessionLock(key, async () => {
      const file = this.transcriptPath(key);
      await this.ensureDir(path.dirname(file));
      const { state, entries: existing } = await this.transcriptState(file);
      const seen = new Set(state.uuids);
      const fresh = new Set(selectNewEntries(entries, seen));
      if (key.subpath !== undefined && fresh.size > 0) await this.rememberSubpathName(key);
      if (fresh.size > 0) {
        const text = lines.filter((_line, i) => fresh.has(entries[i] as TranscriptEntry));
        await this.appendText(file, `${text.join('\n')}\n`);
        state.uuids = seen;
        state.lines += fresh.size;
      }
      if (key.subpath !== undefined) return;

      const index = await this.projectIndex(key.projectKey);
      let summary = index.sessions.get(key.sessionId);
      let toFold = [...fresh];
      // A crash between the transcript write and the index write leaves the summary behind the
      // file; the first append after it refolds the whole transcript.
      if (existing !== undefined && (summary?.folded ?? 0) !== existing.length) {
        summary = undefined;
        toFold = [...existing, ...toFold];
      }
      if (toFold.length === 0) return;
      const mtime = nextMtime(this.clock.now(), summary?.mtime);
      const folded = foldSummary(summary, key, toFold, mtime);
      await this.writeIndexLine(key.projectKey, {
        summary: { sessionId: key.sessionId, mtime, data: folded.data, folded: state.lines },
      });
    });
  }

  /** A hashed file name cannot be decoded, so its subpath is kept beside it. */
  private async rememberSubpathName(key: SessionKey): Promise<void> {
    const name = encodeName(key.subpath as string);
    if (decodeName(name) !== undefined) return;
    const file = path.join(this.subagentDir(key), `${name}.name`);
    await this.writeAtomically(file, key.subpath as string);
  }

  async load(key: SessionKey): Promise<TranscriptEntry[] | null> {
    assertSessionKey(key);
    this.checkOpen();
    const bytes = await readBytes(this.transcriptPath(key));
    if (bytes === undefined) return null;
    const { values } = parseJsonl<TranscriptEntry>(bytes);
    return values.length > 0 ? values : null;
  }

  async listSessions(projectKey: string): Promise<Array<{ sessionId: string; mtime: number }>> {
    assertProjectKey(projectKey);
    this.checkOpen();
    const index = await this.projectIndex(projectKey);
    return [...index.sessions.values()].map(({ sessionId, mtime }) => ({ sessionId, mtime }));
  }

  async listSessionSummaries(projectKey: string): Promise<SessionSummaryEntry[]> {
    assertProjectKey(projectKey);
    this.checkOpen();
    const index = await this.projectIndex(projectKey);
    return [...index.sessions.values()].map(({ sessionId, mtime, data }) => ({
      sessionId,
      mtime,
      data: structuredClone(data),
    }));
  }

  async delete(key: SessionKey): Promise<void> {
    assertSessionKey(key);
    this.checkOpen();
    await this.withSessionLock(key, async () => {
      if (key.subpath !== undefined) {
        const file = this.transcriptPath(key);
        await rm(file, { force: true });
        await rm(file.replace(/\.jsonl$/, '.name'), { force: true });
        this.transcripts.delete(file);
        return;
      }
      // The index line goes first: it is what lists the session.
      const index = await this.projectIndex(key.projectKey);
      if (index.sessions.has(key.sessionId)) {
        await this.writeIndexLine(key.projectKey, { deleted: key.sessionId });
      }
      const main = this.transcriptPath(key);
      await rm(main, { force: true });
      this.transcripts.delete(main);
      const subagents = this.subagentDir(key);
      await rm(subagents, { recursive: true, force: true });
      this.knownDirs.delete(subagents);
      for (const file of this.transcripts.keys()) {
        if (file.startsWith(subagents + path.sep)) this.transcripts.delete(file);
      }
    });
  }

  async listSubkeys(ref: SessionRef): Promise<string[]> {
    assertSessionRef(ref);
    this.checkOpen();
    const dir = this.subagentDir(ref);
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
    await Promise.all(this.locks.values());
  }
}
