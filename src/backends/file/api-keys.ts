import { randomUUID } from 'node:crypto';
import { link, mkdir, open as openFile, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { type ApiKeyRecord, type ApiKeyStore, apiKeyRecordOf } from '../../core/api-keys.js';
import { closedError, SessionHubError } from '../../core/errors.js';
import { isMissing } from './jsonl.js';
import { encodeName } from './names.js';

/**
 * The folder for API keys inside the backend's directory. Project folders are encodeName()
 * output, which encodes '.', so no project can ever be named this.
 */
export const API_KEYS_FOLDER = '.api-keys';

/** The suffix of a key's file; encodeName() never writes '.', so the suffixes cannot be confused. */
const KEY_SUFFIX = '.json';
/** The suffix of a key's revocation: `{"revokedAt": N}`, present once the key is revoked. */
const REVOKED_SUFFIX = '.revoked.json';

/**
 * API keys as files: `DIR/.api-keys/<id>.json` holds a key as inserted, and
 * `DIR/.api-keys/<id>.revoked.json` its revocation time. Each is written once and never
 * rewritten: the content goes to a temporary file, which is then hard-linked to its name, and the
 * link fails if the name exists. So whoever creates a name first wins, across processes too,
 * without a lock (the file backend's locks are in-process only), and a reader never sees a file
 * half-written. Nothing is cached: every read goes to the disk, so processes see each other's
 * keys.
 */
export class FileApiKeyStore implements ApiKeyStore {
  private readonly folder: string;
  private closed = false;

  /** `root` is the backend's directory; `fsync()` says whether writes must be synced. */
  constructor(
    root: string,
    private readonly fsync: () => boolean,
  ) {
    this.folder = path.join(root, API_KEYS_FOLDER);
  }

  async insert(key: ApiKeyRecord): Promise<void> {
    this.checkOpen();
    const stored = await this.guard('insert', async () => {
      await mkdir(this.folder, { recursive: true });
      return this.createOnce(this.keyPath(key.id), apiKeyRecordOf(key));
    });
    if (!stored) {
      throw new SessionHubError('INVALID_INPUT', `An API key with id ${key.id} already exists.`, {
        id: key.id,
      });
    }
  }

  async get(id: string): Promise<ApiKeyRecord | null> {
    this.checkOpen();
    return this.guard('get', () => this.read(encodeName(id)));
  }

  async list(tenant?: string): Promise<ApiKeyRecord[]> {
    this.checkOpen();
    const keys = await this.guard('list', async () => {
      let names: string[];
      try {
        names = await readdir(this.folder);
      } catch (error) {
        if (isMissing(error)) return [];
        throw error;
      }
      // Key files only: revocations and temporary files have a '.' before their suffix.
      const stems = names
        .filter((name) => name.endsWith(KEY_SUFFIX))
        .map((name) => name.slice(0, -KEY_SUFFIX.length))
        .filter((stem) => !stem.includes('.'));
      return Promise.all(stems.map((stem) => this.read(stem)));
    });
    return keys
      .filter((key): key is ApiKeyRecord => key !== null)
      .filter((key) => tenant === undefined || key.tenant === tenant)
      .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async revoke(id: string, at: number): Promise<ApiKeyRecord | null> {
    this.checkOpen();
    return this.guard('revoke', async () => {
      const key = await this.read(encodeName(id));
      if (!key || key.revokedAt !== null) return key;
      // The first revocation's file stays; a later one finds it taken and reads its time.
      await this.createOnce(this.revokedPath(id), { revokedAt: at });
      return this.read(encodeName(id));
    });
  }

  /** Refuses every later call; nothing is held open between calls. */
  close(): void {
    this.closed = true;
  }

  private checkOpen(): void {
    if (this.closed) throw closedError('file API key store');
  }

  private keyPath(id: string): string {
    return path.join(this.folder, encodeName(id) + KEY_SUFFIX);
  }

  private revokedPath(id: string): string {
    return path.join(this.folder, encodeName(id) + REVOKED_SUFFIX);
  }

  /** The key whose file name is `stem`, with its revocation; null when it has no file. */
  private async read(stem: string): Promise<ApiKeyRecord | null> {
    const keyFile = path.join(this.folder, stem + KEY_SUFFIX);
    const key = await readJson<ApiKeyRecord>(keyFile);
    if (!key) return null;
    if (key.revokedAt !== null) return key;
    const revokedFile = path.join(this.folder, stem + REVOKED_SUFFIX);
    const revoked = await readJson<{ revokedAt: number }>(revokedFile);
    return revoked ? { ...key, revokedAt: revoked.revokedAt } : key;
  }

  /**
   * Writes `value` as `file` unless `file` exists: false when it did. The link is what makes the
   * name appear, complete, in one step, and what refuses an existing name.
   */
  private async createOnce(file: string, value: unknown): Promise<boolean> {
    const temp = `${file}.${process.pid}.${randomUUID()}.tmp`;
    try {
      const handle = await openFile(temp, 'wx');
      try {
        await handle.writeFile(`${JSON.stringify(value)}\n`, 'utf8');
        if (this.fsync()) await handle.sync();
      } finally {
        await handle.close();
      }
      await link(temp, file);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException)?.code === 'EEXIST') return false;
      throw error;
    } finally {
      await rm(temp, { force: true });
    }
  }

  /** Passes our own errors through; a file system failure becomes BACKEND_UNAVAILABLE. */
  private async guard<T>(operation: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof SessionHubError) throw error;
      const reason = error instanceof Error ? error.message : String(error);
      throw new SessionHubError(
        'BACKEND_UNAVAILABLE',
        `File API key ${operation}() failed: ${reason}. Check that ${this.folder} is readable and writable by this process and that its disk is not full.`,
        { operation, folder: this.folder },
        { cause: error },
      );
    }
  }
}

/** A file's JSON; undefined when the file does not exist. */
async function readJson<T>(file: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    // Files appear complete (see createOnce), so only damage from outside gets here.
    throw new SessionHubError(
      'BACKEND_UNAVAILABLE',
      `The API key file ${file} is not valid JSON. Restore it from a backup, or delete it (a deleted key file drops that key; a deleted .revoked.json file un-revokes it).`,
      { file },
    );
  }
}
