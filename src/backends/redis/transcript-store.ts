import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { type Clock, systemClock } from '../../core/clock.js';
import { utcDay } from '../../core/daily-usage.js';
import type { TranscriptEntry } from '../../core/entries.js';
import { assertEntries, entryUuid, serializeEntry } from '../../core/entries.js';
import { closedError, SessionHubError } from '../../core/errors.js';
import {
  assertProjectKey,
  assertSessionKey,
  assertSessionRef,
  type SessionKey,
  type SessionRef,
} from '../../core/session-key.js';
import type { UsageState } from '../../core/usage.js';
import { encodeUsageState } from '../../core/usage-codec.js';
import type { TranscriptStore } from '../backend.js';
import { foldSummary, type SessionSummaryEntry } from '../summary.js';
import { type StoredFold, touchesUsage, UsageStateCache } from '../usage-fold.js';
import {
  nextRunning,
  type Pending,
  parsePending,
  runningStamp,
  type Spend,
  spendOfRunning,
} from './charges.js';
import { guardRedis } from './failures.js';
import { projectKeys, type SessionKeys, sessionKeys } from './keys.js';
import { SummaryPublisher } from './publisher.js';
import { SessionRemover } from './removal.js';
import { APPEND_MAIN, APPEND_SUB, DELETE_SUB, type RedisClient, runScript } from './scripts.js';

/**
 * Sessions whose newest fold this process keeps. Forgetting one is always safe (the next
 * append refolds a little more), so the cache is simply capped.
 */
const MAX_CACHED_FOLDS = 1_000;

/**
 * How many times a main append folds usage again after finding the session's usage changed
 * under it (another writer appended in between). Each retry starts from the state the failed
 * attempt returned, so only a session hammered by many writers at once gets near this.
 */
const MAX_USAGE_ATTEMPTS = 32;

/**
 * The usage state this process last saw for a session, with the token the append CAS compares.
 * Forgetting it is always safe: the next append finds the token changed and folds again.
 */
interface UsageSeen {
  /** '' while the session has no usage state. */
  token: string;
  /** The state as stored (JSON): the fold parses it into a fresh object it may change. */
  state: string | null;
  /** Stamps of pending records this process published; its next append has them forgotten. */
  applied: string[];
  /** The running charge as stored with that state (the token vouches for it too); null: none. */
  running: string | null;
  /** The stamp of the newest running charge this process published ('' if none). */
  published: string;
}

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
  /** The session's meta key. */
  meta: string;
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
  /** The record's owner and rid ('' for a session without a record). */
  owner: string;
  rid: string;
  /** The session's pending records (see charges.ts). */
  pending: Pending;
  /** The session's running charge after the write (see charges.ts); null: none. */
  running: string | null;
}

/** Per process, so tokens from two processes never collide; the counter orders nothing. */
const TOKEN_PREFIX = randomBytes(6).toString('base64url');
let tokenCounter = 0;

