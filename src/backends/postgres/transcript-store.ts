import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import { type Clock, systemClock } from '../../core/clock.js';
import { toCostNanos, utcDay } from '../../core/daily-usage.js';
import {
  assertEntries,
  entryUuid,
  selectNewEntries,
  serializeEntry,
  type TranscriptEntry,
} from '../../core/entries.js';
import { closedError, SessionHubError } from '../../core/errors.js';
import {
  assertProjectKey,
  assertSessionKey,
  assertSessionRef,
  type SessionKey,
  type SessionRef,
} from '../../core/session-key.js';
import type { UsageDelta } from '../../core/usage.js';
import type { TranscriptStore } from '../backend.js';
import { foldSummary, type SessionSummaryEntry } from '../summary.js';
import { type StoredFold, UsageStateCache } from '../usage-fold.js';
import { GroupCommit, type GroupOutcome, type GroupPart } from './group-commit.js';
import { isUniqueViolation, type Queryable, withTransaction } from './sql.js';
import {
  type BatchRow,
  batchParameters,
  type SessionStateRow,
  TranscriptStatements,
  type UsageCharge,
  type UsageWrite,
  usageParameters,
} from './statements.js';

/**
 * Keys live in btree indexes, whose entries cannot exceed about 2.7 kB; past this a write would
 * fail with an obscure index error, so it is refused up front. The SDK's keys are far shorter.
 */
const MAX_KEY_BYTES = 1024;

/** Optimistic attempts before an append takes the session's row lock for its whole fold. */
const OPTIMISTIC_ATTEMPTS = 3;

/** Sessions whose last known version and summary are kept, to fold without reading first. */
const KNOWN_SESSIONS = 10_000;

/** Group statements (each on its own pooled connection) in flight at once. */
const GROUPS_IN_FLIGHT = 2;

/** Sessions in one group statement at most. */
const GROUP_PARTS = 64;

/** Entry characters in one group statement at most. */
const GROUP_CHARS = 4 * 1024 * 1024;

/** What this process last knew of a session's main transcript (bigints as decimal text). */
interface KnownSession {
  /** The session row, or null when not known. */
  id: string | null;
  /** '0' = no main transcript. */
  version: string;
  /** JSON text of the summary data at that version. */
  summary: string | null;
  /** JSON text of the usage fold's state at that version; null = nothing folded. */
  usage: string | null;
}

const UNKNOWN: KnownSession = { id: null, version: '0', summary: null, usage: null };

/** A session row as a statement returned it, as this process remembers it. */
function knownFrom(row: SessionStateRow): KnownSession {
  return { id: row.id, version: row.version, summary: row.summary, usage: row.usage_state };
}

/**
 * $11 (the states) or $11-$18 (with charges) of the group statement with usage: one array
 * element (or line) per part.
 */
function groupUsageParameters(parts: GroupPart[], withCharges: boolean): unknown[] {
  const usages: string[] = [];
  for (const part of parts) usages.push(part.usage ?? '');
  if (!withCharges) return [usages.join('\n')];
  const days: Array<string | null> = [];
  const columns: Array<Array<number | null>> = [[], [], [], [], [], []];
  for (const part of parts) {
    const charge = part.charge;
    days.push(charge?.day ?? null);
    const figures = charge
      ? [
          charge.costNanos,
          charge.turns,
          charge.inputTokens,
          charge.outputTokens,
          charge.cacheReadTokens,
          charge.cacheCreationTokens,
        ]
      : [null, null, null, null, null, null];
    figures.forEach((value, i) => {
      (columns[i] as Array<number | null>).push(value);
    });
  }
  return [usages.join('\n'), days, ...columns];
}

/** A fold's delta in the units of the daily usage table. */
function chargeOf(delta: UsageDelta, day: string): UsageCharge {
  return {
    day,
    costNanos: toCostNanos(delta.costUsd),
    turns: delta.turns,
    inputTokens: delta.tokens.inputTokens,
    outputTokens: delta.tokens.outputTokens,
    cacheReadTokens: delta.tokens.cacheReadInputTokens,
    cacheCreationTokens: delta.tokens.cacheCreationInputTokens,
  };
}

/**
 * What the registry tells the transcript store of the same backend about session rows it wrote,
 * so the store's view of a session (version, summary, usage) is current or dropped. Only ever a
 * shortcut: a stale view costs a failed version check and a read, never a wrong fold.
 */
export interface SessionRowCache {
  remember(ref: SessionRef, row: SessionStateRow): void;
  forget(ref: SessionRef): void;
}

interface PendingEntry extends BatchRow {
  entry: TranscriptEntry;
}

