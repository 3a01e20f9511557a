import { mkdir, readdir, realpath, rm, truncate } from 'node:fs/promises';
import path from 'node:path';
import type { SessionKey, SessionRef } from '../../core/session-key.js';
import { tenantProjectKey } from '../registry.js';
import { RecordCatalog } from './catalog.js';
import { appendText, isMissing, parseJsonl, readBytes, writeAtomically } from './jsonl.js';
import { encodeName } from './names.js';
import { type IndexLine, ProjectIndex } from './project-index.js';

/** What this process knows about one transcript file, learnt by reading it once. */
export interface TranscriptState {
  uuids: Set<string>;
  lines: number;
  /** Size of its complete lines. */
  bytes: number;
}

/**
 * Every project folder of a tenant starts with this, hashed names included (they keep the first
 * 60 characters of the encoded name), so the registry finds records without reading other
 * projects' indexes.
 */
const TENANT_FOLDER_PREFIX = encodeName(tenantProjectKey(''));

/**
 * One backend directory as this process sees it:
 *
 *   DIR/<project>/sessions/<session>.jsonl          the main transcript
 *   DIR/<project>/subagents/<session>/<sub>.jsonl   subagent transcripts (+ <sub>.name if hashed)
 *   DIR/<project>/index.jsonl                       sessions' summaries, usage and records,
 *                                                   and the tenant's daily usage
 *
 * Shared by every file backend this process opens on the directory (see FileFolder.open), so
 * they all see one set of caches and locks, as the lease manager does. Locks are in-process:
 * the directory belongs to ONE process.
 */
export class FileFolder {
  /** By file. */
  private readonly transcripts = new Map<string, TranscriptState>();
  /** The cached subagent files of each session, by its subagent folder: a delete forgets them. */
  private readonly subagentFiles = new Map<string, Set<string>>();
  /** Registered sessions of every index read so far. */
  readonly catalog = new RecordCatalog();
  /** By project folder name. Promises, so concurrent first reads share a single result. */
  private readonly indexes = new Map<string, Promise<ProjectIndex>>();
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Per project folder: pre-built lines waiting for the next index write (appendIndexLines). */
  private readonly queued = new Map<string, QueuedLines[]>();
  private readonly knownDirs = new Set<string>();
  private tenantsRead: Promise<void> | undefined;
  /** Open backends on this folder; at zero it is forgotten and the next open reads the disk. */
  private users = 0;

  constructor(
    readonly root: string,
    public fsync: boolean,
  ) {}

  /**
   * The folder state shared by this process's backends on `dir` (which must exist). Resolved
   * through symlinks, so two spellings of one directory share it. Release it with release().
   */
  static async open(dir: string, fsync: boolean): Promise<FileFolder> {
    const root = await realpath(path.resolve(dir));
    let folder = openFolders.get(root);
    if (!folder) {
      folder = new FileFolder(root, fsync);
      openFolders.set(root, folder);
    }
    // Any backend asking for fsync gets it for all: a weaker write would undo its durability.
    if (fsync) folder.fsync = true;
    folder.users++;
    return folder;
  }

  /** Waits for work under way; the last user's release makes the next open read the disk. */
  async release(): Promise<void> {
    this.users--;
    await this.idle();
    if (this.users === 0 && this.locks.size === 0 && openFolders.get(this.root) === this) {
      openFolders.delete(this.root);
    }
  }

  /** Waits for every task holding a lock at the time of the call. */
  async idle(): Promise<void> {
    await Promise.all(this.locks.values());
  }

  projectName(projectKey: string): string {
    return encodeName(projectKey);
  }

  private indexPath(name: string): string {
    return path.join(this.root, name, 'index.jsonl');
  }

  subagentDir(ref: SessionRef): string {
    return path.join(this.root, encodeName(ref.projectKey), 'subagents', encodeName(ref.sessionId));
  }