function newUsageToken(): string {
  tokenCounter += 1;
  return `${TOKEN_PREFIX}.${tokenCounter.toString(36)}`;
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
  private readonly clock: Clock;
  private readonly foldUsage: boolean;
  private closed = false;
  /** By meta key: the newest fold this process made of that session. */
  private readonly folds = new Map<string, Fold>();
  /** By meta key: the usage state this process last saw. */
  private readonly usage = new Map<string, UsageSeen>();
  /** By meta key: the state this process last wrote, decoded, for its next fold. */
  private readonly usageStates = new UsageStateCache(MAX_CACHED_FOLDS);
  /** By meta key: the folding append of this process under way, which the next one waits for. */
  private readonly folding = new Map<string, Promise<unknown>>();

  private readonly publisher: SummaryPublisher;
  /** Deletes whole sessions; the registry's remove and purge use it too. @internal */
  readonly remover: SessionRemover;

  constructor(
    client: RedisClient,
    options: { prefix: string; clock?: Clock; foldUsage?: boolean },
  ) {
    this.client = client;
    this.prefix = options.prefix;
    this.clock = options.clock ?? systemClock;
    this.foldUsage = options.foldUsage ?? true;
    this.publisher = new SummaryPublisher(client, options.prefix);
    this.remover = new SessionRemover(client, options.prefix, this.publisher, (meta) => {
      const seen = this.usage.get(meta);
      const applied = seen ? [...seen.applied] : [];
      if (seen?.published) applied.push(seen.published);
      this.folds.delete(meta);
      this.usage.delete(meta);
      this.usageStates.forget(meta);
      return applied;
    });
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
   * Step 1 of a main append: stores the new entries, folds their usage and reads the fold base,
   * atomically. The usage fold runs here, on the entries the script will store, and the script
   * stores them only if they and the session's usage state are what the fold assumed; if not,
   * it says what they are and the fold runs again. Appends that cannot move usage skip all this.
   * Public only so tests can stop an append between its two steps, as a crash would.
   * @internal
   */
  async writeMain(key: SessionKey, entries: TranscriptEntry[]): Promise<MainWrite> {
    const keys = sessionKeys(this.prefix, key.projectKey, key.sessionId);
    if (!this.foldUsage || !touchesUsage(entries)) {
      return this.writeMainNow(key, keys, entries, false);
    }
    const meta = keys.meta;
    // Folding appends to one session from this process go one at a time: each starts from the
    // state the previous one wrote, instead of all folding onto the same state and all but one
    // folding again. Other processes may still race; the script's compare-and-set handles them.
    const previous = this.folding.get(meta);
    // With none under way the script goes out now: chaining onto a resolved promise would wait
    // for every continuation already queued (under load, other appends' work) before sending.
    const run =
      previous === undefined
        ? this.writeMainNow(key, keys, entries, true)
        : previous.catch(() => {}).then(() => this.writeMainNow(key, keys, entries, true));
    this.folding.set(meta, run);
    try {
      return await run;
    } finally {
      if (this.folding.get(meta) === run) this.folding.delete(meta);
    }
  }

  /** writeMain() once its turn has come; `folding` says the entries can move usage. */
  private async writeMainNow(
    key: SessionKey,
    keys: SessionKeys,
    entries: TranscriptEntry[],
    folding: boolean,
  ): Promise<MainWrite> {
    const args = entryArgs(entries);
    const cached = this.folds.get(keys.meta);
    // Our newest fold becomes the session's fold base here, in the same script, instead of
    // costing a command of its own when it was made; it is kept only if still the newest.
    let offer =
      cached && !cached.offered
        ? [String(cached.mtime), String(cached.covers), cached.json]
        : ['', '', ''];
    if (cached) cached.offered = true;
    const known = cached ? String(cached.mtime) : '';
    // First guess: every entry is new but for repeats within the batch, as the script decides.
    let flags = folding ? batchFlags(args) : '';
    for (let attempt = 1; ; attempt++) {
      const seen = this.usage.get(keys.meta);
      let folded: StoredFold | null = null;
      let token = '';
      let stateJson = '';
      const usageArgs = ['', '', '', '', '', ''];
      if (folding) {
        folded = this.usageStates.fold(
          keys.meta,
          seen?.state ?? null,
          flags.includes('0') ? entries.filter((_, i) => flags[i] === '1') : entries,
        );
        token = folded ? newUsageToken() : '';
        usageArgs[0] = '1';
        usageArgs[1] = seen?.token ?? '';
        usageArgs[2] = flags;
        stateJson = folded ? folded.json : '';
        usageArgs[3] = stateJson;
        usageArgs[4] = token;
        if (folded?.chargeable) {
          usageArgs[5] = nextRunning(seen?.running ?? null, utcDay(this.clock.now()), folded.delta);
        }
      }
      const applied = seen?.applied ?? [];
      const reply = (await this.guard(
        'append',
        runScript(
          this.client,
          APPEND_MAIN,
          [keys.meta, keys.main.list, keys.main.ids, keys.charges],
          [...offer, known, ...usageArgs, applied.length, ...applied, ...args],
        ),
      )) as unknown[];
      if (reply[0] === 0) {
        // Another writer changed the session's usage (or stored some of these entries) since
        // the state we folded onto: fold again from what the script saw.
        const [, actual, current, state, running] = reply as [
          number,
          string,
          string,
          string,
          string,
        ];
        flags = actual;
        const known = this.usage.get(keys.meta);
        this.rememberUsage(keys.meta, {
          token: current,
          state: state === '' ? null : state,
          applied: known?.applied ?? [],
          running: running === '' ? null : running,
          published: known?.published ?? '',
        });
        offer = ['', '', ''];
        if (attempt >= MAX_USAGE_ATTEMPTS) throw usageConflict(key);
        // Writers in several processes hammering one session: spread them out a little.
        if (attempt >= 3) await delay(Math.random() * attempt);
        continue;
      }
      const [
        ,
        mtime,
        length,
        summaryCovers,
        summaryMtime,
        sent,
        stored,
        owner,
        pending,
        rid,
        running,
      ] = reply as [
        1,
        number,
        number,
        number,
        number,
        string | null,
        string,
        string | null,
        string[],
        string | null,
        string | null,
      ];
      // The session has forgotten the records we named; others may have been applied since.
      const current = this.usage.get(keys.meta);
      const left = (current?.applied ?? []).filter((s) => !applied.includes(s));
      if (folded) {
        this.rememberUsage(keys.meta, {
          token,
          state: stateJson,
          applied: left,
          running,
          published: current?.published ?? '',
        });
        this.usageStates.keep(keys.meta, folded);
      } else if (current) {
        // No state written: the token, and so the running charge, are as they were.
        current.applied = left;
        current.running = running;
      }
      const unfolded = reply.slice(11) as string[];
      // The script leaves the base out when it is the fold we hold: same mtime, same fold.
      const mine = cached !== undefined && sent === null && cached.mtime === summaryMtime;
      return {
        meta: keys.meta,
        mtime,
        length,
        summaryCovers,
        summaryMtime,
        summary: mine ? cached.json : sent,
        previous: mine ? cached.summary : sent === null ? undefined : JSON.parse(sent),
        unfolded,
        stored: entries.filter((_, i) => stored[i] === '1'),
        owner: owner ? (JSON.parse(owner) as string) : '',
        rid: rid ? (JSON.parse(rid) as string) : '',
        pending: parsePending(pending),
        running,
      };
    }
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
      this.remember(write.meta, {
        mtime,
        covers: write.length,
        json,
        summary,
        offered: false,
      });
    }
    // With nothing new (a retried batch) this republishes the stored base, in case the last
    // writer stopped before its publish landed; a no-op when the index is current. Daily usage
    // a writer left unpublished (it stopped before this step) is published here too: pending
    // records, and a running charge this process has not published itself.
    const { meta, pending, running } = write;
    const spends: Spend[] = pending.spends;
    const stamp = running === null ? '' : runningStamp(running);
    const publishRunning =
      running !== null && write.rid !== '' && stamp !== this.usage.get(meta)?.published;
    if (publishRunning) spends.push(spendOfRunning(running, write.rid));
    if (json === null && pending.charges.length === 0 && spends.length === 0) return;
    await this.guard(
      'append',
      this.publisher.publish(key.projectKey, {
        sessionId: key.sessionId,
        mtime,
        json,
        owner: write.owner,
        charges: pending.charges,
        spends,
      }),
    );
    if (pending.stamps.length === 0 && !publishRunning) return;
    const seen = this.usage.get(meta);
    if (seen) {
      // Our next append to the session has the records forgotten there.
      if (pending.stamps.length > 0) {
        seen.applied = [...new Set([...seen.applied, ...pending.stamps])];
      }
      if (publishRunning && Number(stamp) > Number(seen.published || 0)) seen.published = stamp;
    } else {
      // Without a state seen, the next fold starts from the same guess as with no entry at all.
      this.rememberUsage(meta, {
        token: '',
        state: null,
        applied: pending.stamps,
        running: null,
        published: publishRunning ? stamp : '',
      });
    }
  }

  /**
   * Tells the store the usage state a registration just wrote, so this process's first append
   * to the session folds onto it instead of finding out with a failed compare-and-set.
   * @internal
   */
  noteUsage(projectKey: string, sessionId: string, token: string, state: UsageState): void {
    const meta = sessionKeys(this.prefix, projectKey, sessionId).meta;
    const known = this.usage.get(meta);
    // A new registration has no running charge.
    this.rememberUsage(meta, {
      token,
      state: encodeUsageState(state),
      applied: known?.applied ?? [],
      running: null,
      published: known?.published ?? '',
    });
  }

  private rememberUsage(meta: string, seen: UsageSeen): void {
    this.usage.delete(meta);
    if (this.usage.size >= MAX_CACHED_FOLDS) {
      const oldest = this.usage.keys().next().value;
      if (oldest !== undefined) this.usage.delete(oldest);
    }
    this.usage.set(meta, seen);
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
    // The session's record goes with it (it lives in meta), and so does its registration.
    await this.guard('delete', this.remover.remove(key.projectKey, key.sessionId, { mode: 'any' }));
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

/** The flags the append script gives a batch when none of its uuids is stored yet. */
function batchFlags(args: readonly string[]): string {
  const seen = new Set<string>();
  let flags = '';
  for (let i = 0; i < args.length; i += 2) {
    const uuid = args[i] as string;
    if (uuid !== '' && seen.has(uuid)) {
      flags += '0';
    } else {
      if (uuid !== '') seen.add(uuid);
      flags += '1';
    }
  }
  return flags;
}

function usageConflict(key: SessionKey): SessionHubError {
  return new SessionHubError(
    'CONFLICT',
    `Session ${key.sessionId} changed under ${MAX_USAGE_ATTEMPTS} appends in a row while its usage was folded. Retry the append; it stores nothing twice.`,
    { sessionId: key.sessionId },
  );
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