/**
 * The uuid as stored. Ordinary uuids are kept as they are; one PostgreSQL text cannot hold (a NUL)
 * or an index cannot fit (a very long one) is replaced by a digest of its UTF-16 code units, which
 * keeps it an exact idempotency key.
 */
function storedUuid(entry: TranscriptEntry): string | null {
  const uuid = entryUuid(entry);
  if (uuid === undefined) return null;
  if (uuid.length <= 256 && !uuid.includes('\u0000') && uuid.isWellFormed()) return uuid;
  return `sha256:${createHash('sha256').update(Buffer.from(uuid, 'utf16le')).digest('hex')}`;
}

function assertStorableKeyPart(field: string, value: string, key: unknown): void {
  if (value.includes('\u0000')) {
    throw new SessionHubError(
      'INVALID_SESSION_KEY',
      `SessionKey.${field} contains U+0000, which PostgreSQL text cannot store; remove the NUL character.`,
      { field, key },
    );
  }
  // Three UTF-8 bytes at most per UTF-16 code unit: only long strings need counting.
  if (value.length * 3 > MAX_KEY_BYTES && Buffer.byteLength(value) > MAX_KEY_BYTES) {
    throw new SessionHubError(
      'INVALID_SESSION_KEY',
      `SessionKey.${field} is ${Buffer.byteLength(value)} bytes long; the PostgreSQL store takes at most ${MAX_KEY_BYTES} bytes of UTF-8.`,
      { field, key },
    );
  }
}

function assertStorableKey(key: SessionKey): void {
  assertStorableKeyPart('projectKey', key.projectKey, key);
  assertStorableKeyPart('sessionId', key.sessionId, key);
  if (key.subpath !== undefined) assertStorableKeyPart('subpath', key.subpath, key);
}

/** Unambiguous map key for a session (the length prefix keeps "a"+"bc" apart from "ab"+"c"). */
function sessionId(ref: SessionRef): string {
  return `${ref.projectKey.length}:${ref.projectKey}${ref.sessionId}`;
}

/**
 * Transcripts in PostgreSQL: one row per entry (JSON text) and one row per session that carries
 * the listing mtime and the SDK summary.
 *
 * An append is one statement, hence one round trip and one commit, in the common case. The summary
 * is folded in JavaScript (with the SDK's fold) from the version of the session this process last
 * saw, and the statement writes only if that version is still current. When another writer got
 * there first, nothing is written: the append reads the session as it is now and folds again, and
 * after a few lost races it locks the session instead. Appends to one session from this process
 * run one after another, in call order, so they never race each other.
 *
 * Main-transcript appends of different sessions share statements (group commit, see GroupCommit):
 * while one is in flight the next ones queue, and all that queued go out together, which spares
 * each its own round trip, statement execution and commit under concurrency.
 *
 * Usage is folded exactly like the summary: in JavaScript, from the state of the version this
 * process last saw, written by the same statement under the same version check, together with
 * the owner's daily usage when the session is registered. An append that cannot move usage
 * sends the statement without any of that.
 */
export class PostgresTranscriptStore implements TranscriptStore {
  private readonly pool: Pool;
  private readonly sql: TranscriptStatements;
  private readonly known = new Map<string, KnownSession>();
  /** By session: the usage state of `known`, decoded, for the next fold. */
  private readonly usageStates = new UsageStateCache(KNOWN_SESSIONS);
  /** The last queued write of each session; writes to one session run in call order. */
  private readonly queues = new Map<string, Promise<void>>();
  private readonly optimisticAttempts: number;
  private readonly group: GroupCommit;
  private readonly clock: Clock;
  private readonly foldUsage: boolean;
  private closed = false;

  /** For the registry of the same backend. */
  readonly rowCache: SessionRowCache = {
    remember: (ref, row) => this.remember(sessionId(ref), knownFrom(row)),
    forget: (ref) => {
      this.known.delete(sessionId(ref));
      this.usageStates.forget(sessionId(ref));
    },
  };