  transcriptPath(key: SessionKey): string {
    if (key.subpath === undefined) {
      const name = `${encodeName(key.sessionId)}.jsonl`;
      return path.join(this.root, encodeName(key.projectKey), 'sessions', name);
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
  withSessionLock<T>(ref: SessionRef, task: () => Promise<T>): Promise<T> {
    return this.withLock(JSON.stringify(['session', ref.projectKey, ref.sessionId]), task);
  }

  async ensureDir(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    await mkdir(dir, { recursive: true });
    this.knownDirs.add(dir);
  }

  forgetDir(dir: string): void {
    this.knownDirs.delete(dir);
  }

  /** What this process learnt about the transcript of `key` at `file`, if it read it. */
  transcript(file: string): TranscriptState | undefined {
    return this.transcripts.get(file);
  }

  rememberTranscript(key: SessionKey, file: string, state: TranscriptState): void {
    this.transcripts.set(file, state);
    if (key.subpath === undefined) return;
    const dir = this.subagentDir(key);
    let files = this.subagentFiles.get(dir);
    if (!files) {
      files = new Set();
      this.subagentFiles.set(dir, files);
    }
    files.add(file);
  }

  forgetTranscript(key: SessionKey, file: string): void {
    this.transcripts.delete(file);
    if (key.subpath !== undefined) this.subagentFiles.get(this.subagentDir(key))?.delete(file);
  }

  /** A project's index, read once per process; later calls see what this process wrote. */
  projectIndex(projectKey: string): Promise<ProjectIndex> {
    return this.indexByName(this.projectName(projectKey));
  }

  private indexByName(name: string): Promise<ProjectIndex> {
    let index = this.indexes.get(name);
    if (!index) {
      index = this.readIndex(name);
      this.indexes.set(name, index);
      // A failed read (a corrupt line, say) must not stick: the next call reads again.
      index.catch(() => this.indexes.delete(name));
    }
    return index;
  }

  private async readIndex(name: string): Promise<ProjectIndex> {
    const file = this.indexPath(name);
    const bytes = (await readBytes(file)) ?? Buffer.alloc(0);
    const { values, completeBytes, torn } = parseJsonl<IndexLine>(bytes);
    if (torn) await truncate(file, completeBytes);
    const index = ProjectIndex.fromLines(values, completeBytes);
    // Only a fully read index reaches the catalog, so a failed read leaves nothing behind.
    index.attach(this.catalog);
    return index;
  }

  /** Reads the index of every tenant's project once, so the catalog lists every record. */
  readAllTenants(): Promise<void> {
    if (!this.tenantsRead) {
      this.tenantsRead = this.readTenantIndexes();
      this.tenantsRead.catch(() => {
        this.tenantsRead = undefined;
      });
    }
    return this.tenantsRead;
  }

  private async readTenantIndexes(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch (error) {
      if (isMissing(error)) return;
      throw error;
    }
    for (const name of names) {
      if (name.startsWith(TENANT_FOLDER_PREFIX)) await this.indexByName(name);
    }
  }

  /**
   * Writes to a project's index, one at a time per project. `build` sees the index as it is and
   * returns the lines to write (none: nothing is written); it runs with no other write of the
   * project in between, so it can check and set (a version, an existing record) safely. The
   * lines are written in one append and then applied to the index.
   */
  writeIndex(projectKey: string, build: (index: ProjectIndex) => IndexLine[]): Promise<void> {
    const name = this.projectName(projectKey);
    return this.withLock(JSON.stringify(['index', name]), async () => {
      const index = await this.indexByName(name);
      const lines = build(index);
      if (lines.length > 0) await this.writeLines(name, index, lines, serialize(lines));
    });
  }

  /**
   * Writes lines built beforehand, for a caller holding the session lock of every session they
   * name (an append, a delete): what they say depends only on what that lock protects. Lines
   * queued while the project's index is being written go out together in the next single append
   * (group commit), so many sessions appending at once do not each wait for a write of their own.
   * They may thus land before a compare-and-set write queued earlier, which is harmless: an
   * append's line never touches the record a CAS write checks, and a CAS write that comes to a
   * deleted session finds no record and writes nothing.
   */
  appendIndexLines(projectKey: string, lines: IndexLine[]): Promise<void> {
    if (lines.length === 0) return Promise.resolve();
    const name = this.projectName(projectKey);
    const text = serialize(lines);
    return new Promise<void>((resolve, reject) => {
      const waiting = this.queued.get(name);
      // A batch not yet started takes these lines too.
      if (waiting) {
        waiting.push({ lines, text, resolve, reject });
        return;
      }
      const batch: QueuedLines[] = [{ lines, text, resolve, reject }];
      this.queued.set(name, batch);
      void this.withLock(JSON.stringify(['index', name]), async () => {
        this.queued.delete(name);
        try {
          const index = await this.indexByName(name);
          const all = batch.flatMap((queued) => queued.lines);
          await this.writeLines(name, index, all, batch.map((queued) => queued.text).join(''));
        } catch (error) {
          for (const queued of batch) queued.reject(error);
          return;
        }
        for (const queued of batch) queued.resolve();
      });
    });
  }

  private async writeLines(
    name: string,
    index: ProjectIndex,
    lines: IndexLine[],
    text: string,
  ): Promise<void> {
    const file = this.indexPath(name);
    await this.ensureDir(path.dirname(file));
    if (index.needsCompaction()) {
      index.bytes = await writeAtomically(file, index.compacted(), this.fsync);
      index.lines = index.liveLines();
    }
    index.bytes = await appendText(file, text, index.bytes, this.fsync);
    index.lines += lines.length;
    for (const line of lines) index.apply(line);
  }

  /**
   * Deletes a session for good: its index entry (record, summary, usage), its main transcript and
   * every subagent transcript. The caller holds the session lock. False if the index had nothing
   * of it.
   */
  async deleteSession(ref: SessionRef): Promise<boolean> {
    // Under the session lock nothing can add or drop the session's index entry meanwhile. The
    // index line goes first: it is what lists the session.
    const index = await this.projectIndex(ref.projectKey);
    const indexed = index.sessions.has(ref.sessionId);
    if (indexed) await this.appendIndexLines(ref.projectKey, [{ deleted: ref.sessionId }]);
    const main = this.transcriptPath(ref);
    await rm(main, { force: true });
    this.transcripts.delete(main);
    const subagents = this.subagentDir(ref);
    await rm(subagents, { recursive: true, force: true });
    this.forgetDir(subagents);
    for (const file of this.subagentFiles.get(subagents) ?? []) this.transcripts.delete(file);
    this.subagentFiles.delete(subagents);
    return indexed;
  }
}

interface QueuedLines {
  lines: IndexLine[];
  text: string;
  resolve(): void;
  reject(error: unknown): void;
}

function serialize(lines: IndexLine[]): string {
  return `${lines.map((line) => JSON.stringify(line)).join('\n')}\n`;
}

/** Folder states in use, by real path. */
const openFolders = new Map<string, FileFolder>();
