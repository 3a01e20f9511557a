import { randomUUID } from 'node:crypto';
import { mkdir, open as openFile, readFile, realpath, rename } from 'node:fs/promises';
import path from 'node:path';
import { type Clock, systemClock } from '../../core/clock.js';
import { closedError, SessionHubError } from '../../core/errors.js';
import {
  type AcquireOptions,
  assertLeaseRequest,
  assertResource,
  assertTtl,
  type Lease,
  type LeaseInfo,
  type LeaseManager,
  leaseLost,
} from '../../core/lease.js';
import { encodeName } from './names.js';

/**
 * The folder for fences inside the backend's directory. Project folders are encodeName() output,
 * which encodes '.', so no project can ever be named this.
 */
export const LEASES_FOLDER = '.leases';

interface Held {
  holder: string;
  token: string;
  fence: number;
  expiresAt: number;
}

/** What every lease manager of this process over one directory shares. */
interface DirectoryLeases {
  folder: string;
  fsync: boolean;
  held: Map<string, Held>;
  /** The highest fence granted (or possibly granted) per resource, as far as this process knows. */
  fences: Map<string, number>;
  /** Per resource, so that two acquires never read and write one fence file at once. */
  locks: Map<string, Promise<unknown>>;
  folderReady: boolean;
  /** Open managers; at zero the state is dropped, and the next open reads fences from disk. */
  users: number;
}

/**
 * Keyed by the directory's real path: every backend this process opens on one folder must see
 * the same holders, or two of them would both grant the lease.
 */
const directories = new Map<string, DirectoryLeases>();

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException)?.code === 'ENOENT';
}

/**
 * Leases for the file backend. The directory belongs to one process, so holders live in memory,
 * shared by every backend of this process on the same directory. Fences are written to
 * `DIR/.leases/<resource>.json` before a lease is handed out, so a fence is never handed out twice,
 * even after a crash and restart. Time comes from the injected clock.
 */
export class FileLeaseManager implements LeaseManager {
  private readonly clock: Clock;
  private closed = false;

  private constructor(
    private readonly key: string,
    private readonly state: DirectoryLeases,
    clock: Clock,
  ) {
    this.clock = clock;
  }

  /** `dir` must exist: it is resolved through symlinks so that two spellings share one state. */
  static async open(options: {
    dir: string;
    fsync?: boolean;
    clock?: Clock;
  }): Promise<FileLeaseManager> {
    const key = await realpath(path.resolve(options.dir));
    let state = directories.get(key);
    if (!state) {
      state = {
        folder: path.join(key, LEASES_FOLDER),
        fsync: options.fsync ?? false,
        held: new Map(),
        fences: new Map(),
        locks: new Map(),
        folderReady: false,
        users: 0,
      };
      directories.set(key, state);
    }
    // Any manager asking for fsync gets it for all: a weaker write would undo its durability.
    if (options.fsync) state.fsync = true;
    state.users++;
    return new FileLeaseManager(key, state, options.clock ?? systemClock);
  }

  private checkOpen(): void {
    if (this.closed) {
      throw closedError('file lease manager');
    }
  }

  private live(resource: string): Held | undefined {
    const held = this.state.held.get(resource);
    return held && held.expiresAt > this.clock.now() ? held : undefined;
  }

  private fencePath(resource: string): string {
    return path.join(this.state.folder, `${encodeName(resource)}.json`);
  }

  /** Runs `task` after every earlier task on the same resource has settled. */
  private async withLock<T>(resource: string, task: () => Promise<T>): Promise<T> {
    const { locks } = this.state;
    const previous = locks.get(resource) ?? Promise.resolve();
    const run = previous.then(task, task);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    locks.set(resource, settled);
    try {
      return await run;
    } finally {
      if (locks.get(resource) === settled) locks.delete(resource);
    }
  }

  private async lastFence(resource: string): Promise<number> {
    const known = this.state.fences.get(resource);
    if (known !== undefined) return known;
    const file = this.fencePath(resource);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if (isMissing(error)) return 0;
      throw error;
    }
    let fence: unknown;
    try {
      fence = (JSON.parse(text) as { fence?: unknown }).fence;
    } catch {
      fence = undefined;
    }
    if (!Number.isSafeInteger(fence) || (fence as number) < 0) {
      // Guessing low could hand out a fence a writer has already seen; refuse instead.
      throw new SessionHubError(
        'BACKEND_UNAVAILABLE',
        `The lease fence file ${file} is unreadable (possibly cut short by an operating-system crash without fsync). Write {"fence": N} into it with N above any fence your writers have recorded, or delete it if none has.`,
        { file, resource },
      );
    }
    return fence as number;
  }

  /** Through a temporary file and a rename, so a crash leaves the old fence or the new one. */
  private async writeFence(resource: string, fence: number): Promise<void> {
    if (!this.state.folderReady) {
      await mkdir(this.state.folder, { recursive: true });
      this.state.folderReady = true;
    }
    const file = this.fencePath(resource);
    const temp = `${file}.${process.pid}.tmp`;
    const handle = await openFile(temp, 'w');
    try {
      await handle.writeFile(`${JSON.stringify({ resource, fence })}\n`, 'utf8');
      if (this.state.fsync) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  }

  async acquire(resource: string, options: AcquireOptions): Promise<Lease | null> {
    assertLeaseRequest(resource, options);
    this.checkOpen();
    return this.withLock(resource, async () => {
      if (this.live(resource)) return null;
      const fence = (await this.lastFence(resource)) + 1;
      // Counted before the write: if the write fails after its rename, the next acquire must
      // still move past this fence. A skipped fence is harmless; a repeated one is not.
      this.state.fences.set(resource, fence);
      await this.writeFence(resource, fence);
      const held = {
        holder: options.holder,
        token: randomUUID(),
        fence,
        expiresAt: this.clock.now() + options.ttlMs,
      };
      this.state.held.set(resource, held);
      return { resource, ...held, ttlMs: options.ttlMs };
    });
  }

  async renew(lease: Lease, ttlMs = lease?.ttlMs): Promise<Lease> {
    assertResource(lease?.resource);
    assertTtl(ttlMs);
    this.checkOpen();
    const held = this.live(lease.resource);
    if (!held || held.token !== lease.token) throw leaseLost(lease, 'it expired or was taken over');
    held.expiresAt = this.clock.now() + ttlMs;
    return { ...lease, expiresAt: held.expiresAt, ttlMs };
  }

  async release(lease: Lease): Promise<boolean> {
    assertResource(lease?.resource);
    this.checkOpen();
    const held = this.live(lease.resource);
    if (!held || held.token !== lease.token) return false;
    this.state.held.delete(lease.resource);
    return true;
  }

  async current(resource: string): Promise<LeaseInfo | null> {
    assertResource(resource);
    this.checkOpen();
    const held = this.live(resource);
    return held
      ? { resource, holder: held.holder, fence: held.fence, expiresAt: held.expiresAt }
      : null;
  }

  async validate(resource: string, fence: number): Promise<boolean> {
    assertResource(resource);
    this.checkOpen();
    return this.live(resource)?.fence === fence;
  }

  /**
   * Refuses new calls and waits for fence writes under way. Leases this manager granted stay held
   * while another manager of this process has the directory open, as they would in SQLite.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.state.users--;
    await Promise.all(this.state.locks.values());
    // Dropped only once idle, so a manager opened meanwhile never reads a fence file that a write
    // still under way is about to replace.
    const idle = this.state.users === 0 && this.state.locks.size === 0;
    if (idle && directories.get(this.key) === this.state) directories.delete(this.key);
  }
}