  /**
   * Expects a schema already migrated (see migratePostgres). `optimisticAttempts` is how many
   * one-statement tries a main-transcript append makes before it locks the session instead;
   * 0 always locks, which tests use to exercise that path.
   */
  constructor(options: {
    pool: Pool;
    schema: string;
    optimisticAttempts?: number;
    /** Group statements in flight at once, each on its own pooled connection. Default 2. */
    groupsInFlight?: number;
    /** Where the day of a usage charge comes from. Default: the system clock. */
    clock?: Clock;
    /** Fold usage in main-transcript appends. Default true; off only to measure its cost. */
    foldUsage?: boolean;
  }) {
    this.pool = options.pool;
    this.clock = options.clock ?? systemClock;
    this.foldUsage = options.foldUsage ?? true;
    this.sql = new TranscriptStatements(options.schema);
    this.optimisticAttempts = options.optimisticAttempts ?? OPTIMISTIC_ATTEMPTS;
    this.group = new GroupCommit({
      writeGroup: (parts) => this.writeGroup(parts),
      writeOne: (part) => this.writeOne(this.pool, part),
      maxInFlight: Math.max(1, options.groupsInFlight ?? GROUPS_IN_FLIGHT),
      maxParts: GROUP_PARTS,
      maxChars: GROUP_CHARS,
    });
  }

  async append(key: SessionKey, entries: TranscriptEntry[]): Promise<void> {
    assertSessionKey(key);
    assertEntries(entries);
    assertStorableKey(key);
    this.assertOpen();
    if (entries.length === 0) return;
    // Everything that can refuse the batch runs before the first byte is sent.
    const lines = entries.map((entry, i) => serializeEntry(entry, i));
    const fresh = new Set(selectNewEntries(entries, new Set()));
    const pending: PendingEntry[] = [];
    entries.forEach((entry, i) => {
      if (fresh.has(entry))
        pending.push({ entry, line: lines[i] as string, uuid: storedUuid(entry) });
    });
    const ref = { projectKey: key.projectKey, sessionId: key.sessionId };
    const subpath = key.subpath;
    await this.inOrder(ref, () =>
      subpath === undefined
        ? this.appendMain(ref, pending)
        : this.appendSubpath(ref, subpath, pending),
    );
  }

  private async appendSubpath(ref: SessionRef, subpath: string, pending: PendingEntry[]) {
    const { rows } = await this.pool.query<SessionStateRow>({
      ...this.sql.appendSubpath(pending.length),
      values: [ref.projectKey, ref.sessionId, subpath, ...batchParameters(pending)],
    });
    const row = rows[0];
    if (row) this.remember(sessionId(ref), knownFrom(row));
  }

  private async appendMain(ref: SessionRef, batch: PendingEntry[]): Promise<void> {
    const id = sessionId(ref);
    let known = this.known.get(id) ?? UNKNOWN;
    let pending = batch;
    for (let attempt = 0; attempt < this.optimisticAttempts; attempt++) {
      let written: KnownSession | undefined;
      try {
        written = await this.writeMain(null, ref, pending, known);
      } catch (error) {
        if (isUniqueViolation(error)) break;
        throw error;
      }
      if (written) {
        this.remember(id, written);
        return;
      }
      ({ known, pending } = await this.refresh(this.pool, ref, pending));
      if (pending.length === 0) {
        this.remember(id, known);
        return;
      }
    }
    await this.appendMainLocked(ref, pending);
  }

  /**
   * The fallback when optimistic writes keep losing to other writers: hold the session's row
   * lock across the read, the fold and the write, so nothing can overtake them. Five round trips
   * instead of one.
   */
  private async appendMainLocked(ref: SessionRef, batch: PendingEntry[]): Promise<void> {
    const id = sessionId(ref);
    try {
      const known = await withTransaction(this.pool, async (client) => {
        await client.query({ ...this.sql.lockSession, values: [ref.projectKey, ref.sessionId] });
        const { known, pending } = await this.refresh(client, ref, batch);
        if (pending.length === 0) return known;
        const written = await this.writeMain(client, ref, pending, known);
        if (!written) {
          throw new Error('sessionhub: an append holding the session lock was refused');
        }
        return written;
      });
      this.remember(id, known);
    } catch (error) {
      this.known.delete(id);
      throw error;
    }
  }

  /**
   * Folds `pending` onto the summary of `known` and writes both in one statement, provided the
   * session is still as `known` says. Returns the session as written, or undefined when it had
   * moved on (or holds some of the entries) and nothing was written. Without `db` (outside a
   * transaction) the write joins a group commit with other sessions' appends.
   */
  private async writeMain(
    db: Queryable | null,
    ref: SessionRef,
    pending: PendingEntry[],
    known: KnownSession,
  ): Promise<KnownSession | undefined> {
    const previous: SessionSummaryEntry | undefined =
      known.summary === null
        ? undefined
        : { sessionId: ref.sessionId, mtime: 0, data: JSON.parse(known.summary) };
    // Only the data is stored: the summary's mtime is read from the same column listSessions()
    // reports, stamped by the database in the statement that writes this data.
    const folded = foldSummary(
      previous,
      ref,
      pending.map((p) => p.entry),
      0,
    );
    const summary = JSON.stringify(folded.data);
    const { usage, charge, fold } = this.fold(sessionId(ref), known, pending);
    const part: GroupPart = {
      ref,
      version: known.version,
      id: known.id,
      summary,
      usage,
      charge,
      rows: pending,
    };
    const written = await (db === null ? this.group.submit(part) : this.writeOne(db, part));
    if (!written) return undefined;
    if (fold) this.usageStates.keep(sessionId(ref), fold);
    return { id: written.id, version: written.version, summary, usage: usage ?? known.usage };
  }

