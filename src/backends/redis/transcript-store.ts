import type { TranscriptEntry } from '../../core/entries.js';
import { assertEntries, entryUuid, serializeEntry } from '../../core/entries.js';
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
import { guardRedis } from './failures.js';
import { projectKeys, sessionKeys } from './keys.js';
import { SummaryPublisher } from './publisher.js';
import {
  APPEND_MAIN,
  APPEND_SUB,
  DELETE_SESSION,
  DELETE_SUB,
  type RedisClient,
  runScript,
  UNLIST_SESSION,
} from './scripts.js';

/**
 * How long a deleted session keeps its floor and gone marker. It bounds how late an append that
 * raced the delete may publish and still be refused; a day is far beyond any real pause.
 */
export const DELETE_FENCE_MS = 24 * 60 * 60 * 1000;

/**
 * Sessions whose newest fold this process keeps. Forgetting one is always safe (the next
 * append refolds a little more), so the cache is simply capped.
 */
const MAX_CACHED_FOLDS = 1_000;

/** A summary folded by this process: a fold of the first `covers` main entries. */
interface Fold {
  mtime: number;
  covers: number;
  json: string;
  summary: SessionSummaryEntry;
  /** Whether it was offered to the session's meta as the fold base already. */
  offered: boolean;
}

/** What step 1 of a main append saw, atomically with its write. */
export interface MainWrite {
  /** mtime of the append that stored the last main entry (0 if there is none). */
  mtime: number;
  /** Entries in the main transcript right after the write. */
  length: number;
  /** The stored fold base: how many leading entries it covers, its mtime, JSON and value. */
  summaryCovers: number;
  summaryMtime: number;
  summary: string | null;
  previous: SessionSummaryEntry | undefined;
  /** JSON of the stored entries in [summaryCovers, first position of this batch). */
  unfolded: string[];
  /** This batch's entries that were stored (not duplicates), in order. */
  stored: TranscriptEntry[];
}

/**
 * A transcript store on Redis (standalone or Cluster). Entries live in one LIST per transcript
 * with a SET of uuids beside it for idempotent appends; each session's mtime and running summary
 * live in its meta HASH, and are published to per-project indexes so listSessions and
 * listSessionSummaries each take one command. See docs/redis.md for every key.
 */
export class RedisTranscriptStore implements TranscriptStore {
  private readonly client: RedisClient;
  private readonly prefix: string;
  private closed = false;
  /** By meta key: the newest fold this process made of that session. */
  private readonly folds = new Map<string, Fold>();

  private readonly publisher: SummaryPublisher;

  constructor(client: RedisClient, options: { prefix: string }) {
    this.client = client;
    this.prefix = options.prefix;
    this.publisher = new SummaryPublisher(client, options.prefix);
  }

  /** Appends under way, so close() can let them finish both steps before the connection goes. */
  private readonly inFlight = new Set<Promise<void>>();

  /** Refuses every later call and waits for appends under way; the connection is the backend's. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.inFlight]);
  }

  async append(key: SessionKey, entries: TranscriptEntry[]): Promise<void> {
    this.assertOpen();
    const run = this.appendNow(key, entries);
    this.inFlight.add(run);
    try {
      await run;
    } finally {
      this.inFlight.delete(run);
    }
  }

  private async appendNow(key: SessionKey, entries: TranscriptEntry[]): Promise<void> {
    assertSessionKey(key);
    assertEntries(entries);
    if (entries.length === 0) return;
    if (key.subpath !== undefined) {
      const args = entryArgs(entries);
      const keys = sessionKeys(this.prefix, key.projectKey, key.sessionId);
      const sub = keys.sub(key.subpath);
      await this.guard(
        'append',
        runScript(
          this.client,
          APPEND_SUB,
          [sub.list, sub.ids, keys.subkeys],
          [key.subpath as string, ...args],
        ),
      );
      return;
    }
    const write = await this.writeMain(key, entries);
    await this.syncSummary(key, write);
  }

  /**
   * Step 1 of a main append: stores the new entries and reads the fold base, atomically.
   * Public only so tests can stop an append between its two steps, as a crash would.
   * @internal
   */
  async writeMain(key: SessionKey, entries: TranscriptEntry[]): Promise<MainWrite> {
    const args = entryArgs(entries);
    const keys = sessionKeys(this.prefix, key.projectKey, key.sessionId);
    const cached = this.folds.get(keys.meta);
    // Our newest fold becomes the session's fold base here, in the same script, instead of
    // costing a command of its own when it was made; it is kept only if still the newest.
    const offer =
      cached && !cached.offered
        ? [String(cached.mtime), String(cached.covers), cached.json]
        : ['', '', ''];
    if (cached) cached.offered = true;
    const known = cached ? String(cached.mtime) : '';
    const reply = (await this.guard(
      'append',
      runScript(
        this.client,
        APPEND_MAIN,
        [keys.meta, keys.main.list, keys.main.ids],
        [...offer, known, ...args],
      ),
    )) as [number, number, number, number, string | null, string, ...string[]];
    const [mtime, length, summaryCovers, summaryMtime, sent, flags, ...unfolded] = reply;
    // The script leaves the base out when it is the fold we hold: same mtime, same fold.
    const mine = cached !== undefined && sent === null && cached.mtime === summaryMtime;
    return {
      mtime,
      length,
      summaryCovers,
      summaryMtime,
      summary: mine ? cached.json : sent,
      previous: mine ? cached.summary : sent === null ? undefined : JSON.parse(sent),
      unfolded,
      stored: entries.filter((_, i) => flags[i] === '1'),
    };
  }