  /**
   * The usage fold of an append: the new state when it changed (null: write nothing) and the
   * charge for the owner's day when the fold moved a figure the day holds.
   */
  private fold(
    id: string,
    known: KnownSession,
    pending: PendingEntry[],
  ): { usage: string | null; charge: UsageCharge | null; fold: StoredFold | null } {
    const none = { usage: null, charge: null, fold: null };
    if (!this.foldUsage) return none;
    // From the state of `known`: the one this process folded last, or the stored text decoded.
    const folded = this.usageStates.fold(
      id,
      known.usage,
      pending.map((p) => p.entry),
    );
    if (!folded) return none;
    const usage = folded.json;
    const charge = folded.chargeable ? chargeOf(folded.delta, utcDay(this.clock.now())) : null;
    // A charge always comes with a changed state; an unchanged one is not written again.
    return { usage: charge === null && usage === known.usage ? null : usage, charge, fold: folded };
  }

  /** One session's append in its own statement. */
  private async writeOne(db: Queryable, part: GroupPart): Promise<GroupOutcome> {
    const usage: UsageWrite =
      part.usage === null ? 'none' : part.charge === null ? 'state' : 'charge';
    const { rows } = await db.query<SessionStateRow>({
      ...this.sql.appendMain(part.rows.length, usage),
      values: [
        part.ref.projectKey,
        part.ref.sessionId,
        part.version,
        part.summary,
        part.id,
        ...(usage === 'none' ? [] : usageParameters(part.usage, part.charge)),
        ...batchParameters(part.rows),
      ],
    });
    const row = rows[0];
    return row && { id: row.id, version: row.version };
  }

  /** Several sessions' appends in one statement; outcomes in the order of `parts`. */
  private async writeGroup(parts: GroupPart[]): Promise<GroupOutcome[]> {
    const projectKeys: string[] = [];
    const sessionIds: string[] = [];
    const versions: string[] = [];
    const ids: Array<string | null> = [];
    const counts: number[] = [];
    const summaries: string[] = [];
    const sessionOf: number[] = [];
    const places: number[] = [];
    const uuids: Array<string | null> = [];
    const lines: string[] = [];
    parts.forEach((part, i) => {
      projectKeys.push(part.ref.projectKey);
      sessionIds.push(part.ref.sessionId);
      versions.push(part.version);
      ids.push(part.id);
      counts.push(part.rows.length);
      summaries.push(part.summary);
      part.rows.forEach((row, j) => {
        sessionOf.push(i + 1);
        places.push(j + 1);
        uuids.push(row.uuid);
        lines.push(row.line);
      });
    });
    const values: unknown[] = [
      projectKeys,
      sessionIds,
      versions,
      ids,
      counts,
      summaries.join('\n'),
      sessionOf,
      places,
      uuids,
      lines.join('\n'),
    ];
    // The statement without usage when no part moved it, and without the daily table when no
    // part charges anything, as appendMain does.
    const usage: UsageWrite = parts.some((part) => part.charge !== null)
      ? 'charge'
      : parts.some((part) => part.usage !== null)
        ? 'state'
        : 'none';
    if (usage !== 'none') values.push(...groupUsageParameters(parts, usage === 'charge'));
    const { rows } = await this.pool.query<{ k: string; id: string; version: string }>({
      ...this.sql.appendGroup[usage],
      values,
    });
    const outcomes = new Array<GroupOutcome>(parts.length).fill(undefined);
    for (const row of rows) outcomes[Number(row.k) - 1] = { id: row.id, version: row.version };
    return outcomes;
  }

  /** Reads the session as it is now, and drops from `pending` the entries it already holds. */
  private async refresh(
    db: Queryable,
    ref: SessionRef,
    pending: PendingEntry[],
  ): Promise<{ known: KnownSession; pending: PendingEntry[] }> {
    const uuids = pending.flatMap((p) => (p.uuid === null ? [] : [p.uuid]));
    const { rows } = await db.query<SessionStateRow>({
      ...this.sql.mainState,
      values: [ref.projectKey, ref.sessionId, uuids],
    });
    const row = rows[0];
    if (!row) return { known: UNKNOWN, pending };
    const duplicates = new Set(row.duplicates);
    return {
      known: knownFrom(row),
      pending: pending.filter((p) => p.uuid === null || !duplicates.has(p.uuid)),
    };
  }