  /**
   * Step 2 of a main append: folds what the stored fold base does not cover yet and publishes
   * the result. `unfolded` and `stored` together are everything past the base up to this
   * append's last entry, so the fold is of the whole transcript prefix, whoever wrote it: a
   * writer that died before this step, or one racing with us, is folded in here too. Publishing
   * keeps the newest fold, so it needs no lock and no retry.
   * @internal
   */
  async syncSummary(key: SessionKey, write: MainWrite): Promise<void> {
    if (write.length === 0) return;
    let mtime = write.summaryMtime;
    let json = write.summary;
    if (write.summaryCovers < write.length) {
      // Stored JSON for others' entries; our own objects for ours, which the SDK hands over as
      // parsed JSON, so they fold exactly as their stored text would.
      const entries = write.unfolded.map((line) => JSON.parse(line) as TranscriptEntry);
      for (const entry of write.stored) entries.push(entry);
      const summary = foldSummary(write.previous, key, entries, write.mtime);
      mtime = write.mtime;
      json = JSON.stringify(summary);
      this.remember(sessionKeys(this.prefix, key.projectKey, key.sessionId).meta, {
        mtime,
        covers: write.length,
        json,
        summary,
        offered: false,
      });
    }
    // With nothing new (a retried batch) this republishes the stored base, in case the last
    // writer stopped before its publish landed; a no-op when the index is current.
    if (json === null) return;
    const summaryJson = json;
    await this.guard(
      'append',
      this.publisher.publish(key.projectKey, key.sessionId, mtime, summaryJson),
    );
  }

  private remember(meta: string, fold: Fold): void {
    const current = this.folds.get(meta);
    if (current && current.mtime >= fold.mtime) return;
    this.folds.delete(meta);
    if (this.folds.size >= MAX_CACHED_FOLDS) {
      const oldest = this.folds.keys().next().value;
      if (oldest !== undefined) this.folds.delete(oldest);
    }
    this.folds.set(meta, fold);
  }

  async load(key: SessionKey): Promise<TranscriptEntry[] | null> {
    this.assertOpen();
    assertSessionKey(key);
    const keys = sessionKeys(this.prefix, key.projectKey, key.sessionId);
    const list = key.subpath === undefined ? keys.main.list : keys.sub(key.subpath).list;
    const lines = await this.guard('load', this.client.lrange(list, 0, -1));
    if (lines.length === 0) return null;
    return lines.map((line) => JSON.parse(line) as TranscriptEntry);
  }

  async listSessions(projectKey: string): Promise<Array<{ sessionId: string; mtime: number }>> {
    this.assertOpen();
    assertProjectKey(projectKey);
    const { sessions } = projectKeys(this.prefix, projectKey);
    const flat = await this.guard(
      'listSessions',
      this.client.zrange(sessions, 0, -1, 'WITHSCORES'),
    );
    const result: Array<{ sessionId: string; mtime: number }> = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      result.push({ sessionId: flat[i] as string, mtime: Number(flat[i + 1]) });
    }
    return result;
  }

  async listSessionSummaries(projectKey: string): Promise<SessionSummaryEntry[]> {
    this.assertOpen();
    assertProjectKey(projectKey);
    const { summaries } = projectKeys(this.prefix, projectKey);
    const values = await this.guard('listSessionSummaries', this.client.hvals(summaries));
    return values.map((value) => JSON.parse(value) as SessionSummaryEntry);
  }

  async delete(key: SessionKey): Promise<void> {
    this.assertOpen();
    assertSessionKey(key);
    const keys = sessionKeys(this.prefix, key.projectKey, key.sessionId);
    if (key.subpath !== undefined) {
      const sub = keys.sub(key.subpath);
      await this.guard(
        'delete',
        runScript(
          this.client,
          DELETE_SUB,
          [keys.subkeys, sub.list, sub.ids],
          [key.subpath as string],
        ),
      );
      return;
    }
    this.folds.delete(keys.meta);
    // Two slots, so two steps. If this process dies between them the session stays listed with
    // no transcript; deleting again (or appending again) repairs that.
    const [existed, stamp] = (await this.guard(
      'delete',
      runScript(
        this.client,
        DELETE_SESSION,
        [keys.meta, keys.main.list, keys.main.ids, keys.subkeys],
        [DELETE_FENCE_MS],
      ),
    )) as [number, number];
    const project = projectKeys(this.prefix, key.projectKey);
    await this.guard(
      'delete',
      runScript(
        this.client,
        UNLIST_SESSION,
        [project.sessions, project.summaries, project.gone(key.sessionId)],
        [key.sessionId, stamp, DELETE_FENCE_MS, existed === 1 ? '1' : '0'],
      ),
    );
  }

  async listSubkeys(ref: SessionRef): Promise<string[]> {
    this.assertOpen();
    assertSessionRef(ref);
    const { subkeys } = sessionKeys(this.prefix, ref.projectKey, ref.sessionId);
    return this.guard('listSubkeys', this.client.hkeys(subkeys));
  }

  private assertOpen(): void {
    if (this.closed) throw closedError('Redis transcript store');
  }

  private guard<T>(operation: string, pending: Promise<T>): Promise<T> {
    return guardRedis(`Redis ${operation}()`, operation, pending);
  }
}

/** Script arguments for a batch: uuid ('' when none) then JSON, per entry. Throws on bad JSON. */
function entryArgs(entries: TranscriptEntry[]): string[] {
  const args: string[] = new Array(entries.length * 2);
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i] as TranscriptEntry;
    args[2 * i] = entryUuid(entry) ?? '';
    args[2 * i + 1] = serializeEntry(entry, i);
  }
  return args;
}