  async load(key: SessionKey): Promise<TranscriptEntry[] | null> {
    assertSessionKey(key);
    assertStorableKey(key);
    this.assertOpen();
    const { rows } = await this.pool.query<[string]>({
      ...this.sql.load,
      values: [key.projectKey, key.sessionId, key.subpath ?? ''],
      rowMode: 'array',
    });
    if (rows.length === 0) return null;
    const entries = new Array<TranscriptEntry>(rows.length);
    for (let i = 0; i < rows.length; i++) {
      entries[i] = JSON.parse((rows[i] as [string])[0]) as TranscriptEntry;
    }
    return entries;
  }

  async listSessions(projectKey: string): Promise<Array<{ sessionId: string; mtime: number }>> {
    assertProjectKey(projectKey);
    assertStorableKeyPart('projectKey', projectKey, { projectKey });
    this.assertOpen();
    const { rows } = await this.pool.query<{ session_id: string; mtime: string }>({
      ...this.sql.listSessions,
      values: [projectKey],
    });
    return rows.map((row) => ({ sessionId: row.session_id, mtime: Number(row.mtime) }));
  }

  async listSessionSummaries(projectKey: string): Promise<SessionSummaryEntry[]> {
    assertProjectKey(projectKey);
    assertStorableKeyPart('projectKey', projectKey, { projectKey });
    this.assertOpen();
    const { rows } = await this.pool.query<{ session_id: string; mtime: string; summary: string }>({
      ...this.sql.listSummaries,
      values: [projectKey],
    });
    return rows.map((row) => ({
      sessionId: row.session_id,
      mtime: Number(row.mtime),
      data: JSON.parse(row.summary) as Record<string, unknown>,
    }));
  }

  async delete(key: SessionKey): Promise<void> {
    assertSessionKey(key);
    assertStorableKey(key);
    this.assertOpen();
    const ref = { projectKey: key.projectKey, sessionId: key.sessionId };
    const subpath = key.subpath;
    await this.inOrder(ref, async () => {
      if (subpath === undefined) {
        // The lock comes first and the delete in a later statement: that statement's snapshot
        // then holds every entry committed by appends that had the lock before, and later ones
        // wait for the commit, so no entry outlives its session.
        await withTransaction(this.pool, async (client) => {
          const { rows } = await client.query<{ id: string }>({
            ...this.sql.lockForDelete,
            values: [ref.projectKey, ref.sessionId],
          });
          const found = rows[0];
          if (found) await client.query({ ...this.sql.deleteSession, values: [found.id] });
        });
        this.known.delete(sessionId(ref));
        this.usageStates.forget(sessionId(ref));
      } else {
        await this.pool.query({
          ...this.sql.deleteSubpath,
          values: [ref.projectKey, ref.sessionId, subpath],
        });
      }
    });
  }

  async listSubkeys(ref: SessionRef): Promise<string[]> {
    assertSessionRef(ref);
    assertStorableKey(ref);
    this.assertOpen();
    const { rows } = await this.pool.query<{ subpath: string }>({
      ...this.sql.listSubkeys,
      values: [ref.projectKey, ref.sessionId],
    });
    return rows.map((row) => row.subpath);
  }

  /** Refuses new work and waits for the writes already queued. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.queues.values());
  }

  private assertOpen(): void {
    if (this.closed) {
      throw closedError('PostgreSQL transcript store');
    }
  }

  /** Runs `task` after every write to the same session queued before it by this process. */
  private inOrder(ref: SessionRef, task: () => Promise<void>): Promise<void> {
    const id = sessionId(ref);
    const run = (this.queues.get(id) ?? Promise.resolve()).then(task);
    const settled = run.then(
      () => {},
      () => {},
    );
    this.queues.set(id, settled);
    void settled.then(() => {
      if (this.queues.get(id) === settled) this.queues.delete(id);
    });
    return run;
  }

  private remember(id: string, known: KnownSession): void {
    // Re-inserting moves the session to the back, so the oldest-touched is forgotten first.
    this.known.delete(id);
    this.known.set(id, {
      id: known.id,
      version: known.version,
      summary: known.summary,
      usage: known.usage,
    });
    if (this.known.size > KNOWN_SESSIONS) {
      const oldest = this.known.keys().next().value;
      if (oldest !== undefined) this.known.delete(oldest);
    }
  }
}
